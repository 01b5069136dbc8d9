/**
 * A node's network as the Nodes page shows it: its HIMN status and its NICs with the logical networks assigned to
 * them (Fuel's interface configuration).
 *
 * - HIMN: what the integration's own `HimnAttacher.status` reports through XAPI (the VIF on the network flagged
 *   `is_host_internal_management_network`, plugged or not, its MAC, `vm-data/himn_mac`), the guest's address on it
 *   when a guest agent reported one (VM_guest_metrics `networks["<device>/ip"]`), and — when the server has node
 *   access — what the guest itself has on the interface with that MAC (the himn-guest task's `interfaces`).
 * - NICs: a VM of a pool has one per VIF, named as the guest names the interface with its MAC when the node can be
 *   reached, else `eth<device>`; another node's come from the node itself over its access (`ip link`). The HIMN's
 *   NIC carries no logical network (xenstack configures it).
 * - Assignments are kept in the node record as `data.interfaces = { <network>: <nic> }`, what the deployment reads
 *   (integration/compute/neutron.ts: `data.interfaces.private` is where the tenant VLANs go). Every logical network
 *   is on exactly one NIC, and only on a NIC the node has.
 */
import type { Xapi } from '@xenstack/xenapi'
import { nodeAccessFromRecords } from '../engine/node-access.js'
import { HIMN_FLAG, HimnAttacher } from '../integration/himn/attach.js'
import { interfaces as guestInterfaces } from '../integration/himn/guest.js'
import { resolveVm } from '../integration/context.js'
import type { Executor } from '../node/index.js'
import { connectPool } from '../state/pools.js'
import type { NodeRecord, StateStore } from '../state/store.js'
import { HttpError } from './errors.js'
import type { PoolInventory } from './pools.js'

/** The logical networks a node's NICs carry (Fuel's, without the PXE admin network xenstack does not use). */
export const LOGICAL_NETWORKS = ['public', 'management', 'storage', 'private'] as const
export type LogicalNetwork = (typeof LOGICAL_NETWORKS)[number]

/** How long a look inside the guest may take before the page is answered without it. */
const GUEST_PROBE_MS = 15_000

export interface Nic {
  name: string
  mac: string
  /** The pool network of its VIF (a VM of a pool) or its IPv4 addresses (seen on the node). */
  network?: string
  attached?: boolean
  ipv4?: string[]
  /** The HIMN's NIC: configured by xenstack, carries no logical network. */
  himn: boolean
}

export interface NodeInterfaces {
  node: string
  /** Where the NICs were read: the pool's XAPI (a VM of a pool) or the node itself. */
  source: 'xapi' | 'node'
  nics: Nic[]
  networks: readonly LogicalNetwork[]
  /** `{ <network>: <nic> }` as stored in `data.interfaces` (networks not yet assigned are absent). */
  assignments: Partial<Record<LogicalNetwork, string>>
}

export interface HimnReport {
  node: string
  /** False when the node is not a VM of a pool (a controller reached over SSH): it has no HIMN. */
  applicable: boolean
  reason?: string
  pool?: string
  vm?: { name: string; uuid: string; powerState: string; pvDrivers: boolean; host: string }
  network?: { name: string; bridge: string }
  vif?: { device: string; mac: string; attached: boolean } | null
  xenstoreMac?: string | null
  /** The HIMN tool's status line. */
  status?: string
  /** The guest agent's address on the HIMN VIF, from VM_guest_metrics (absent when no agent reported one). */
  agentIp?: string
  /** Inside the guest over node access: the interface with the HIMN MAC, or why it could not be looked at. */
  guest?: { interface: string | null; ipv4: string[] } | { error: string }
}

/**
 * Opens the node's pool (the server's watched connection when it has one) and runs `fn` on it. A pool that cannot
 * be reached or a VM it does not have is the node record's problem (409 naming the node), not the server's.
 */
async function withPool<T>(
  state: StateStore,
  pools: PoolInventory,
  node: string,
  pool: string,
  fn: (xapi: Xapi) => Promise<T>,
): Promise<T> {
  state.pools.require(pool) // an unknown pool is a 404 naming it
  try {
    const watched = pools.connection(pool)
    if (watched) return await fn(watched)
    const xapi = await connectPool(state, pool)
    try {
      return await fn(xapi)
    } finally {
      await xapi.close().catch(() => undefined)
    }
  } catch (e) {
    if (e instanceof HttpError) throw e
    throw new HttpError(409, `node ${node}: pool ${pool}: ${(e as Error).message}`, { field: 'params.node' })
  }
}

/** Runs `fn` on the node's own executor (its record's ssh/local access), with a deadline; closed afterwards. */
async function onNode<T>(state: StateStore, rec: NodeRecord, fn: (exec: Executor) => Promise<T>): Promise<T> {
  const access = nodeAccessFromRecords([rec], { dataDir: state.dataDir })
  let timer: NodeJS.Timeout | undefined
  try {
    const exec = (await access.executor(rec.name)) as unknown as Executor
    return await Promise.race([
      fn(exec),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`node ${rec.name} did not answer within ${GUEST_PROBE_MS / 1000} s`)),
          GUEST_PROBE_MS,
        )
      }),
    ])
  } finally {
    clearTimeout(timer)
    await access.close()
  }
}

const hasAccess = (rec: NodeRecord) => !!(rec.data?.ssh || rec.data?.local === true)

/** The node's pool and VM from its record, or undefined when it is not a VM of a pool. */
function poolVm(rec: NodeRecord): { pool: string; vm: string } | undefined {
  const { pool, vm } = rec.data ?? {}
  return typeof pool === 'string' && typeof vm === 'string' && vm ? { pool, vm } : undefined
}

export function requireNode(state: StateStore, env: string, node: string): NodeRecord {
  const rec = state.environments.nodes(env).find((n) => n.name === node)
  if (!rec) throw new HttpError(404, `node "${node}" does not exist in environment "${env}"`, { field: 'params.node' })
  return rec
}

export async function himnReport(state: StateStore, pools: PoolInventory, rec: NodeRecord): Promise<HimnReport> {
  const where = poolVm(rec)
  if (!where)
    return {
      node: rec.name,
      applicable: false,
      reason: `${rec.name} is not a VM of a pool (its record has no data.pool and data.vm), so it has no HIMN`,
    }
  const report = await withPool(state, pools, rec.name, where.pool, async (xapi) => {
    const vm = await resolveVm(xapi, where.vm, `node ${rec.name}: data.vm`)
    const s = await new HimnAttacher(xapi).status(vm.ref)
    const { ref: _ref, ...vmInfo } = s.vm
    const r: HimnReport = {
      node: rec.name,
      applicable: true,
      pool: where.pool,
      vm: vmInfo,
      network: { name: s.network.name, bridge: s.network.bridge },
      vif: s.vif ? { device: s.vif.device, mac: s.vif.mac, attached: s.vif.attached } : null,
      xenstoreMac: s.xenstoreMac,
      status: s.status,
    }
    if (s.vif) r.agentIp = await agentIp(xapi, vm.ref, s.vif.device)
    return r
  })
  const mac = report.vif?.mac
  if (mac && hasAccess(rec)) {
    report.guest = await onNode(state, rec, async (exec) => {
      const found = (await guestInterfaces(exec)).find((i) => (i.mac ?? '').toLowerCase() === mac)
      return { interface: found?.name ?? null, ipv4: found?.ipv4 ?? [] }
    }).catch((e: Error) => ({ error: e.message }))
  }
  return report
}

/** `networks["<device>/ip"]` of the VM's guest metrics: what a guest agent reported for that VIF. */
async function agentIp(xapi: Xapi, vm: string, device: string): Promise<string | undefined> {
  const metrics = String(await xapi.call('VM.get_guest_metrics', vm))
  if (!metrics || metrics === 'OpaqueRef:NULL') return undefined
  const networks = (await xapi.call('VM_guest_metrics.get_networks', metrics).catch(() => ({}))) as Record<
    string,
    string
  >
  return networks[`${device}/ip`] || networks[`${device}/ipv4/0`] || undefined
}

/** The node's NICs: its VIFs through XAPI (a VM of a pool), else what the node itself has. */
export async function nodeNics(
  state: StateStore,
  pools: PoolInventory,
  rec: NodeRecord,
): Promise<{ source: 'xapi' | 'node'; nics: Nic[] }> {
  const where = poolVm(rec)
  if (where) {
    const vifs = await withPool(state, pools, rec.name, where.pool, async (xapi) => {
      const vm = await resolveVm(xapi, where.vm, `node ${rec.name}: data.vm`)
      const vifs = (await xapi.call('VM.get_VIFs', vm.ref)) as string[]
      const nics = await Promise.all(
        vifs.map(async (ref) => {
          const v = (await xapi.call('VIF.get_record', ref)) as Record<string, unknown>
          const net = (await xapi.call('network.get_record', v.network)) as Record<string, unknown>
          const flags = (net.other_config ?? {}) as Record<string, string>
          return {
            device: String(v.device),
            name: `eth${String(v.device)}`,
            mac: String(v.MAC).toLowerCase(),
            network: String(net.name_label),
            attached: v.currently_attached === true,
            himn: flags[HIMN_FLAG] === 'true',
          }
        }),
      )
      return nics.sort((a, b) => Number(a.device) - Number(b.device))
    })
    // netfront names NICs in the order they appear, not by VIF device (a hot-plugged device 9 may be eth2): the
    // guest's own name for the MAC wins when the node can be reached
    const seen = hasAccess(rec)
      ? await onNode(state, rec, guestInterfaces).catch(() => [] as { name: string; mac?: string; ipv4: string[] }[])
      : []
    const byMac = new Map(seen.map((i) => [(i.mac ?? '').toLowerCase(), i]))
    return {
      source: 'xapi',
      nics: vifs.map(({ device: _device, ...n }) => {
        const inGuest = byMac.get(n.mac)
        return inGuest ? { ...n, name: inGuest.name, ipv4: inGuest.ipv4 } : n
      }),
    }
  }
  if (!hasAccess(rec))
    throw new HttpError(
      409,
      `node ${rec.name}: its NICs are unknown: it is neither a VM of a pool (data.pool + data.vm) nor reachable ` +
        `(data.ssh or data.local)`,
      { field: 'params.node' },
    )
  const seen = await onNode(state, rec, guestInterfaces).catch((e: Error) => {
    throw new HttpError(409, `node ${rec.name}: its NICs could not be read: ${e.message}`, { field: 'params.node' })
  })
  return {
    source: 'node',
    nics: seen.map((i) => ({
      name: i.name,
      mac: (i.mac ?? '').toLowerCase(),
      ipv4: i.ipv4,
      himn: i.ipv4.some((a) => a.startsWith('169.254.')),
    })),
  }
}

export function storedAssignments(rec: NodeRecord): Partial<Record<LogicalNetwork, string>> {
  const stored = (rec.data?.interfaces ?? {}) as Record<string, unknown>
  const out: Partial<Record<LogicalNetwork, string>> = {}
  for (const n of LOGICAL_NETWORKS) if (typeof stored[n] === 'string') out[n] = stored[n] as string
  return out
}

/**
 * `{ <nic>: [networks…] }` (what the page sends) → `{ <network>: <nic> }`, refused with every problem: a NIC the
 * node does not have, the HIMN's NIC, a network on two NICs or on none, and a network put on another NIC than the
 * one holding the node's address on it (`data.addresses`, which the routes and NAT follow), when the node's
 * addresses could be read.
 */
export function assignmentsFrom(
  node: string,
  byNic: Record<string, string[]>,
  nics: readonly Nic[],
  addresses: Record<string, unknown> = {},
): Record<LogicalNetwork, string> {
  const problems: string[] = []
  const names = nics.map((n) => n.name)
  const where = new Map<string, string[]>()
  for (const [nic, networks] of Object.entries(byNic)) {
    const known = nics.find((n) => n.name === nic)
    if (!known) {
      if (networks.length)
        problems.push(`body.nics.${nic}: node ${node} has no NIC ${nic} (its NICs: ${names.join(', ') || 'none'})`)
      continue
    }
    if (known.himn && networks.length)
      problems.push(`body.nics.${nic}: ${nic} is the HIMN's NIC; it carries no logical network`)
    for (const n of networks) where.set(n, [...(where.get(n) ?? []), nic])
  }
  for (const n of LOGICAL_NETWORKS) {
    const on = where.get(n) ?? []
    if (on.length === 0) problems.push(`${n}: on no NIC; drag it onto one of ${names.join(', ')}`)
    if (on.length > 1) problems.push(`${n}: on ${on.join(' and ')}; a network is on exactly one NIC`)
    const address = addresses[n]
    if (on.length !== 1 || typeof address !== 'string') continue
    const ip = address.split('/')[0]
    const holder = nics.find((x) => x.ipv4?.some((a) => a.split('/')[0] === ip))
    if (holder && holder.name !== on[0])
      problems.push(`${n}: the node's ${n} address ${address} is on ${holder.name}, not ${on[0]}`)
  }
  if (problems.length)
    throw new HttpError(400, `interfaces of ${node} not saved: ${problems.join('; ')}`, {
      field: problems[0].startsWith('body.') ? problems[0].split(':')[0] : 'body.nics',
      problems,
    })
  return Object.fromEntries(LOGICAL_NETWORKS.map((n) => [n, where.get(n)![0]])) as Record<LogicalNetwork, string>
}
