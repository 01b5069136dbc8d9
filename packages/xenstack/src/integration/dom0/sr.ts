/**
 * The SR /boot/guest and /images live on, found through XAPI (not by scraping `xe`): the pool's default SR when it
 * is file-based (ext or nfs: mounted at /var/run/sr-mount/<uuid>) and plugged on the host whose dom0 is prepared;
 * otherwise that host's own local file-based SR (in a pool whose default SR is the master's local storage, the
 * other hosts have their own). None of them: an error saying what was found.
 */
import type { Xapi } from '@xenstack/xenapi'

export interface HostSr {
  ref: string
  uuid: string
  name: string
  type: string
  /** Why this SR: `default` (the pool's default SR) or `local` (the host's own). */
  why: 'default' | 'local'
}

const FILE_BASED = new Set(['ext', 'nfs', 'file'])
const NULL_REF = 'OpaqueRef:NULL'

export async function srForHost(xapi: Xapi, hostRef: string, hostName = hostRef): Promise<HostSr> {
  const pools = (await xapi.call('pool.get_all')) as string[]
  if (pools.length === 0) throw new Error(`XAPI at ${xapi.url}: no pool object`)
  const defaultRef = (await xapi.call('pool.get_default_SR', pools[0])) as string
  const srs = (await xapi.call('SR.get_all_records')) as Record<string, Record<string, unknown>>
  const pbds = (await xapi.call('PBD.get_all_records')) as Record<string, { host: string; SR: string }>
  const onHost = new Set(
    Object.values(pbds)
      .filter((p) => p.host === hostRef)
      .map((p) => p.SR),
  )
  const usable = (ref: string): boolean => !!srs[ref] && FILE_BASED.has(String(srs[ref].type)) && onHost.has(ref)
  const describe = (ref: string, why: HostSr['why']): HostSr => ({
    ref,
    uuid: String(srs[ref].uuid),
    name: String(srs[ref].name_label),
    type: String(srs[ref].type),
    why,
  })
  if (defaultRef && defaultRef !== NULL_REF && usable(defaultRef)) return describe(defaultRef, 'default')
  const local = Object.keys(srs)
    .filter((ref) => usable(ref) && srs[ref].shared !== true)
    .sort((a, b) => String(srs[a].name_label).localeCompare(String(srs[b].name_label)))
  if (local.length > 0) return describe(local[0], 'local')
  const def = defaultRef && srs[defaultRef] ? `"${srs[defaultRef].name_label}" (${srs[defaultRef].type})` : 'none'
  const plugged = [...onHost].filter((r) => srs[r]).map((r) => `"${srs[r].name_label}" (${srs[r].type})`)
  throw new Error(
    `host ${hostName}: no file-based SR (ext or nfs) is plugged on it for /boot/guest and /images; the pool's default ` +
      `SR is ${def}, the host has ${plugged.length ? plugged.join(', ') : 'no SR plugged'}`,
  )
}
