/**
 * Pool and host: designate_new_master, eject, join (between simulators in one process: the joining host moves into
 * the master's database and its address is then served by the master's simulator as a member), host enable/disable,
 * get_servertime/get_server_localtime, compute_free_memory, get_management_interface; host.call_plugin answers
 * XENAPI_MISSING_PLUGIN until the plugin runner overrides it.
 */
import { XapiError } from '../errors.js'
import { NULL_REF } from '../model.js'
import type { XapiRecord } from '../store.js'
import { nowXapi } from '../time.js'
import type { Simulator } from '../simulator.js'

const HOST_OPS = ['provision', 'evacuate', 'reboot', 'shutdown', 'vm_start', 'vm_resume', 'vm_migrate']

/** Simulators listening in this process, by address (for pool.join). */
export const simulatorsByAddress = new Map<string, Simulator>()

export function installPool(sim: Simulator): void {
  const d = sim.messages
  const db = sim.db

  d.implement('host.enable', (_c, a) => {
    db.must('host', a[0])
    db.update(a[0] as string, { enabled: true, allowed_operations: HOST_OPS })
  })
  d.implement('host.disable', (_c, a) => {
    db.must('host', a[0])
    db.update(a[0] as string, {
      enabled: false,
      allowed_operations: HOST_OPS.filter((o) => !o.startsWith('vm_') && o !== 'provision'),
    })
  })
  d.implement('host.get_servertime', (_c, a) => {
    db.must('host', a[0])
    return nowXapi()
  })
  d.implement('host.get_server_localtime', (_c, a) => {
    db.must('host', a[0])
    return nowXapi()
  })
  d.implement('host.compute_free_memory', (_c, a) => {
    const h = db.must('host', a[0])
    const total = (db.get(h.metrics as string)?.memory_total as number) ?? 0
    let used = 0
    for (const vm of h.resident_VMs as string[]) used += (db.get(vm)?.memory_static_max as number) ?? 0
    return Math.max(0, total - used)
  })
  d.implement('host.compute_memory_overhead', () => 0)
  d.implement('host.get_management_interface', (_c, a) => {
    db.must('host', a[0])
    const pif = db.find('PIF', (p) => p.host === a[0] && p.management === true)
    if (!pif) throw new XapiError('PIF_NOT_PRESENT', a[0], 'management')
    return pif
  })
  d.implement('host.call_plugin', (_c, a) => {
    db.must('host', a[0])
    throw new XapiError('XENAPI_MISSING_PLUGIN', a[1])
  })
  d.implement('host.get_system_status_capabilities', () => '<?xml version="1.0" ?><system-status-capabilities/>')
  d.implement('host.evacuate', (_c, a) => {
    const h = db.must('host', a[0])
    const others = db.where('host', (r, ref) => ref !== a[0] && r.enabled === true)
    for (const vm of h.resident_VMs as string[]) {
      const r = db.get(vm)
      if (!r || r.is_control_domain) continue
      if (others.length === 0) throw new XapiError('HOST_NOT_ENOUGH_FREE_MEMORY', r.memory_static_max, 0)
      db.set(vm, 'resident_on', others[0])
    }
  })

  d.implement('pool.designate_new_master', (_c, a) => {
    db.must('host', a[0])
    db.set(sim.pool, 'master', a[0])
  })
  d.implement('pool.eject', (_c, a) => {
    const host = a[0] as string
    const h = db.must('host', host)
    if (host === sim.master) throw new XapiError('POOL_JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS')
    for (const vm of h.resident_VMs as string[]) {
      const r = db.get(vm)
      if (r && !r.is_control_domain) throw new XapiError('HOST_IN_USE', host, 'VM', vm)
    }
    removeHost(sim, host)
  })
  const join = async (ctx: { host: string }, a: unknown[]) => {
    const [address, user, password] = a as string[]
    const master = simulatorsByAddress.get(address.replace(/:\d+$/, ''))
    if (!master || master === sim) throw new XapiError('JOINING_HOST_CONNECTION_FAILED')
    if (!master.authenticate(user, password))
      throw new XapiError('SESSION_AUTHENTICATION_FAILED', user, 'Authentication failure')
    if (db.count('host') !== 1) throw new XapiError('JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS')
    if (db.find('SR', (s) => s.shared === true && s.type !== 'iso'))
      throw new XapiError('JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS')
    for (const [, vm] of db.all('VM'))
      if (!vm.is_control_domain && !vm.is_a_template && vm.power_state === 'Running')
        throw new XapiError('JOINING_HOST_CANNOT_HAVE_RUNNING_VMS')
    const host = ctx.host || sim.master
    await new Promise((r) => setImmediate(r))
    sim.joinPool(master, host)
  }
  d.implement('pool.join', join)
  d.implement('pool.join_force', join)
}

/** Removes a host and what belongs only to it (PIFs, PBDs, local SRs, metrics, CPUs, control domain). */
export function removeHost(sim: Simulator, host: string): void {
  const db = sim.db
  const h = db.get(host)!
  const drop = (ref: unknown) => {
    if (typeof ref === 'string' && ref !== NULL_REF && db.row(ref)) db.destroy(ref)
  }
  for (const pif of h.PIFs as string[]) {
    drop(db.get(pif)?.metrics)
    drop(pif)
  }
  for (const pbd of h.PBDs as string[]) {
    const sr = db.get(pbd)?.SR as string
    drop(pbd)
    if (sr && db.has('SR', sr) && !db.get(sr)!.shared) {
      for (const v of db.get(sr)!.VDIs as string[]) drop(v)
      drop(sr)
    }
  }
  for (const c of h.host_CPUs as string[]) drop(c)
  const dom0 = h.control_domain as string
  if (db.has('VM', dom0)) {
    drop(db.get(dom0)!.metrics)
    drop(dom0)
  }
  drop(h.metrics)
  db.destroy(host)
}

/**
 * Copies a host's own objects from one database into another (pool.join): host, metrics, CPUs, control domain,
 * PIFs (placed on the target's management network), local SRs with PBDs and VDIs. Returns the host ref (kept).
 */
export function copyHost(from: Simulator, to: Simulator, host: string): string {
  const src = from.db
  const dst = to.db
  const h = src.get(host)!
  const copy = (ref: string, patch: XapiRecord = {}): string => {
    const row = src.row(ref)!
    return dst.create(row.cls.name, { ...row.rec, ...patch }, { ref })
  }
  const mgmtNet = dst.find('network', (n) => n.bridge === 'xenbr0') ?? NULL_REF
  copy(h.metrics as string)
  copy(host, { resident_VMs: [], PIFs: [], PBDs: [], host_CPUs: [] })
  for (const c of h.host_CPUs as string[]) copy(c)
  const dom0 = h.control_domain as string
  if (src.has('VM', dom0)) {
    copy(src.get(dom0)!.metrics as string)
    copy(dom0, { VBDs: [], VIFs: [], consoles: [] })
  }
  for (const pif of h.PIFs as string[]) {
    const p = src.get(pif)!
    if (src.has('PIF_metrics', p.metrics)) copy(p.metrics as string)
    const net = src.get(p.network as string)
    copy(pif, {
      network: net?.bridge === 'xenbr0' ? mgmtNet : NULL_REF,
      VLAN_slave_of: [],
      VLAN_master_of: NULL_REF,
      bond_master_of: [],
      bond_slave_of: NULL_REF,
    })
  }
  for (const pbd of h.PBDs as string[]) {
    const sr = src.get(pbd)!.SR as string
    const srRec = src.get(sr)
    if (srRec && !srRec.shared) {
      copy(sr, { VDIs: [], PBDs: [] })
      for (const v of srRec.VDIs as string[]) copy(v, { VBDs: [] })
      copy(pbd)
    }
  }
  // Shared SRs of the target pool get a PBD on the new host.
  for (const [sr, rec] of dst.all('SR'))
    if (rec.shared) dst.create('PBD', { host, SR: sr, device_config: {}, currently_attached: true })
  return host
}
