/**
 * What every XenServer native task reads from its context: the pool's XAPI connection, the `xenserver` settings,
 * the node's record data and the compute VM it runs in. Small typed accessors so each native does not cast the
 * engine's `unknown`s itself, and so a missing piece fails with the node's name and what to do about it.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { NativeTaskContext } from '../engine/tasks.js'
import { Secret, type Executor } from '../node/index.js'

export class IntegrationContextError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'IntegrationContextError'
  }
}

/** The node's pool connection (LAB's engine wiring gives `ctx.xapi`); throws naming the node when there is none. */
export function xapiOf(ctx: Pick<NativeTaskContext, 'node' | 'xapi'>): Xapi {
  const x = ctx.xapi as Xapi | undefined
  if (!x || typeof (x as { call?: unknown }).call !== 'function')
    throw new IntegrationContextError(
      `node ${ctx.node}: no XAPI connection: the environment has no pool for this node ` +
        `(its data.pool must name a pool recorded with the environment's pools)`,
    )
  return x
}

/** The compute VM's executor as node access's `Executor` (the engine hands a structural subset of it). */
export function execOf(ctx: Pick<NativeTaskContext, 'exec'>): Executor {
  return ctx.exec as unknown as Executor
}

/**
 * The node's record data (`store.environments.nodes(env)[i].data`: `vm`, `xapiHost`, `addresses`, `dom0`, `pool`)
 * when the engine passes it as `ctx.nodeData`; `{}` otherwise, and every caller has a way without it (the compute
 * VM is found from its MACs through XAPI).
 */
export interface NodeData {
  vm?: string
  xapiHost?: string | null
  pool?: string
  addresses?: Record<string, string>
  dom0?: { name?: string; xapiHost?: string | null; host?: string; hostKeyFingerprints?: string[]; ssh?: unknown }
  [key: string]: unknown
}

export function nodeDataOf(ctx: object): NodeData {
  const d = (ctx as { nodeData?: unknown }).nodeData
  return d && typeof d === 'object' ? (d as NodeData) : {}
}

// -- settings ----------------------------------------------------------------------------------------------

/** A setting's value from a settings tree (`{ group: { key: { value } } }`), or a plain `{ group: { key: v } }`. */
export function settingValue(settings: Record<string, unknown>, group: string, key: string): unknown {
  const g = settings[group]
  if (!g || typeof g !== 'object') return undefined
  const s = (g as Record<string, unknown>)[key]
  if (s && typeof s === 'object' && !Array.isArray(s) && 'value' in s) return (s as { value: unknown }).value
  return s
}

/** The `xenserver` section the HIMN, pre-test and SSH-trust tasks use; the password only as a `Secret`. */
export interface XenServerSettings {
  username: string
  password?: Secret
  /** The operator's consent to a clean shutdown/start cycle of the compute VM to attach the HIMN. */
  allowVmRestart: boolean
}

export function xenserverSettings(ctx: Pick<NativeTaskContext, 'settings'>): XenServerSettings {
  const v = (key: string) => settingValue(ctx.settings ?? {}, 'xenserver', key)
  const username = v('username')
  const password = v('password')
  const consent = v('allow_vm_restart')
  return {
    username: typeof username === 'string' && username ? username : 'root',
    password: typeof password === 'string' && password && password !== '********' ? new Secret(password) : undefined,
    allowVmRestart: consent === true || consent === 'true',
  }
}

// -- the compute VM ----------------------------------------------------------------------------------------

export interface ComputeVm {
  ref: string
  uuid: string
  name: string
}

/** MAC addresses of the node's interfaces (lowercase), read on the node. */
export async function nodeMacs(exec: Executor): Promise<string[]> {
  const r = await exec.run(['sh', '-c', 'cat /sys/class/net/*/address 2>/dev/null'], { allowedExitCodes: [0, 1] })
  return [...new Set(r.stdout.split('\n').map((l) => l.trim().toLowerCase()))].filter(
    (m) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m) && m !== '00:00:00:00:00:00',
  )
}

/**
 * The VM this node is: the record's `vm` (a ref or a uuid) when known, else the one VM whose VIFs carry the node's
 * MACs (what os-xenapi's `get_domu_vifs_by_eth` relies on: XAPI generated those MACs for this VM).
 */
export async function computeVmOf(
  ctx: Pick<NativeTaskContext, 'node' | 'xapi' | 'exec'> & object,
  xapi: Xapi = xapiOf(ctx),
): Promise<ComputeVm> {
  const known = nodeDataOf(ctx).vm
  if (known) return resolveVm(xapi, known, `node ${ctx.node}: data.vm`)
  const macs = new Set(await nodeMacs(execOf(ctx)))
  const vifs = (await xapi.call('VIF.get_all_records')) as Record<string, { MAC: string; VM: string }>
  const vms = new Set<string>()
  for (const v of Object.values(vifs)) if (macs.has(String(v.MAC).toLowerCase())) vms.add(v.VM)
  const records = await Promise.all(
    [...vms].map(async (ref) => ({ ref, rec: (await xapi.call('VM.get_record', ref)) as Record<string, unknown> })),
  )
  const guests = records.filter((r) => !r.rec.is_a_template && !r.rec.is_control_domain)
  if (guests.length !== 1)
    throw new IntegrationContextError(
      `node ${ctx.node}: cannot tell which VM it is: ${guests.length} VMs of the pool have a VIF with one of its MACs ` +
        `(${[...macs].join(', ') || 'none found'})${guests.length ? ': ' + guests.map((g) => g.rec.name_label).join(', ') : ''}; ` +
        `record the VM's uuid in the node's data.vm`,
    )
  const g = guests[0]
  return { ref: g.ref, uuid: String(g.rec.uuid), name: String(g.rec.name_label) }
}

/** A VM by ref (`OpaqueRef:…`) or uuid; `what` names where the value came from in the error. */
export async function resolveVm(xapi: Xapi, refOrUuid: string, what: string): Promise<ComputeVm> {
  try {
    const ref = refOrUuid.startsWith('OpaqueRef:')
      ? refOrUuid
      : ((await xapi.call('VM.get_by_uuid', refOrUuid)) as string)
    const rec = (await xapi.call('VM.get_record', ref)) as Record<string, unknown>
    return { ref, uuid: String(rec.uuid), name: String(rec.name_label) }
  } catch (e) {
    // Only XAPI's own "no such object" answers mean the VM is missing; a refused login or a dead connection is
    // something else and must not read as a wrong VM reference.
    const missing = ['HANDLE_INVALID', 'UUID_INVALID'].includes((e as { code?: unknown }).code as string)
    throw new IntegrationContextError(
      `${what}: ${missing ? 'no VM' : 'cannot read VM'} ${refOrUuid} in the pool at ${xapi.url}: ${(e as Error).message}`,
    )
  }
}
