/**
 * What the dom0 tasks learn about the pool through XAPI: the host a compute VM runs on, and every host's address
 * (the other dom0s reach it there). Also the place where a dom0 publishes the public halves of its SSH identity
 * (`other_config:xenstack-dom0-ssh-*` on its host record) so the other dom0s of the pool can trust it: XAPI is the
 * one channel every compute node's tasks share, and public keys are not secrets.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { Dom0Identity } from './ssh-mesh.js'

export interface PoolHost {
  ref: string
  name: string
  address: string
  otherConfig: Record<string, string>
}

export async function poolHosts(xapi: Xapi): Promise<PoolHost[]> {
  const recs = (await xapi.call('host.get_all_records')) as Record<string, Record<string, unknown>>
  return Object.entries(recs)
    .map(([ref, r]) => ({
      ref,
      name: String(r.name_label),
      address: String(r.address),
      otherConfig: (r.other_config as Record<string, string>) ?? {},
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/** The host the VM runs on (its `resident_on`); an error when the VM is not running. */
export async function hostOfVm(xapi: Xapi, vmRef: string, what: string): Promise<string> {
  const host = (await xapi.call('VM.get_resident_on', vmRef)) as string
  if (!host || host === 'OpaqueRef:NULL') throw new Error(`${what}: the VM ${vmRef} is not running on any host`)
  return host
}

export const PUBLISHED_KEY = 'xenstack-dom0-ssh-key'
export const PUBLISHED_HOST_KEYS = 'xenstack-dom0-ssh-host-keys'

/** The identity a host's dom0 published, if any. */
export function publishedIdentity(h: PoolHost): Dom0Identity | undefined {
  const hostKeys = (h.otherConfig[PUBLISHED_HOST_KEYS] ?? '').split('\n').filter(Boolean)
  if (hostKeys.length === 0) return undefined
  return { publicKey: h.otherConfig[PUBLISHED_KEY] || undefined, hostKeys }
}

/** Publishes a dom0's identity on its host record; returns whether anything changed. */
export async function publishIdentity(xapi: Xapi, host: PoolHost, id: Dom0Identity): Promise<boolean> {
  const want: Record<string, string> = { [PUBLISHED_HOST_KEYS]: id.hostKeys.join('\n') }
  if (id.publicKey) want[PUBLISHED_KEY] = id.publicKey
  let changed = false
  for (const [k, v] of Object.entries(want)) {
    if (host.otherConfig[k] === v) continue
    if (k in host.otherConfig) await xapi.call('host.remove_from_other_config', host.ref, k)
    await xapi.call('host.add_to_other_config', host.ref, k, v)
    changed = true
  }
  return changed
}
