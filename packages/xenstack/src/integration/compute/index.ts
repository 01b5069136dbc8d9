/**
 * The compute configuration steps of the XenServer integration (PLUGIN): the guest tools check, nova-compute,
 * the OVS agent and the extras (rootwrap, multipath, image-cache cleanup), all release-aware (release.ts,
 * config-table.ts).
 */
import type { NativeTask } from '../../engine/tasks.js'
import { computeExtras } from './extras.js'
import { guestTools } from './guest-tools.js'
import { neutronAgent } from './neutron.js'
import { novaCompute } from './nova.js'

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  'xenserver.guest-tools': guestTools,
  'xenserver.nova-compute': novaCompute,
  'xenserver.neutron-agent': neutronAgent,
  'xenserver.compute-extras': computeExtras,
}
