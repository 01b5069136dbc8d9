/**
 * What the server knows of each pool's XAPI: hosts, VMs, networks and SRs, discovered by `event.from` (the
 * client's ObjectCache: a full snapshot, then every change) and kept current for as long as the server runs.
 * Changes are published on the hub's `pools:<name>` channel. A pool that cannot be reached is reported with
 * the reason and tried again every 10 s; credentials come from the state store (decrypted only to log in).
 */
import type { ObjectCache, Xapi } from '@xenstack/xenapi'
import { connectPool } from '../state/pools.js'
import type { StateStore } from '../state/store.js'
import type { EventHub } from './events.js'

const CLASSES = ['host', 'vm', 'network', 'sr', 'pool']
const RETRY_MS = 10_000

export type PoolStatus = 'connecting' | 'ready' | 'error'

interface Watched {
  status: PoolStatus
  error?: string
  xapi?: Xapi
  cache?: ObjectCache
  retry?: NodeJS.Timeout
  closed: boolean
}

const str = (v: unknown) => (typeof v === 'string' ? v : '')

export const poolChannel = (name: string) => `pools:${name}`

export class PoolInventory {
  private readonly pools = new Map<string, Watched>()

  constructor(
    private readonly state: StateStore,
    private readonly hub: EventHub,
  ) {}

  /** Starts watching every pool in the store. */
  watchAll(): void {
    for (const p of this.state.pools.list()) this.watch(p.name)
  }

  /** Starts (or restarts) watching one pool; resolves once the first snapshot is in or the attempt failed. */
  async watch(name: string): Promise<void> {
    this.unwatch(name)
    const w: Watched = { status: 'connecting', closed: false }
    this.pools.set(name, w)
    const fail = (e: unknown) => {
      if (w.closed) return
      w.status = 'error'
      w.error = (e as Error).message
      this.hub.publish(poolChannel(name), 'status', { pool: name, status: w.status, error: w.error })
      void w.cache?.close().catch(() => undefined)
      void w.xapi?.close().catch(() => undefined)
      w.cache = undefined
      w.xapi = undefined
      w.retry = setTimeout(() => {
        if (!w.closed) void this.watch(name)
      }, RETRY_MS)
      w.retry.unref()
    }
    try {
      w.xapi = await connectPool(this.state, name)
      if (w.closed) return void (await w.xapi.close())
      const cache = w.xapi.cache(CLASSES)
      w.cache = cache
      cache.on('error', fail)
      for (const ev of ['add', 'update', 'remove'] as const)
        cache.on(ev, (o: { $type: string; $ref: string }) => {
          if (w.status === 'ready') this.hub.publish(poolChannel(name), ev, { pool: name, class: o.$type, ref: o.$ref })
        })
      await cache.ready
      if (w.closed) return
      w.status = 'ready'
      w.error = undefined
      this.hub.publish(poolChannel(name), 'status', { pool: name, status: w.status })
    } catch (e) {
      fail(e)
    }
  }

  /**
   * Starts watching a pool recorded after the server started (by `lab up` or the CLI in another process);
   * resolves once its first snapshot is in or the attempt failed, at most after `waitMs`.
   */
  async ensure(name: string, waitMs = 0): Promise<void> {
    if (this.pools.has(name)) return
    const first = this.watch(name)
    if (waitMs > 0) await Promise.race([first, new Promise((r) => setTimeout(r, waitMs).unref())])
  }

  unwatch(name: string): void {
    const w = this.pools.get(name)
    if (!w) return
    w.closed = true
    if (w.retry) clearTimeout(w.retry)
    void w.cache?.close().catch(() => undefined)
    void w.xapi?.close().catch(() => undefined)
    this.pools.delete(name)
  }

  /** The watched pool's logged-in connection while it is ready (for reads the inventory does not keep). */
  connection(name: string): Xapi | undefined {
    const w = this.pools.get(name)
    return w?.status === 'ready' ? w.xapi : undefined
  }

  status(name: string): { status: PoolStatus | 'not watched'; error?: string } {
    const w = this.pools.get(name)
    return w ? { status: w.status, ...(w.error ? { error: w.error } : {}) } : { status: 'not watched' }
  }

  /** The name the pool gives itself in XAPI (its pool object's name_label), once discovered. */
  xapiPoolName(name: string): string | undefined {
    const c = this.pools.get(name)?.cache
    const label = c?.all('pool')[0]?.name_label
    return typeof label === 'string' && label ? label : undefined
  }

  /** The discovered objects, in the shapes the API returns (names resolved, templates and dom0s left out). */
  inventory(name: string) {
    const c = this.pools.get(name)?.cache
    if (!c) return undefined
    const label = (ref: unknown) => str(c.get(str(ref))?.name_label) || undefined
    const hosts = c.all('host').map((h) => ({
      ref: h.$ref,
      uuid: str(h.uuid),
      name: str(h.name_label),
      address: str(h.address),
      enabled: h.enabled === true,
      version: (h.software_version as Record<string, string> | undefined)?.product_version,
    }))
    const vms = c
      .all('vm')
      .filter((v) => v.is_a_template !== true && v.is_control_domain !== true && v.is_a_snapshot !== true)
      .map((v) => ({
        ref: v.$ref,
        uuid: str(v.uuid),
        name: str(v.name_label),
        powerState: str(v.power_state),
        host: label(v.resident_on),
        vcpus: Number(v.VCPUs_max ?? 0),
        memory: Number(v.memory_static_max ?? 0),
        otherConfig: v.other_config,
      }))
    const networks = c.all('network').map((n) => ({
      ref: n.$ref,
      uuid: str(n.uuid),
      name: str(n.name_label),
      bridge: str(n.bridge),
      mtu: Number(n.MTU ?? 0),
      otherConfig: n.other_config,
    }))
    const srs = c.all('sr').map((s) => ({
      ref: s.$ref,
      uuid: str(s.uuid),
      name: str(s.name_label),
      type: str(s.type),
      shared: s.shared === true,
      size: Number(s.physical_size ?? 0),
      used: Number(s.physical_utilisation ?? 0),
    }))
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name)
    return {
      hosts: hosts.sort(byName),
      vms: vms.sort(byName),
      networks: networks.sort(byName),
      srs: srs.sort(byName),
    }
  }

  async close(): Promise<void> {
    for (const name of [...this.pools.keys()]) this.unwatch(name)
  }
}
