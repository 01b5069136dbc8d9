/**
 * The XenCenter HIMN tool's job, through XAPI: give a VM a VIF on the host internal management network, so the
 * guest can reach its dom0 (169.254.0.1) and XAPI.
 *
 * Differences from SetupHIMN.exe, on purpose:
 *  - the network is found by `other_config:is_host_internal_management_network=true`, never by its name label
 *    (a renamed or localised label broke the tool);
 *  - device "9" as the tool did, or the first device XAPI allows when 9 is taken;
 *  - a running VM without PV drivers needs a shutdown/start cycle to see a new NIC: done only with the operator's
 *    consent (`allowRestart`), otherwise refused with what to do;
 *  - every wait for a power state has a deadline (the tool polled every 100 ms forever);
 *  - idempotent: a VM that already has a VIF on the HIMN keeps it (plugged if it can be, its MAC in xenstore).
 * The guest finds the NIC by the MAC written to `xenstore_data["vm-data/himn_mac"]`
 * (`/local/domain/<domid>/vm-data/himn_mac` inside the guest).
 */
import type { Xapi } from '@xenstack/xenapi'
import { newVifRecord } from '../vif-record.js'

export const HIMN_FLAG = 'is_host_internal_management_network'
export const HIMN_MAC_KEY = 'vm-data/himn_mac'
/** The device the XenCenter tool used; the guest sees it as its last NIC. */
export const HIMN_PREFERRED_DEVICE = '9'
const NULL_REF = 'OpaqueRef:NULL'

export class HimnError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HimnError'
  }
}

export interface HimnNetwork {
  ref: string
  uuid: string
  name: string
  bridge: string
}

export interface HimnVif {
  ref: string
  device: string
  mac: string
  attached: boolean
}

export interface HimnStatus {
  vm: { ref: string; uuid: string; name: string; powerState: string; pvDrivers: boolean; host: string }
  network: HimnNetwork
  vif: HimnVif | null
  /** `xenstore_data["vm-data/himn_mac"]`, if set. */
  xenstoreMac: string | null
  /** The tool's status line. */
  status: string
}

export interface HimnChange {
  vm: string
  changed: boolean
  /** What was done, in order (empty when nothing was needed). */
  actions: string[]
  vif: HimnVif | null
}

export interface HimnOptions {
  /** Consent to a clean shutdown/start cycle when the VM cannot take a hot-plug. Default false. */
  allowRestart?: boolean
  signal?: AbortSignal
}

export interface HimnAttacherOptions {
  /** Deadline of each wait for a power state (default 5 min: a clean shutdown of a loaded guest can be slow). */
  powerTimeoutMs?: number
  pollMs?: number
  log?: (line: string) => void
}

interface VmRecord {
  uuid: string
  name_label: string
  power_state: string
  is_a_template: boolean
  is_control_domain: boolean
  VIFs: string[]
  guest_metrics: string
  resident_on: string
  xenstore_data: Record<string, string>
}

export class HimnAttacher {
  private readonly powerTimeoutMs: number
  private readonly pollMs: number
  private readonly log: (line: string) => void

  constructor(
    readonly xapi: Xapi,
    opts: HimnAttacherOptions = {},
  ) {
    this.powerTimeoutMs = opts.powerTimeoutMs ?? 300_000
    this.pollMs = opts.pollMs ?? 500
    this.log = opts.log ?? (() => {})
  }

  /** The pool's HIMN: the one network flagged `is_host_internal_management_network=true`. */
  async network(): Promise<HimnNetwork> {
    const all = (await this.xapi.call('network.get_all_records')) as Record<
      string,
      { uuid: string; name_label: string; bridge: string; other_config: Record<string, string> }
    >
    const found = Object.entries(all).filter(([, n]) => n.other_config?.[HIMN_FLAG] === 'true')
    if (found.length === 0)
      throw new HimnError(
        `the pool at ${this.xapi.url} has no network with other_config:${HIMN_FLAG}=true (XAPI creates it with the ` +
          `bridge "xenapi"; ${Object.keys(all).length} networks were checked)`,
      )
    // one per pool; several would be a hand-made copy, and only XAPI's own has the bridge xenapi
    const [ref, n] = found.find(([, x]) => x.bridge === 'xenapi') ?? found[0]
    return { ref, uuid: n.uuid, name: n.name_label, bridge: n.bridge }
  }

  /** A VM by ref, uuid or name label (exactly one non-template, non-dom0 VM). */
  async resolveVm(id: string): Promise<string> {
    if (id.startsWith('OpaqueRef:')) {
      await this.vmRecord(id)
      return id
    }
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
      try {
        return (await this.xapi.call('VM.get_by_uuid', id)) as string
      } catch {
        // may still be a name label
      }
    }
    const refs = (await this.xapi.call('VM.get_by_name_label', id)) as string[]
    const vms: string[] = []
    for (const r of refs) {
      const rec = await this.vmRecord(r)
      if (!rec.is_a_template && !rec.is_control_domain) vms.push(r)
    }
    if (vms.length === 1) return vms[0]
    throw new HimnError(
      vms.length === 0
        ? `no VM "${id}" in the pool at ${this.xapi.url} (give a name label, uuid or OpaqueRef)`
        : `${vms.length} VMs are named "${id}" in the pool at ${this.xapi.url}; give the VM's uuid`,
    )
  }

  async status(vm: string): Promise<HimnStatus> {
    const network = await this.network()
    const rec = await this.vmRecord(vm)
    const vif = await this.himnVif(rec, network)
    const pv = await this.pvDrivers(rec)
    const host = rec.resident_on && rec.resident_on !== NULL_REF ? await this.hostName(rec.resident_on) : ''
    const status = vif
      ? `Exists as VIF '${vif.device}' with MAC '${vif.mac}'.`
      : rec.power_state !== 'Halted' && !(pv && rec.power_state === 'Running')
        ? 'Ready. Requires reboot.'
        : 'Ready. No reboot required.'
    return {
      vm: { ref: vm, uuid: rec.uuid, name: rec.name_label, powerState: rec.power_state, pvDrivers: pv, host },
      network,
      vif,
      xenstoreMac: rec.xenstore_data?.[HIMN_MAC_KEY] ?? null,
      status,
    }
  }

  /** Attaches the VM to the HIMN (see the module comment); a second call changes nothing. */
  async add(vm: string, opts: HimnOptions = {}): Promise<HimnChange> {
    const network = await this.network()
    const rec = await this.vmRecord(vm)
    const name = rec.name_label
    const actions: string[] = []
    let vif = await this.himnVif(rec, network)
    const pv = await this.pvDrivers(rec)
    const running = rec.power_state === 'Running'
    const hotplug = running && pv

    if (vif) {
      if (running && !vif.attached) {
        if (!hotplug) throw this.needsRestart(name, rec, 'plug its existing HIMN VIF')
        await this.xapi.call('VIF.plug', vif.ref)
        actions.push(`plugged VIF ${vif.device} (${vif.mac})`)
        vif = { ...vif, attached: true }
      }
    } else {
      if (rec.power_state === 'Paused' || rec.power_state === 'Suspended')
        throw new HimnError(
          `VM ${name} is ${rec.power_state}: resume it (or shut it down) before attaching the HIMN; nothing was changed`,
        )
      const restart = rec.power_state !== 'Halted' && !hotplug
      if (restart && !opts.allowRestart) throw this.needsRestart(name, rec, 'attach the HIMN')
      const create = async (): Promise<HimnVif> => {
        const device = await this.freeDevice(vm, rec)
        const ref = (await this.xapi.call('VIF.create', newVifRecord(vm, network.ref, device))) as string
        const mac = String(await this.xapi.call('VIF.get_MAC', ref)).toLowerCase()
        actions.push(`created VIF ${device} (${mac}) on ${network.name}`)
        // before the boot or the plug, so the guest finds the key as soon as it sees the NIC
        await this.ensureXenstoreMac(vm, mac, actions)
        return { ref, device, mac, attached: false }
      }
      let created: HimnVif
      if (restart) {
        created = await this.restartCycle(vm, name, 'a new NIC needs a restart', actions, opts.signal, create)
      } else {
        created = await create()
        if (hotplug) {
          await this.xapi.call('VIF.plug', created.ref)
          actions.push(`hot-plugged VIF ${created.device}`)
        }
      }
      vif = { ...created, attached: await this.attached(created.ref) }
    }

    await this.ensureXenstoreMac(vm, vif.mac, actions)
    for (const a of actions) this.log(`${name}: ${a}`)
    return { vm: name, changed: actions.length > 0, actions, vif }
  }

  /** `vm-data/himn_mac` = mac in the VM's xenstore_data (nothing when it already is). */
  private async ensureXenstoreMac(vm: string, mac: string, actions: string[]): Promise<void> {
    const data = (await this.vmRecord(vm)).xenstore_data ?? {}
    if (data[HIMN_MAC_KEY] === mac) return
    if (HIMN_MAC_KEY in data) await this.xapi.call('VM.remove_from_xenstore_data', vm, HIMN_MAC_KEY)
    await this.xapi.call('VM.add_to_xenstore_data', vm, HIMN_MAC_KEY, mac)
    actions.push(`xenstore_data ${HIMN_MAC_KEY}=${mac}`)
  }

  /**
   * Clean shutdown, `change`, start — and the start is attempted even when `change` fails, so a failure never leaves
   * the compute VM down (the error then says whether it is running again).
   */
  private async restartCycle<T>(
    vm: string,
    name: string,
    why: string,
    actions: string[],
    signal: AbortSignal | undefined,
    change: () => Promise<T>,
  ): Promise<T> {
    await this.shutdown(vm, name, signal)
    actions.push(`shut down (no PV drivers: ${why})`)
    let result: T
    try {
      result = await change()
    } catch (e) {
      const restarted = await this.start(vm, name, signal).then(
        () => 'it was started again',
        (s: Error) => `starting it again failed too: ${s.message}`,
      )
      throw new HimnError(`VM ${name}: ${(e as Error).message} (after its clean shutdown; ${restarted})`)
    }
    await this.start(vm, name, signal)
    actions.push('started')
    return result
  }

  /** Undoes `add`: the HIMN VIF destroyed (hot-unplugged, or with a restart cycle), the xenstore key removed. */
  async remove(vm: string, opts: HimnOptions = {}): Promise<HimnChange> {
    const network = await this.network()
    const rec = await this.vmRecord(vm)
    const name = rec.name_label
    const actions: string[] = []
    const vif = await this.himnVif(rec, network)
    if (vif) {
      const running = rec.power_state === 'Running'
      const hotplug = running && (await this.pvDrivers(rec))
      const restart = running && vif.attached && !hotplug
      if (restart && !opts.allowRestart) throw this.needsRestart(name, rec, 'detach the HIMN')
      const destroy = async () => {
        await this.xapi.call('VIF.destroy', vif.ref)
        actions.push(`destroyed VIF ${vif.device} (${vif.mac})`)
      }
      if (restart) await this.restartCycle(vm, name, 'removing a NIC needs a restart', actions, opts.signal, destroy)
      else {
        if (running && vif.attached) {
          await this.xapi.call('VIF.unplug', vif.ref)
          actions.push(`hot-unplugged VIF ${vif.device}`)
        }
        await destroy()
      }
    }
    const data = (await this.vmRecord(vm)).xenstore_data ?? {}
    if (HIMN_MAC_KEY in data) {
      await this.xapi.call('VM.remove_from_xenstore_data', vm, HIMN_MAC_KEY)
      actions.push(`removed xenstore_data ${HIMN_MAC_KEY}`)
    }
    for (const a of actions) this.log(`${name}: ${a}`)
    return { vm: name, changed: actions.length > 0, actions, vif: null }
  }

  // -- helpers ------------------------------------------------------------------------------------------------

  private async vmRecord(vm: string): Promise<VmRecord> {
    try {
      return (await this.xapi.call('VM.get_record', vm)) as VmRecord
    } catch (e) {
      throw new HimnError(`no VM ${vm} in the pool at ${this.xapi.url}: ${(e as Error).message}`)
    }
  }

  private async hostName(host: string): Promise<string> {
    try {
      return String(await this.xapi.call('host.get_name_label', host))
    } catch {
      return host
    }
  }

  private async himnVif(rec: VmRecord, network: HimnNetwork): Promise<HimnVif | null> {
    for (const ref of rec.VIFs ?? []) {
      const v = (await this.xapi.call('VIF.get_record', ref)) as {
        network: string
        device: string
        MAC: string
        currently_attached: boolean
      }
      if (v.network === network.ref)
        return { ref, device: String(v.device), mac: String(v.MAC).toLowerCase(), attached: v.currently_attached }
    }
    return null
  }

  /**
   * PV drivers as the HIMN tool decided (guest metrics with at least 3 PV_drivers_version keys, or XAPI's own
   * PV_drivers_detected), unless the guest says it cannot hot-plug VIFs.
   */
  private async pvDrivers(rec: VmRecord): Promise<boolean> {
    if (!rec.guest_metrics || rec.guest_metrics === NULL_REF) return false
    let g: { PV_drivers_version?: Record<string, string>; PV_drivers_detected?: boolean; can_use_hotplug_vif?: string }
    try {
      g = (await this.xapi.call('VM_guest_metrics.get_record', rec.guest_metrics)) as typeof g
    } catch {
      return false
    }
    if (g.can_use_hotplug_vif === 'no') return false
    return g.PV_drivers_detected === true || Object.keys(g.PV_drivers_version ?? {}).length >= 3
  }

  private async freeDevice(vm: string, rec: VmRecord): Promise<string> {
    const used = new Set<string>()
    for (const v of rec.VIFs ?? []) used.add(String(await this.xapi.call('VIF.get_device', v)))
    if (!used.has(HIMN_PREFERRED_DEVICE)) return HIMN_PREFERRED_DEVICE
    const allowed = (await this.xapi.call('VM.get_allowed_VIF_devices', vm)) as string[]
    const free = allowed.filter((d) => !used.has(d)).sort((a, b) => Number(a) - Number(b))
    if (!free.length) throw new HimnError(`VM ${rec.name_label} has no free VIF device (used: ${[...used].join(', ')})`)
    return free[0]
  }

  private async attached(vif: string): Promise<boolean> {
    return (await this.xapi.call('VIF.get_currently_attached', vif)) === true
  }

  private needsRestart(name: string, rec: VmRecord, what: string): HimnError {
    return new HimnError(
      `VM ${name} is ${rec.power_state} without PV drivers, so XAPI cannot hot-plug a NIC: to ${what} it must be shut ` +
        `down and started again. Nothing was changed. Install the guest tools (xe-guest-utilities) and retry, or give ` +
        `consent to the restart (setting xenserver.allow_vm_restart, or --allow-restart)`,
    )
  }

  private async shutdown(vm: string, name: string, signal?: AbortSignal): Promise<void> {
    this.log(`${name}: clean shutdown`)
    await this.xapi.call('VM.clean_shutdown', vm)
    await this.waitPower(vm, name, 'Halted', signal)
  }

  private async start(vm: string, name: string, signal?: AbortSignal): Promise<void> {
    this.log(`${name}: start`)
    await this.xapi.call('VM.start', vm, false, false)
    await this.waitPower(vm, name, 'Running', signal)
  }

  /** Polls the power state until it is `want`, with a deadline (XAPI's calls return when done; this is a guard). */
  private async waitPower(vm: string, name: string, want: string, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.powerTimeoutMs
    let state = ''
    for (;;) {
      state = String(await this.xapi.call('VM.get_power_state', vm))
      if (state === want) return
      if (signal?.aborted) throw new HimnError(`VM ${name}: aborted while waiting for ${want} (it is ${state})`)
      if (Date.now() >= deadline)
        throw new HimnError(
          `VM ${name} is still ${state} ${Math.round(this.powerTimeoutMs / 1000)} s after asking for ${want}; ` +
            `check it in XenCenter or with xe vm-list uuid=…`,
        )
      await new Promise((r) => setTimeout(r, this.pollMs))
    }
  }
}
