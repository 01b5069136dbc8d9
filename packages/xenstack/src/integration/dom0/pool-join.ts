/**
 * Optional `pool.join` of listed hosts into the compute node's pool (reference §18.1: live migration without block
 * migration needs the hosts in one pool). The setting `xenserver.pool_join_hosts` lists standalone hosts (addresses,
 * or `http(s)://address[:port]` URLs) separated by commas, spaces or newlines. A host whose address is already one
 * of the pool's is left alone; any other is asked to join (XAPI's `pool.join` runs on the joining host, with the
 * pool master's address and the pool's credentials), then the task waits — with a deadline — until the pool lists it.
 */
import { connect, type Xapi } from '@xenstack/xenapi'
import type { NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import type { Secret } from '../../node/index.js'
import { settingValue, xenserverSettings } from '../context.js'
import { poolHosts } from './pool-hosts.js'

export interface JoinTarget {
  /** The address the pool will know the host by. */
  address: string
  /** Where its XAPI answers. */
  url: string
}

export function parseJoinList(text: string): JoinTarget[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry) => {
      if (/^https?:\/\//.test(entry)) return { address: new URL(entry).hostname, url: entry }
      if (!/^[A-Za-z0-9.-]+$/.test(entry))
        throw new Error(`xenserver.pool_join_hosts: ${JSON.stringify(entry)} is neither an address nor an http(s) URL`)
      return { address: entry, url: `https://${entry}` }
    })
}

export interface PoolJoinOptions {
  username: string
  password: Secret
  dryRun?: boolean
  /** How long to wait for a joined host to appear in the pool (default 120 s). */
  timeoutMs?: number
  connectTo?: (url: string, username: string, password: string) => Promise<Xapi>
}

export async function joinHosts(
  master: Xapi,
  targets: readonly JoinTarget[],
  opts: PoolJoinOptions,
): Promise<ResourceChange[]> {
  const changes: ResourceChange[] = []
  const pools = (await master.call('pool.get_all')) as string[]
  const masterRef = (await master.call('pool.get_master', pools[0])) as string
  const masterAddress = (await master.call('host.get_address', masterRef)) as string
  const connectTo =
    opts.connectTo ?? ((url: string, username: string, password: string) => connect({ url, username, password }))
  for (const t of targets) {
    const resource = `pool.join ${t.address} into the pool of ${masterAddress}`
    if ((await poolHosts(master)).some((h) => h.address === t.address)) {
      changes.push({ resource, result: 'unchanged' })
      continue
    }
    if (opts.dryRun) {
      changes.push({ resource, result: 'changed', diff: `+ ${t.address} joins the pool` })
      continue
    }
    let joining: Xapi
    try {
      joining = await connectTo(t.url, opts.username, opts.password.reveal())
    } catch (e) {
      throw new Error(`pool.join of ${t.address}: cannot log in to its XAPI at ${t.url}: ${(e as Error).message}`)
    }
    try {
      await joining.call('pool.join', masterAddress, opts.username, opts.password.reveal())
    } catch (e) {
      throw new Error(`pool.join of ${t.address} into ${masterAddress} failed: ${(e as Error).message}`)
    } finally {
      await joining.close().catch(() => {})
    }
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000)
    while (!(await poolHosts(master)).some((h) => h.address === t.address)) {
      if (Date.now() > deadline)
        throw new Error(`pool.join of ${t.address}: the pool of ${masterAddress} does not list it after the join`)
      await new Promise((r) => setTimeout(r, 500))
    }
    changes.push({ resource, result: 'changed' })
  }
  return changes
}

/** The native's part: the listed hosts, if any, with the plugin's credentials. */
export async function joinListedHosts(ctx: NativeTaskContext, master: Xapi): Promise<ResourceChange[]> {
  const list = settingValue(ctx.settings ?? {}, 'xenserver', 'pool_join_hosts')
  if (typeof list !== 'string' || list.trim() === '') return []
  const s = xenserverSettings(ctx)
  if (!s.password) throw new Error(`node ${ctx.node}: xenserver.pool_join_hosts is set but xenserver.password is not`)
  return joinHosts(master, parseJoinList(list), { username: s.username, password: s.password, dryRun: ctx.dryRun })
}
