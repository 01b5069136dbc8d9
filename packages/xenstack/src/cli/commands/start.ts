import type { Command } from 'commander'
import { runMainJob } from '../../main-job.js'
import '../../main-pool.js'
import '../../main-server.js'

export function register(program: Command): void {
  program
    .command('start')
    .description('run the main job with embedded defaults (what `npm start` runs); Ctrl-C stops it cleanly')
    .option('--json', 'print the endpoints as one JSON object once ready')
    .action(async (opts: { json?: boolean }) => {
      await runMainJob(opts)
    })
}
