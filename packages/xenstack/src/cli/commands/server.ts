/**
 * `xenstack server [--host 127.0.0.1] [--port 8700] [--data-dir DIR]`: the REST API (and web UI) until Ctrl-C.
 * The API token is made and printed at the first start only (it is stored hashed); `xenstack server token`
 * makes another one.
 */
import type { Command } from 'commander'
import { CliError, ExitCode } from '../errors.js'
import { emit } from '../output.js'
import { DEFAULT_PORT, startServer, TokenStore } from '../../server/index.js'
import { StateStore } from '../../state/store.js'
import { xenserverNatives } from '../../integration/index.js'

interface Opts {
  host?: string
  port?: string
  dataDir?: string
  json?: boolean
}

function port(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PORT
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CliError(`--port ${value}: expected a port number (0-65535)`, ExitCode.usage)
  return n
}

export function register(program: Command): void {
  const server = program
    .command('server')
    .description('run the REST API server (binds 127.0.0.1 unless --host says otherwise); Ctrl-C stops it')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', `port to listen on (0: any free port)`, String(DEFAULT_PORT))
    .option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')
    .option('--json', 'print the URL (and a new token) as one JSON object once listening')
    .action(async (o: Opts) => {
      const s = await startServer({ host: o.host, port: port(o.port), dataDir: o.dataDir, natives: xenserverNatives() })
      emit(o, { url: s.url, token: s.newToken ?? null, docs: `${s.url}/api/docs` }, () => {
        process.stdout.write(`xenstack server listening on ${s.url} (OpenAPI: ${s.url}/api/docs)\n`)
        if (s.newToken) process.stdout.write(`API token (shown once, stored hashed): ${s.newToken}\n`)
        else process.stdout.write('API token: made at the first start; `xenstack server token` makes a new one\n')
      })
      await new Promise<void>((res) => {
        const stop = () => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          void s.close().then(res, res)
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      })
    })
  server
    .command('token')
    .description('make a new API token and print it (it is stored hashed; print it nowhere else)')
    .option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')
    .option('--name <name>', 'what the token is for', 'cli')
    .option('--json', 'print it as JSON')
    .action((o: { dataDir?: string; name: string; json?: boolean }) => {
      const state = StateStore.open({ dataDir: o.dataDir })
      try {
        const token = new TokenStore(state).create(o.name)
        emit(o, { token }, () => process.stdout.write(`${token}\n`))
      } finally {
        state.close()
      }
    })
}
