/**
 * `xenstack` — the command-line entry point. Commands live in ./commands; this file wires commander,
 * turns usage mistakes and CliErrors into one clear line (plus a hint), and sets the exit code.
 */
import { Command, CommanderError } from 'commander'
import { commandModules } from './commands/index.js'
import { CliError, ExitCode } from './errors.js'
import { XENSTACK_VERSION } from '../version.js'

/**
 * The program with the command modules `argv` needs: the one registering its first word, or every module (for
 * `--help`, `help`, no command or an unknown one — commander then suggests the nearest name). No `argv`: all.
 */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = new Command('xenstack')
    .description('XenServer/XCP-ng as an OpenStack compute provider: simulator, lab, plugins, deployments')
    .version(XENSTACK_VERSION, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // commander's own usage errors: keep them to one line, prefixed like ours.
      outputError: (str, write) => write(`xenstack: ${str.replace(/^error: /, '').trim()}\n`),
    })
  const first = argv?.find((a) => !a.startsWith('-'))
  const one = first === undefined ? undefined : commandModules.find((m) => m.names.includes(first))
  for (const m of await Promise.all((one ? [one] : commandModules).map((e) => e.load()))) m.register(program)
  program.commands.forEach(function configure(c: Command) {
    c.exitOverride().showSuggestionAfterError(true)
    c.commands.forEach(configure)
  })
  return program
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv)
  try {
    await program.parseAsync(argv, { from: 'user' })
    return ExitCode.ok
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      if (e.exitCode === 0) return ExitCode.ok
      process.stderr.write(`hint: run "xenstack --help" for the list of commands and flags\n`)
      return ExitCode.usage
    }
    if (e instanceof CliError) {
      process.stderr.write(`xenstack: ${e.message}\n`)
      if (e.hint) process.stderr.write(`hint: ${e.hint}\n`)
      return e.exitCode
    }
    process.stderr.write(`xenstack: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`)
    return ExitCode.failure
  }
}
