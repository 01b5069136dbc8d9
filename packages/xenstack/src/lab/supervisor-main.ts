#!/usr/bin/env node
// Entry point of the lab supervisor process (started detached by `xenstack lab up`): supervisor-main.js NAME [ROOT]
import { runSupervisor } from './supervisor.js'

const [name, root] = process.argv.slice(2)
if (!name) {
  process.stderr.write('usage: supervisor-main.js NAME [LABS_ROOT]\n')
  process.exit(2)
}
runSupervisor(name, root || undefined).catch((e: Error) => {
  process.stderr.write(`lab supervisor: ${e.stack ?? e}\n`)
  process.exit(1)
})
