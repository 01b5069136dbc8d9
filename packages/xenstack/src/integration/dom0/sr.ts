/**
 * The SR /boot/guest and /images live on: the pool's default SR, found through XAPI (not by scraping `xe`). It must
 * be file-based (ext or nfs: mounted at /var/run/sr-mount/<uuid>) and plugged on the host whose dom0 is prepared.
 */
import type { Xapi } from '@xenstack/xenapi'

export interface DefaultSr {
  ref: string
  uuid: string
  name: string
  type: string
}

const FILE_BASED = new Set(['ext', 'nfs', 'file'])

export async function defaultSrOf(xapi: Xapi, hostRef?: string): Promise<DefaultSr> {
  const pools = (await xapi.call('pool.get_all')) as string[]
  if (pools.length === 0) throw new Error(`XAPI at ${xapi.url}: no pool object`)
  const ref = (await xapi.call('pool.get_default_SR', pools[0])) as string
  if (!ref || ref === 'OpaqueRef:NULL')
    throw new Error(`pool at ${xapi.url} has no default SR; set one (pool-param-set default-SR=…)`)
  const rec = (await xapi.call('SR.get_record', ref)) as Record<string, unknown>
  const sr = { ref, uuid: String(rec.uuid), name: String(rec.name_label), type: String(rec.type) }
  if (!FILE_BASED.has(sr.type))
    throw new Error(
      `the pool's default SR "${sr.name}" (${sr.uuid}) is of type ${sr.type}; /boot/guest and /images need a ` +
        `file-based SR (ext or nfs) mounted under /var/run/sr-mount`,
    )
  if (hostRef) {
    const pbds = (rec.PBDs as string[]) ?? []
    const hosts = await Promise.all(pbds.map((p) => xapi.call('PBD.get_host', p) as Promise<string>))
    if (!hosts.includes(hostRef))
      throw new Error(`the pool's default SR "${sr.name}" (${sr.uuid}) has no PBD on host ${hostRef}`)
  }
  return sr
}
