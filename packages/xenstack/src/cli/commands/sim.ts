/**
 * `xenstack sim`: runs the XAPI simulator (@xenstack/xapi-sim) in the foreground. The first stdout line is exactly
 * `xapi-sim listening on http://HOST:PORT`; SIGINT/SIGTERM flush the state directory and exit 0.
 */
import type { Command } from 'commander'
import { runSimCli, SimCliError, type SimCliOptions } from '@xenstack/xapi-sim'
import { CliError, ExitCode } from '../errors.js'

const collect = (v: string, prev: string[] = []) => [...prev, v]

export function register(program: Command): void {
  program
    .command('sim')
    .description('run the XAPI simulator: a XenServer pool (built-in default, generated, or a scenario file)')
    .option('--listen <host:port>', 'address of the pool master; port 0 picks a free port', '127.0.0.1:0')
    .option('--hosts <n>', 'a generated pool of N hosts (instead of the default 2-host XenServer 7.1 pool)')
    .option('--vms <m>', 'with --hosts: M VMs spread over the hosts')
    .option('--scenario <file>', 'a YAML scenario (pools, hosts, versions, SRs, networks, VMs, plugins, faults)')
    .option('--state <dir>', 'keep the pool in DIR across restarts (flushed every 5 s and on exit)')
    .option('--password <p>', "root's password (default: generated and printed)")
    .option('--plugins-dir <dir>', 'plugins directory for every host (default <state>/hosts/<host>/etc/xapi.d/plugins)')
    .option('--fault <rule>', 'inject faults: KIND[:METHOD|PATH][@RATE][+LATENCY_MS], repeatable', collect)
    .option('--json', 'print the endpoints and credentials as one JSON line after the first line')
    .action(async (opts: SimCliOptions) => {
      try {
        await runSimCli(opts)
      } catch (e) {
        if (e instanceof SimCliError)
          throw new CliError(
            e.message,
            e.exitCode === 2 ? ExitCode.usage : e.exitCode === 5 ? ExitCode.invalidInput : ExitCode.failure,
          )
        throw e
      }
    })
}
