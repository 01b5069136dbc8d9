/**
 * `xenstack` — the command-line entry point. Commands live in ./commands; this file wires commander,
 * turns usage mistakes and CliErrors into one clear line (plus a hint), and sets the exit code.
 */
import { Command, CommanderError } from 'commander'
import { commandModules } from './commands/index.js'
import { CliError, ExitCode } from './errors.js'
import { XENSTACK_VERSION } from '../version.js'

export function buildProgram(): Command {
  const program = new Command('xenstack')
    .description('XenServer/XCP-ng as an OpenStack compute provider: simulator, lab, plugins, deployments')
    .version(XENSTACK_VERSION, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // commander's own usage errors: keep them to one line, prefixed like ours.
      outputError: (str, write) => write(`xenstack: ${str.replace(/^error: /, '').trim()}\n`),
    })
  for (const m of commandModules) m.register(program)
  program.commands.forEach(function configure(c: Command) {
    c.exitOverride().showSuggestionAfterError(true)
    c.commands.forEach(configure)
  })
  return program
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram()
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
