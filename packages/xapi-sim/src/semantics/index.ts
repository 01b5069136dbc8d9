/** Installs the explicit (hand-written) semantics on a simulator. */
import type { Simulator } from '../simulator.js'
import { installVm } from './vm.js'
import { installDevices } from './devices.js'
import { installNetwork } from './network.js'
import { installPool } from './pool.js'
import { installUpdates } from './updates.js'
import { installMessages } from './message.js'

export function installSemantics(sim: Simulator): void {
  installVm(sim, { pvDriversOnStart: true })
  installDevices(sim)
  installNetwork(sim)
  installPool(sim)
  installUpdates(sim)
  installMessages(sim)
}
