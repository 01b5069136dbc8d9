/** Reading a secret from the terminal without echoing it (the password of `pool add` and ad hoc connections). */
import { CliError, ExitCode } from './errors.js'

/** Prompts on stderr and reads one line from a TTY stdin in raw mode, echoing nothing. Ctrl-C aborts. */
export function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin
  return new Promise((resolve, reject) => {
    let value = ''
    const wasRaw = stdin.isRaw
    // Echo goes off before the prompt shows: whatever is typed once the prompt is visible is never echoed.
    stdin.setRawMode(true)
    process.stderr.write(prompt)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (err?: Error) => {
      stdin.off('data', onData)
      stdin.setRawMode(wasRaw)
      stdin.pause()
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done()
        if (ch === '\u0003') return done(new CliError('interrupted', ExitCode.interrupted))
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}
