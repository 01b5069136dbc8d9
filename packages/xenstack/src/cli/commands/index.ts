/**
 * The CLI's command modules. Each exports `register(program)`; add an entry here to add a command, naming the
 * top-level command(s) it registers. Order is the order `xenstack --help` lists them in.
 *
 * Modules are imported only when needed: `xenstack env …` loads the env module alone, so a command does not pay for
 * the server's, the lab's and every other command's imports at start-up (all of them cost ~1 s of CPU together);
 * `--help`, `help` and unknown commands load them all. test/cli/program.test.ts checks the names below against
 * what each module registers.
 */
import type { Command } from 'commander'

export interface CommandModule {
  register(program: Command): void
}

export interface CommandEntry {
  /** The top-level commands the module registers. */
  names: string[]
  load(): Promise<CommandModule>
}

export const commandModules: CommandEntry[] = [
  { names: ['start'], load: () => import('./start.js') },
  { names: ['server'], load: () => import('./server.js') },
  { names: ['sim'], load: () => import('./sim.js') },
  { names: ['lab'], load: () => import('./lab.js') },
  { names: ['pool'], load: () => import('./pool.js') },
  { names: ['xapi'], load: () => import('./xapi.js') },
  { names: ['himn'], load: () => import('./himn.js') },
  { names: ['xen'], load: () => import('./xen.js') },
  { names: ['devstack'], load: () => import('./devstack.js') },
  { names: ['image'], load: () => import('./image.js') },
  { names: ['plugins', 'release'], load: () => import('./plugins.js') },
  { names: ['env'], load: () => import('./env.js') },
  { names: ['deploy'], load: () => import('./deploy.js') },
  { names: ['health'], load: () => import('./health.js') },
  { names: ['version'], load: () => import('./version.js') },
]
