import type { Command } from 'commander'
import { emit } from '../output.js'
import { XENSTACK_VERSION } from '../../version.js'

export function register(program: Command): void {
  program
    .command('version')
    .description('print the versions of xenstack and of the runtime')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const data = { xenstack: XENSTACK_VERSION, node: process.versions.node, platform: process.platform }
      emit(opts, data, (d) => console.log(`xenstack ${d.xenstack} (node ${d.node}, ${d.platform})`))
    })
}
