/**
 * CLI exit codes and the error type every command throws for an expected failure.
 * The CLI prints such an error as one line (`xenstack: <message>`), then a `hint:` line when it has one.
 */
export const ExitCode = {
  ok: 0,
  /** The command ran and failed (a deploy that ended in error, a failed health check, …). */
  failure: 1,
  /** Bad usage: unknown command, bad flag, bad argument value. */
  usage: 2,
  /** A named thing (environment, plugin, file, pool) does not exist. */
  notFound: 3,
  /** A remote endpoint (XAPI, SSH, Glance) could not be reached or refused the credentials. */
  unreachable: 4,
  /** Input (a YAML or JSON file, settings) is invalid. */
  invalidInput: 5,
  /** Interrupted by SIGINT/SIGTERM. */
  interrupted: 130,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.failure,
    readonly hint?: string,
  ) {
    super(message)
    this.name = 'CliError'
  }
}
