// What the environment tests share: the component selection that enables the XenServer plugin, and the problems an
// EnvironmentError lists.
import assert from 'node:assert/strict'
import { EnvironmentError } from '../../src/plugins/environment.js'

/** XenServer as the hypervisor, with the network and storage it supports (the plugin's components.yaml). */
export const XEN_COMPONENTS = [
  'hypervisor:xenserver',
  'network:neutron:core:ml2',
  'network:neutron:ml2:vlan',
  'storage:block:lvm',
]

/** The problems of the EnvironmentError `fn` throws; fails if it throws none (and rethrows any other error). */
export function environmentProblems(fn: () => unknown): string[] {
  try {
    fn()
  } catch (e) {
    if (e instanceof EnvironmentError) return e.problems
    throw e
  }
  assert.fail('expected an EnvironmentError')
}
