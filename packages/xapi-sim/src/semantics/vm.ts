/**
 * VM semantics (§11): power-state transitions with VM_BAD_POWER_STATE [vm, expected, actual], allowed_operations and
 * current_operations kept right, resident_on/domid, VM_metrics/VM_guest_metrics, templates (clone/copy/provision),
 * destroy from Halted/Suspended taking its VBDs/VIFs/metrics along.
 */
import { XapiError } from '../errors.js'
import { NULL_REF, type MessageSpec } from '../model.js'
import type { XapiRecord } from '../store.js'
import { nowXapi } from '../time.js'
import type { CallContext } from '../dispatch.js'
import type { Simulator } from '../simulator.js'
import { constructorRecord } from './implicit.js'
import { createGuestMetrics, randomMac } from '../builder.js'

type Power = 'Halted' | 'Paused' | 'Running' | 'Suspended'

const H: Power[] = ['Halted']
const R: Power[] = ['Running']
const ALL: Power[] = ['Halted', 'Paused', 'Running', 'Suspended']

/** allowed_power_states per operation (§11). */
const ALLOWED_POWER: Record<string, Power[]> = {
  start: H,
  start_on: H,
  provision: H,
  make_into_template: H,
  changing_shadow_memory: H,
  changing_NVRAM: H,
  create_vtpm: H,
  unpause: ['Paused'],
  resume: ['Suspended'],
  resume_on: ['Suspended'],
  clean_shutdown: R,
  clean_reboot: R,
  pause: R,
  suspend: R,
  pool_migrate: R,
  changing_VCPUs_live: R,
  changing_memory_live: R,
  snapshot_with_quiesce: R,
  send_sysrq: R,
  send_trigger: R,
  call_plugin: R,
  hard_reboot: ['Paused', 'Running'],
  hard_shutdown: ['Paused', 'Suspended', 'Running'],
  shutdown: ['Paused', 'Suspended', 'Running'],
  checkpoint: ['Paused', 'Suspended', 'Running'],
  clone: H,
  copy: H,
  destroy: ['Halted', 'Suspended'],
  export: ['Halted', 'Suspended'],
  migrate_send: ['Halted', 'Suspended', 'Running'],
  changing_dynamic_range: ['Halted', 'Running'],
  changing_static_range: H,
  changing_memory_limits: H,
  changing_VCPUs: H,
  snapshot: ALL,
  revert: ALL,
  metadata_export: ALL,
}

const NEVER_LISTED = new Set([
  'create_template',
  'power_state_reset',
  'csvm',
  'get_boot_record',
  'send_sysrq',
  'send_trigger',
  'query_services',
  'shutdown',
  'call_plugin',
  'changing_memory_live',
  'awaiting_memory_live',
  'changing_memory_limits',
  'changing_shadow_memory_live',
  'changing_VCPUs',
  'assert_operation_valid',
  'data_source_op',
  'update_allowed_operations',
  'import',
  'reverting',
])
const TEMPLATE_OPS = new Set([
  'changing_dynamic_range',
  'changing_static_range',
  'changing_memory_limits',
  'changing_shadow_memory',
  'changing_VCPUs',
  'changing_NVRAM',
  'clone',
  'copy',
  'export',
  'metadata_export',
  'provision',
])
const SNAPSHOT_OPS = new Set(['revert', 'clone', 'copy', 'export', 'destroy', 'hard_shutdown', 'metadata_export'])
const PARALLEL_GROUPS = [new Set(['clone', 'copy', 'export']), new Set(['snapshot', 'checkpoint'])]

function lower(p: string): string {
  return p.toLowerCase()
}

/** Whether `op` is allowed now; when not, the error (code and params — an XapiError is built only when thrown). */
function checkOperation(vm: string, rec: XapiRecord, op: string): unknown[] | undefined {
  const power = rec.power_state as Power
  if (rec.is_control_domain) return ['OPERATION_NOT_ALLOWED', `${op} is not allowed on a control domain`]
  if (rec.is_a_template) {
    const ok = TEMPLATE_OPS.has(op) || (!rec.is_default_template && (op === 'destroy' || op === 'migrate_send'))
    if (!ok) return ['VM_IS_TEMPLATE', vm, op]
  } else if (rec.is_a_snapshot) {
    if (!SNAPSHOT_OPS.has(op)) return ['OPERATION_NOT_ALLOWED', `${op} is not allowed on a snapshot`]
  } else if (op === 'provision') {
    return ['OPERATION_NOT_ALLOWED', 'only templates can be provisioned']
  }
  let allowed = ALLOWED_POWER[op] ?? ALL
  if ((op === 'clone' || op === 'copy') && rec.is_a_snapshot) allowed = ['Halted', 'Suspended']
  if (rec.is_a_template) allowed = ALL
  if (!allowed.includes(power) && !(rec.is_a_snapshot && SNAPSHOT_OPS.has(op) && op !== 'hard_shutdown'))
    return ['VM_BAD_POWER_STATE', vm, allowed.map(lower).join(', '), lower(power)]
  for (const task in rec.current_operations as Record<string, string>) {
    const cur = (rec.current_operations as Record<string, string>)[task]
    if (PARALLEL_GROUPS.some((g) => g.has(cur) && g.has(op))) continue
    return ['OTHER_OPERATION_IN_PROGRESS', 'VM', vm, cur, task]
  }
  return undefined
}

/** Interned allowed_operations arrays (most VMs share one of a few). */
const opsCache = new Map<string, string[]>()
const byState = new Map<string, string[]>()

let vmOps: string[] | undefined

/** Recomputes allowed_operations of a VM from its state (§11 rules). */
export function refreshVmOperations(sim: Simulator, vm: string): void {
  vmOps ??= sim.model.enumValues('vm_operations') ?? Object.keys(ALLOWED_POWER)
  const rec = sim.db.get(vm)
  if (!rec || rec.is_control_domain) return
  // Without operations in progress the answer only depends on a few flags: memoised (a 50,000-VM pool builds fast).
  const idle = Object.keys(rec.current_operations as object).length === 0
  const stateKey = `${String(rec.power_state)}|${rec.is_a_template ? 1 : 0}${rec.is_default_template ? 1 : 0}${rec.is_a_snapshot ? 1 : 0}`
  let shared = idle ? byState.get(stateKey) : undefined
  if (!shared) {
    const ops: string[] = []
    for (const op of vmOps) if (!NEVER_LISTED.has(op) && !checkOperation(vm, rec, op)) ops.push(op)
    const key = ops.join(',')
    shared = opsCache.get(key)
    if (!shared) opsCache.set(key, (shared = Object.freeze(ops) as string[]))
    if (idle) byState.set(stateKey, shared)
  }
  const cur = rec.allowed_operations as string[]
  if (cur === shared || (cur.length === shared.length && cur.every((x, i) => x === shared![i]))) return
  sim.db.set(vm, 'allowed_operations', shared)
}

/** Asserts an operation is allowed (power state, template, concurrency); throws XAPI's error otherwise. */
export function assertVmOperation(sim: Simulator, vm: string, op: string): XapiRecord {
  const rec = sim.db.must('VM', vm)
  const err = checkOperation(vm, rec, op)
  if (err) throw new XapiError(err[0] as string, ...err.slice(1))
  return rec
}

/** Runs `fn` with `op` in the VM's current_operations (keyed by the task, or a dummy key for sync calls). */
async function withOperation<T>(ctx: CallContext, vm: string, op: string, fn: () => T | Promise<T>): Promise<T> {
  const sim = ctx.sim
  assertVmOperation(sim, vm, op)
  const key = ctx.task ?? `DummyRef:${op}-${Date.now()}-${Math.random().toString(36).slice(2)}`
  const rec = sim.db.get(vm)!
  sim.db.set(vm, 'current_operations', { ...(rec.current_operations as object), [key]: op })
  refreshVmOperations(sim, vm)
  try {
    if (ctx.task) {
      // Let observers see the operation in progress before it completes.
      ctx.progress(0.5)
      await new Promise((r) => setImmediate(r))
      ctx.checkCancelled()
    }
    return await fn()
  } finally {
    if (sim.db.has('VM', vm)) {
      const ops = { ...(sim.db.get(vm)!.current_operations as Record<string, string>) }
      delete ops[key]
      sim.db.set(vm, 'current_operations', ops)
      refreshVmOperations(sim, vm)
    }
  }
}

function setDevicesAttached(sim: Simulator, vm: string, attached: boolean): void {
  const rec = sim.db.get(vm)!
  for (const vbd of rec.VBDs as string[]) if (sim.db.has('VBD', vbd)) sim.db.set(vbd, 'currently_attached', attached)
  for (const vif of rec.VIFs as string[]) if (sim.db.has('VIF', vif)) sim.db.set(vif, 'currently_attached', attached)
}

/** Whether the guest reports PV drivers (hot-plug needs them on a running VM). */
export function hasPvDrivers(sim: Simulator, vm: XapiRecord): boolean {
  const gm = vm.guest_metrics as string
  if (!gm || gm === NULL_REF || !sim.db.has('VM_guest_metrics', gm)) return false
  const g = sim.db.get(gm)!
  return g.PV_drivers_detected === true || Object.keys(g.PV_drivers_version as object).length > 0
}

export interface VmBehaviour {
  /** Whether guests started by the simulator report PV drivers (default true). */
  pvDriversOnStart: boolean
}

function boot(sim: Simulator, vm: string, host: string, paused: boolean, behaviour: VmBehaviour): void {
  const rec = sim.db.get(vm)!
  const now = nowXapi()
  let gm = rec.guest_metrics as string
  if (behaviour.pvDriversOnStart && (gm === NULL_REF || !sim.db.has('VM_guest_metrics', gm)))
    gm = createGuestMetrics(sim)
  sim.db.update(vm, {
    power_state: paused ? 'Paused' : 'Running',
    resident_on: host,
    domid: sim.nextDomid(host),
    memory_target: rec.memory_static_max,
    guest_metrics: gm,
  })
  const m = rec.metrics as string
  if (sim.db.has('VM_metrics', m))
    sim.db.update(m, {
      memory_actual: rec.memory_static_max,
      VCPUs_number: rec.VCPUs_at_startup,
      start_time: now,
      last_updated: now,
      current_domain_type: rec.domain_type === 'unspecified' ? 'hvm' : rec.domain_type,
      state: paused ? ['paused'] : ['running'],
    })
  setDevicesAttached(sim, vm, true)
}

function halt(sim: Simulator, vm: string, suspended = false): void {
  const rec = sim.db.get(vm)!
  const gm = rec.guest_metrics as string
  if (gm !== NULL_REF && sim.db.has('VM_guest_metrics', gm)) sim.db.destroy(gm)
  sim.db.update(vm, {
    power_state: suspended ? 'Suspended' : 'Halted',
    resident_on: NULL_REF,
    domid: -1,
    memory_target: 0,
    guest_metrics: NULL_REF,
  })
  const m = rec.metrics as string
  if (sim.db.has('VM_metrics', m))
    sim.db.update(m, { memory_actual: 0, VCPUs_number: 0, state: [], last_updated: nowXapi() })
  setDevicesAttached(sim, vm, false)
}

function pickHost(sim: Simulator, vm: XapiRecord): string {
  const aff = vm.affinity as string
  if (aff !== NULL_REF && sim.db.has('host', aff) && sim.db.get(aff)!.enabled) return aff
  const enabled = sim.db.where('host', (h) => h.enabled === true)
  if (enabled.length === 0) throw new XapiError('NO_HOSTS_AVAILABLE')
  return enabled[0]
}

/** Copies a VM (with its devices; disks cloned onto `sr` or their own SR). */
function cloneVm(sim: Simulator, vm: string, name: string, sr: string | undefined, snapshotOf?: string): string {
  const db = sim.db
  const src = db.get(vm)!
  const fields: XapiRecord = {}
  for (const f of db.cls('VM').fields) {
    if (f.qualifier === 'RO/runtime' && !['is_a_template', 'is_default_template'].includes(f.name)) continue
    fields[f.name] = src[f.name]
  }
  const now = nowXapi()
  Object.assign(fields, {
    uuid: undefined,
    name_label: name,
    is_default_template: false,
    power_state: snapshotOf ? src.power_state : 'Halted',
    is_a_snapshot: !!snapshotOf,
    snapshot_of: snapshotOf ?? NULL_REF,
    snapshot_time: snapshotOf ? now : '19700101T00:00:00Z',
    parent: snapshotOf ? NULL_REF : src.is_a_template ? NULL_REF : vm,
    is_a_template: snapshotOf ? true : src.is_a_template,
    resident_on: NULL_REF,
    domid: -1,
    other_config: { ...(src.other_config as object) },
  })
  if (!snapshotOf && src.is_a_template) {
    const oc = { ...(fields.other_config as Record<string, string>) }
    delete oc.default_template
    fields.other_config = oc
  }
  fields.metrics = db.create('VM_metrics', { install_time: now, last_updated: now })
  const copy = db.create('VM', fields)
  for (const vbd of src.VBDs as string[]) {
    const b = db.get(vbd)
    if (!b) continue
    let vdi = b.VDI as string
    if (vdi !== NULL_REF && db.has('VDI', vdi) && b.type === 'Disk') vdi = cloneVdi(sim, vdi, sr, !!snapshotOf)
    db.create('VBD', {
      ...pick(
        b,
        db.cls('VBD').ctorFields.map((f) => f.name),
      ),
      VM: copy,
      VDI: vdi,
      currently_attached: false,
    })
  }
  for (const vif of src.VIFs as string[]) {
    const v = db.get(vif)
    if (!v) continue
    db.create('VIF', {
      ...pick(
        v,
        db.cls('VIF').ctorFields.map((f) => f.name),
      ),
      VM: copy,
      MAC: snapshotOf ? v.MAC : randomMac(),
      currently_attached: false,
    })
  }
  return copy
}

function pick(rec: XapiRecord, names: string[]): XapiRecord {
  const out: XapiRecord = {}
  for (const n of names) out[n] = rec[n]
  return out
}

/** Clones a VDI into `sr` (default its own), checking space (SR_FULL). */
export function cloneVdi(sim: Simulator, vdi: string, sr: string | undefined, snapshot = false): string {
  const db = sim.db
  const src = db.get(vdi)!
  const target = sr && sr !== NULL_REF ? sr : (src.SR as string)
  allocate(sim, target, src.virtual_size as number)
  const ref = db.create('VDI', {
    ...pick(
      src,
      db.cls('VDI').ctorFields.map((f) => f.name),
    ),
    SR: target,
    is_a_snapshot: snapshot,
    snapshot_of: snapshot ? vdi : NULL_REF,
    snapshot_time: snapshot ? nowXapi() : '19700101T00:00:00Z',
    managed: true,
  })
  db.update(ref, { location: db.get(ref)!.uuid as string })
  return ref
}

/** Reserves `bytes` of virtual allocation on an SR; SR_FULL [requested, maximum] when it does not fit. */
export function allocate(sim: Simulator, sr: string, bytes: number): void {
  const rec = sim.db.must('SR', sr)
  const size = rec.physical_size as number
  const used = rec.virtual_allocation as number
  if (rec.type !== 'iso' && size > 0 && used + bytes > size) throw new XapiError('SR_FULL', bytes, size - used)
  sim.db.update(sr, {
    virtual_allocation: used + bytes,
    physical_utilisation: Math.min(size, (rec.physical_utilisation as number) + Math.floor(bytes / 16)),
  })
}

export function release(sim: Simulator, sr: string, bytes: number): void {
  if (!sim.db.has('SR', sr)) return
  const rec = sim.db.get(sr)!
  sim.db.update(sr, {
    virtual_allocation: Math.max(0, (rec.virtual_allocation as number) - bytes),
    physical_utilisation: Math.max(0, (rec.physical_utilisation as number) - Math.floor(bytes / 16)),
  })
}

export function installVm(sim: Simulator, behaviour: VmBehaviour): void {
  const d = sim.messages
  const db = sim.db
  const op = (name: string, fn: (ctx: CallContext, a: unknown[]) => unknown) =>
    d.implement(`VM.${name}`, (ctx, a) => withOperation(ctx, a[0] as string, name, () => fn(ctx, a)))

  d.implement('VM.create', (ctx, a) => {
    const c = db.cls('VM')
    const fields = constructorRecord(sim, c, a[0] as XapiRecord)
    const now = nowXapi()
    fields.metrics = db.create('VM_metrics', { install_time: now, last_updated: now })
    fields.power_state = 'Halted'
    const vm = db.create('VM', fields)
    refreshVmOperations(sim, vm)
    return vm
  })
  op('start', (_ctx, a) => {
    const rec = db.get(a[0] as string)!
    boot(sim, a[0] as string, pickHost(sim, rec), a[1] as boolean, behaviour)
  })
  op('start_on', (_ctx, a) => {
    const host = a[1] as string
    const h = db.must('host', host)
    if (!h.enabled) throw new XapiError('HOST_DISABLED', host)
    boot(sim, a[0] as string, host, a[2] as boolean, behaviour)
  })
  op('clean_shutdown', (_c, a) => halt(sim, a[0] as string))
  op('hard_shutdown', (_c, a) => halt(sim, a[0] as string))
  op('shutdown', (_c, a) => halt(sim, a[0] as string))
  op('clean_reboot', (_c, a) => {
    const vm = a[0] as string
    db.set(vm, 'domid', sim.nextDomid())
  })
  op('hard_reboot', (_c, a) => {
    const vm = a[0] as string
    db.update(vm, { domid: sim.nextDomid(), power_state: 'Running' })
  })
  op('pause', (_c, a) => db.set(a[0] as string, 'power_state', 'Paused'))
  op('unpause', (_c, a) => db.set(a[0] as string, 'power_state', 'Running'))
  op('suspend', (_c, a) => {
    const vm = a[0] as string
    halt(sim, vm, true)
    const rec = db.get(vm)!
    const sr = db.get(sim.pool)!.suspend_image_SR as string
    if (sr !== NULL_REF && db.has('SR', sr)) {
      const vdi = db.create('VDI', {
        name_label: `Suspend image for ${String(rec.name_label)}`,
        SR: sr,
        type: 'suspend',
        virtual_size: rec.memory_static_max,
        managed: true,
      })
      db.update(vm, { suspend_VDI: vdi, suspend_SR: sr })
    }
  })
  const resume = (vm: string, host: string, paused: boolean) => {
    const rec = db.get(vm)!
    const sv = rec.suspend_VDI as string
    if (sv !== NULL_REF && db.has('VDI', sv)) db.destroy(sv)
    db.update(vm, { suspend_VDI: NULL_REF })
    boot(sim, vm, host, paused, behaviour)
  }
  op('resume', (_c, a) => resume(a[0] as string, pickHost(sim, db.get(a[0] as string)!), a[1] as boolean))
  op('resume_on', (_c, a) => {
    db.must('host', a[1])
    resume(a[0] as string, a[1] as string, a[2] as boolean)
  })
  op('clone', (_c, a) => {
    const vm = cloneVm(sim, a[0] as string, a[1] as string, undefined)
    refreshVmOperations(sim, vm)
    return vm
  })
  op('copy', (_c, a) => {
    const sr = a[2] as string
    if (sr !== NULL_REF && sr !== '') db.must('SR', sr)
    const vm = cloneVm(sim, a[0] as string, a[1] as string, sr)
    refreshVmOperations(sim, vm)
    return vm
  })
  op('snapshot', (_c, a) => {
    const vm = cloneVm(sim, a[0] as string, a[1] as string, undefined, a[0] as string)
    refreshVmOperations(sim, vm)
    return vm
  })
  op('provision', (_c, a) => {
    const vm = a[0] as string
    const rec = db.get(vm)!
    const spec = (rec.other_config as Record<string, string>).disks ?? ''
    const sr0 = db.get(sim.pool)!.default_SR as string
    let i = 0
    for (const m of spec.matchAll(/<disk\s+([^>]*)\/>/g)) {
      const attr = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]))
      const size = Number(attr.size ?? 0)
      const sr = attr.sr && db.refOfUuid('SR', attr.sr) ? db.refOfUuid('SR', attr.sr)! : sr0
      if (!db.has('SR', sr)) throw new XapiError('VM_REQUIRES_SR', vm, sr)
      allocate(sim, sr, size)
      const vdi = db.create('VDI', {
        name_label: `${String(rec.name_label)} ${i}`,
        SR: sr,
        virtual_size: size,
        type: attr.type ?? 'system',
        managed: true,
      })
      db.update(vdi, { location: db.get(vdi)!.uuid as string })
      db.create('VBD', {
        VM: vm,
        VDI: vdi,
        device: '',
        userdevice: attr.device ?? String(i),
        bootable: attr.bootable === 'true',
        mode: 'RW',
        type: 'Disk',
        unpluggable: false,
        empty: false,
      })
      i++
    }
    const oc = { ...(rec.other_config as Record<string, string>) }
    delete oc.disks
    db.update(vm, { other_config: oc, is_a_template: false })
  })
  d.implement('VM.destroy', (ctx, a) => {
    const vm = a[0] as string
    assertVmOperation(sim, vm, 'destroy')
    const rec = db.get(vm)!
    for (const vbd of rec.VBDs as string[]) if (db.has('VBD', vbd)) db.destroy(vbd)
    for (const vif of rec.VIFs as string[]) if (db.has('VIF', vif)) db.destroy(vif)
    for (const f of ['metrics', 'guest_metrics'] as const) {
      const r = rec[f] as string
      if (r !== NULL_REF && db.has(f === 'metrics' ? 'VM_metrics' : 'VM_guest_metrics', r)) db.destroy(r)
    }
    db.destroy(vm)
    void ctx
  })
  d.implement('VM.set_memory_limits', (_c, a) => {
    const vm = a[0] as string
    assertVmOperation(sim, vm, 'changing_memory_limits')
    const [smin, smax, dmin, dmax] = a.slice(1) as number[]
    if (!(smin <= dmin && dmin <= dmax && dmax <= smax))
      throw new XapiError(
        'MEMORY_CONSTRAINT_VIOLATION',
        'Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max',
      )
    db.update(vm, {
      memory_static_min: smin,
      memory_static_max: smax,
      memory_dynamic_min: dmin,
      memory_dynamic_max: dmax,
    })
  })
  d.implement('VM.get_allowed_VIF_devices', (_c, a) => {
    const rec = db.must('VM', a[0])
    const used = new Set((rec.VIFs as string[]).map((v) => db.get(v)?.device))
    return Array.from({ length: 7 }, (_, i) => String(i)).filter((x) => !used.has(x))
  })
  d.implement('VM.get_allowed_VBD_devices', (_c, a) => {
    const rec = db.must('VM', a[0])
    const used = new Set((rec.VBDs as string[]).map((v) => db.get(v)?.userdevice))
    return Array.from({ length: 16 }, (_, i) => String(i)).filter((x) => !used.has(x) && x !== '3')
  })
  d.implement('VM.assert_can_boot_here', (_c, a) => {
    assertVmOperation(sim, a[0] as string, 'start')
    const h = db.must('host', a[1])
    if (!h.enabled) throw new XapiError('HOST_DISABLED', a[1])
  })
  d.implement('VM.call_plugin', (_c, a) => {
    const vm = a[0] as string
    const rec = db.must('VM', vm)
    if (rec.power_state !== 'Running')
      throw new XapiError('VM_BAD_POWER_STATE', vm, 'running', String(rec.power_state).toLowerCase())
    throw new XapiError('XENAPI_MISSING_PLUGIN', a[1])
  })
  d.implement('VM.get_boot_record', (_c, a) => db.must('VM', a[0]))
  op('pool_migrate', (_c, a) => {
    const [vm, host] = a as [string, string]
    const h = db.must('host', host)
    if (!h.enabled) throw new XapiError('HOST_DISABLED', host)
    if (db.get(vm)!.resident_on === host) throw new XapiError('HOST_NOT_ENOUGH_FREE_MEMORY', 0, 0)
    db.update(vm, { resident_on: host, domid: sim.nextDomid(host) })
  })
  d.implement('VM.set_memory_dynamic_range', (_c, a) => {
    const [vm, min, max] = a as [string, number, number]
    const rec = assertVmOperation(sim, vm, 'changing_dynamic_range')
    if (!((rec.memory_static_min as number) <= min && min <= max && max <= (rec.memory_static_max as number)))
      throw new XapiError('MEMORY_CONSTRAINT_VIOLATION', 'static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max')
    db.update(vm, {
      memory_dynamic_min: min,
      memory_dynamic_max: max,
      memory_target: rec.power_state === 'Running' ? max : 0,
    })
  })
  d.implement('VM.set_memory_static_range', (_c, a) => {
    const [vm, min, max] = a as [string, number, number]
    assertVmOperation(sim, vm, 'changing_static_range')
    if (min > max) throw new XapiError('MEMORY_CONSTRAINT_VIOLATION', 'static_min ≤ static_max')
    db.update(vm, { memory_static_min: min, memory_static_max: max })
  })
  d.implement('VM.set_VCPUs_number_live', (_c, a) => {
    const [vm, n] = a as [string, number]
    const rec = assertVmOperation(sim, vm, 'changing_VCPUs_live')
    if (n < 1 || n > (rec.VCPUs_max as number)) throw new XapiError('INVALID_VALUE', 'nvcpu', n)
    const m = rec.metrics as string
    if (db.has('VM_metrics', m)) db.set(m, 'VCPUs_number', n)
  })
  // Setters that must keep allowed_operations right.
  for (const f of ['is_a_template', 'power_state']) {
    const w = `VM.set_${f}`
    const impl = d.implementation(w)
    if (!impl) continue
    d.implement(w, (ctx, a) => {
      impl(ctx, a)
      refreshVmOperations(sim, a[0] as string)
    })
  }
}

/** Messages of the VM class that change power state (used by docs/tests). */
export const VM_POWER_MESSAGES: MessageSpec['name'][] = [
  'start',
  'start_on',
  'clean_shutdown',
  'hard_shutdown',
  'clean_reboot',
  'hard_reboot',
  'suspend',
  'resume',
  'pause',
  'unpause',
]
