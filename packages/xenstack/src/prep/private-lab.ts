/**
 * The single-host OpenStack lab on private networks (issue 13 §1), the XAPI half: the networks `pxe`, `private` and
 * `br100`, `external` = the host's eth0 network, and the Fuel, Controller and Compute VMs from the "Other install
 * media" template (Fuel: pxe as eth0, external; the others: pxe, private, br100; ≥ 4 GiB, ≥ 50 GiB disk, network
 * boot order; the HIMN on Compute).
 *
 * `planPrivateLab` only reads and returns the steps still needed, each with a line saying what it does; a converged
 * host has none, and a dry run prints them without running them. What xenstack created is recognised by its name
 * label plus the other_config key PRIVATE_LAB_KEY (value: the network's or VM's role), so a same-named network or VM
 * made by someone else is never taken over silently: the plan stops and says how to adopt it.
 */
import type { Xapi } from '@xenstack/xenapi'
import { HimnAttacher } from '../integration/himn/attach.js'
import { newVifRecord } from '../integration/vif-record.js'

export const PRIVATE_LAB_KEY = 'xenstack_private_lab'
export const LAB_TEMPLATE = 'Other install media'
export const LAB_NETWORKS = ['pxe', 'private', 'br100'] as const
const GiB = 1024 ** 3
export const LAB_MEMORY = 4 * GiB
export const LAB_DISK = 50 * GiB
const NULL_REF = 'OpaqueRef:NULL'

export interface LabVmSpec {
  name: string
  role: string
  /** Networks by lab name, in device order (`external` = the host's eth0 network). */
  nics: string[]
  /** HVM_boot_params order. */
  bootOrder: string
  /** An empty CD drive for the install ISO. */
  cd?: boolean
  himn?: boolean
}

export const LAB_VMS: LabVmSpec[] = [
  // Fuel installs from its ISO and then boots its disk; it serves PXE to the others on `pxe`
  { name: 'Fuel', role: 'fuel', nics: ['pxe', 'external'], bootOrder: 'dcn', cd: true },
  { name: 'Controller', role: 'controller', nics: ['pxe', 'private', 'br100'], bootOrder: 'ncd' },
  { name: 'Compute', role: 'compute', nics: ['pxe', 'private', 'br100'], bootOrder: 'ncd', himn: true },
]

export interface LabStep {
  /** What it does, for the plan and the log. */
  what: string
  run(): Promise<void>
}

export interface PrivateLabPlan {
  host: { ref: string; name: string }
  /** Lab network name → its network (null: still to be created), incl. `external`. */
  networks: Record<string, { name_label: string; uuid: string | null; bridge: string | null }>
  steps: LabStep[]
  /** The `private` network's bridge after the plan has run (XAPI names it on creation). */
  privateBridge(): Promise<string>
}

export class PrivateLabError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PrivateLabError'
  }
}

type Rec = Record<string, unknown> & { uuid: string; name_label: string; other_config: Record<string, string> }

/** Reads the host and works out what is missing; changes nothing. */
export async function planPrivateLab(xapi: Xapi, opts: { vms?: LabVmSpec[] } = {}): Promise<PrivateLabPlan> {
  const call = (m: string, ...a: unknown[]) => xapi.call(m, ...a)
  const host = await masterHost(xapi)
  const networks = (await call('network.get_all_records')) as Record<string, Rec & { bridge: string; PIFs: string[] }>
  const pifs = (await call('PIF.get_all_records')) as Record<
    string,
    { host: string; device: string; network: string; VLAN: number }
  >
  const vms = (await call('VM.get_all_records')) as Record<string, Rec & VmFields>
  const steps: LabStep[] = []
  const netRefs = new Map<string, string>()
  const shown: PrivateLabPlan['networks'] = {}

  const eth0 = Object.values(pifs).find((p) => p.host === host.ref && p.device === 'eth0' && Number(p.VLAN) === -1)
  if (!eth0 || !networks[eth0.network])
    throw new PrivateLabError(`host ${host.name}: no PIF eth0, so there is no network to map "external" to`)
  netRefs.set('external', eth0.network)
  const ext = networks[eth0.network]
  shown.external = { name_label: ext.name_label, uuid: ext.uuid, bridge: ext.bridge }

  for (const name of LAB_NETWORKS) {
    const same = Object.entries(networks).filter(([, n]) => n.name_label === name)
    const ours = same.filter(([, n]) => n.other_config?.[PRIVATE_LAB_KEY] === name)
    if (ours.length > 1)
      throw new PrivateLabError(
        `network ${name}: ${ours.length} networks carry other_config:${PRIVATE_LAB_KEY}=${name}; expected one (${ours.map(([, n]) => n.uuid).join(', ')})`,
      )
    if (ours.length === 1) {
      netRefs.set(name, ours[0][0])
      shown[name] = { name_label: name, uuid: ours[0][1].uuid, bridge: ours[0][1].bridge }
      continue
    }
    if (same.length > 0)
      throw new PrivateLabError(
        `network ${name} (uuid ${same[0][1].uuid}) exists but xenstack did not create it (no other_config:${PRIVATE_LAB_KEY}); ` +
          `to use it, run on the host: xe network-param-set uuid=${same[0][1].uuid} other-config:${PRIVATE_LAB_KEY}=${name}`,
      )
    shown[name] = { name_label: name, uuid: null, bridge: null }
    steps.push({
      what: `create network ${name} (private: no PIF)`,
      async run() {
        const ref = (await call('network.create', {
          name_label: name,
          name_description: `xenstack private lab: ${name}`,
          MTU: 1500,
          other_config: { [PRIVATE_LAB_KEY]: name },
          tags: [],
        })) as string
        netRefs.set(name, ref)
      },
    })
  }

  const template = await templateRef(xapi, vms)
  const sr = (await call('pool.get_default_SR', ((await call('pool.get_all')) as string[])[0])) as string
  for (const spec of opts.vms ?? LAB_VMS) {
    const found = Object.entries(vms).filter(
      ([, v]) => v.name_label === spec.name && !v.is_a_template && !v.is_control_domain,
    )
    const ours = found.filter(([, v]) => v.other_config?.[PRIVATE_LAB_KEY] === spec.role)
    if (ours.length > 1)
      throw new PrivateLabError(
        `VM ${spec.name}: ${ours.length} VMs carry other_config:${PRIVATE_LAB_KEY}=${spec.role}; expected one`,
      )
    if (ours.length === 0 && found.length > 0)
      throw new PrivateLabError(
        `VM ${spec.name} (uuid ${found[0][1].uuid}) exists but xenstack did not create it (no other_config:${PRIVATE_LAB_KEY}); ` +
          `rename it, or to use it: xe vm-param-set uuid=${found[0][1].uuid} other-config:${PRIVATE_LAB_KEY}=${spec.role}`,
      )
    const vm = { ref: ours[0]?.[0] ?? '' }
    let current: VmState
    if (ours.length === 1) current = await vmState(xapi, vm.ref, ours[0][1])
    else {
      const t = vms[template]
      current = {
        powerState: 'Halted',
        memoryStaticMax: Number(t.memory_static_max),
        bootParams: t.HVM_boot_params,
        vifs: [],
        disks: [],
        cds: 0,
        himn: false,
      }
      steps.push({
        what: `create VM ${spec.name} from "${LAB_TEMPLATE}"`,
        async run() {
          vm.ref = (await call('VM.clone', template, spec.name)) as string
          await call('VM.set_is_a_template', vm.ref, false)
          // the disk is made below; a later VM.provision must not add the template's 32 GiB one
          await call('VM.remove_from_other_config', vm.ref, 'disks')
          // as xe vm-install does: the copy is a VM, not one of XenServer's default templates
          await call('VM.remove_from_other_config', vm.ref, 'default_template')
          await call('VM.add_to_other_config', vm.ref, PRIVATE_LAB_KEY, spec.role)
          await call('VM.set_name_description', vm.ref, `xenstack private lab: ${spec.role}`)
        },
      })
    }
    steps.push(...vmSteps(xapi, spec, vm, current, netRefs, sr))
  }

  return {
    host,
    networks: shown,
    steps,
    async privateBridge() {
      const ref = netRefs.get('private')
      if (!ref) throw new PrivateLabError('the private network does not exist yet (run without --dry-run)')
      return (await call('network.get_bridge', ref)) as string
    },
  }
}

interface VmFields {
  is_a_template: boolean
  is_default_template?: boolean
  is_control_domain: boolean
  power_state: string
  memory_static_max: number
  HVM_boot_params: Record<string, string>
}

interface VmState {
  powerState: string
  memoryStaticMax: number
  bootParams: Record<string, string>
  vifs: { device: string; network: string }[]
  disks: { userdevice: string; vdi: string; size: number }[]
  cds: number
  himn: boolean
}

async function vmState(xapi: Xapi, ref: string, rec: Rec & VmFields): Promise<VmState> {
  const vifs: VmState['vifs'] = []
  for (const v of (rec.VIFs as string[]) ?? []) {
    const r = (await xapi.call('VIF.get_record', v)) as { device: string; network: string }
    vifs.push({ device: r.device, network: r.network })
  }
  const disks: VmState['disks'] = []
  let cds = 0
  for (const b of (rec.VBDs as string[]) ?? []) {
    const r = (await xapi.call('VBD.get_record', b)) as { type: string; userdevice: string; VDI: string }
    if (r.type === 'CD') cds++
    else if (r.type === 'Disk' && r.VDI !== NULL_REF)
      disks.push({ userdevice: r.userdevice, vdi: r.VDI, size: Number(await xapi.call('VDI.get_virtual_size', r.VDI)) })
  }
  const himn = (await new HimnAttacher(xapi).status(ref)).vif !== null
  return {
    powerState: rec.power_state,
    memoryStaticMax: Number(rec.memory_static_max),
    bootParams: rec.HVM_boot_params ?? {},
    vifs,
    disks,
    cds,
    himn,
  }
}

/** The steps that bring one VM (existing, or about to be cloned) to its spec. */
function vmSteps(
  xapi: Xapi,
  spec: LabVmSpec,
  vm: { ref: string },
  cur: VmState,
  netRefs: Map<string, string>,
  sr: string,
): LabStep[] {
  const call = (m: string, ...a: unknown[]) => xapi.call(m, ...a)
  const steps: LabStep[] = []
  const halted = cur.powerState === 'Halted'
  const needsHalt = (what: string) => {
    if (!halted)
      throw new PrivateLabError(
        `VM ${spec.name} is ${cur.powerState}: to ${what} it must be shut down first (xe vm-shutdown vm=${spec.name})`,
      )
  }
  if (cur.memoryStaticMax < LAB_MEMORY) {
    needsHalt(`raise its memory to ${LAB_MEMORY / GiB} GiB`)
    steps.push({
      what: `VM ${spec.name}: memory ${fmtGiB(cur.memoryStaticMax)} → ${fmtGiB(LAB_MEMORY)}`,
      run: () =>
        call('VM.set_memory_limits', vm.ref, LAB_MEMORY, LAB_MEMORY, LAB_MEMORY, LAB_MEMORY).then(() => undefined),
    })
  }
  if (cur.bootParams.order !== spec.bootOrder)
    steps.push({
      what: `VM ${spec.name}: boot order ${cur.bootParams.order ?? '(none)'} → ${spec.bootOrder}`,
      run: () =>
        call('VM.set_HVM_boot_params', vm.ref, { ...cur.bootParams, order: spec.bootOrder }).then(() => undefined),
    })
  spec.nics.forEach((net, i) => {
    const device = String(i)
    const have = cur.vifs.find((v) => v.device === device)
    const want = netRefs.get(net)
    if (have && want && have.network === want) return
    if (have)
      throw new PrivateLabError(
        `VM ${spec.name}: VIF ${device} is on another network than ${net}; expected eth${device} on ${net} (remove or move that VIF)`,
      )
    steps.push({
      what: `VM ${spec.name}: VIF ${device} (eth${device}) on ${net}`,
      async run() {
        const network = netRefs.get(net)
        if (!network) throw new PrivateLabError(`network ${net} was not created`)
        const vif = (await call('VIF.create', newVifRecord(vm.ref, network, device))) as string
        // a running VM sees the NIC only once it is plugged (hot-plug needs its PV drivers; XAPI says so if not)
        if (cur.powerState === 'Running') await call('VIF.plug', vif)
      },
    })
  })
  const disk = cur.disks.find((d) => d.userdevice === '0')
  if (!disk) {
    if (sr === NULL_REF || !sr)
      throw new PrivateLabError('the pool has no default SR to put the VM disks on (xe pool-param-set default-SR=…)')
    steps.push({
      what: `VM ${spec.name}: disk 0 of ${fmtGiB(LAB_DISK)} on the default SR`,
      async run() {
        const vdi = (await call('VDI.create', {
          name_label: `${spec.name} disk 0`,
          name_description: `xenstack private lab: ${spec.role}`,
          SR: sr,
          virtual_size: LAB_DISK,
          type: 'system',
          sharable: false,
          read_only: false,
          other_config: { [PRIVATE_LAB_KEY]: spec.role },
        })) as string
        await call('VBD.create', vbd(vm.ref, vdi, '0', 'Disk', true))
      },
    })
  } else if (disk.size < LAB_DISK) {
    needsHalt(`grow its disk to ${fmtGiB(LAB_DISK)}`)
    steps.push({
      what: `VM ${spec.name}: disk 0 ${fmtGiB(disk.size)} → ${fmtGiB(LAB_DISK)}`,
      run: () => call('VDI.resize', disk.vdi, LAB_DISK).then(() => undefined),
    })
  }
  if (spec.cd && cur.cds === 0)
    steps.push({
      what: `VM ${spec.name}: empty CD drive for the install ISO`,
      run: () => call('VBD.create', vbd(vm.ref, NULL_REF, '3', 'CD', false)).then(() => undefined),
    })
  if (spec.himn && !cur.himn)
    steps.push({
      what: `VM ${spec.name}: attach the host internal management network (HIMN)`,
      run: () => new HimnAttacher(xapi).add(vm.ref).then(() => undefined),
    })
  return steps
}

function vbd(vm: string, vdi: string, userdevice: string, type: 'Disk' | 'CD', bootable: boolean) {
  return {
    VM: vm,
    VDI: vdi,
    userdevice,
    bootable,
    mode: type === 'CD' ? 'RO' : 'RW',
    type,
    empty: vdi === NULL_REF,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}

const fmtGiB = (n: number) => `${Math.round((n / GiB) * 10) / 10} GiB`

async function masterHost(xapi: Xapi): Promise<{ ref: string; name: string }> {
  const pool = ((await xapi.call('pool.get_all')) as string[])[0]
  const ref = (await xapi.call('pool.get_master', pool)) as string
  const hosts = (await xapi.call('host.get_all')) as string[]
  if (hosts.length > 1)
    throw new PrivateLabError(`the pool at ${xapi.url} has ${hosts.length} hosts; the private lab is for a single host`)
  return { ref, name: (await xapi.call('host.get_name_label', ref)) as string }
}

async function templateRef(xapi: Xapi, vms: Record<string, Rec & VmFields>): Promise<string> {
  // XenServer's own template first, should someone have saved a copy under the same name
  const t = Object.entries(vms)
    .filter(([, v]) => v.is_a_template && v.name_label === LAB_TEMPLATE)
    .sort(([, a], [, b]) => Number(b.is_default_template === true) - Number(a.is_default_template === true))
  if (t.length === 0)
    throw new PrivateLabError(
      `the pool at ${xapi.url} has no template "${LAB_TEMPLATE}" (XenServer installs it; was it deleted?)`,
    )
  return t[0][0]
}

/** Runs the steps in order, logging each. */
export async function applyPrivateLab(plan: PrivateLabPlan, log: (line: string) => void = () => {}): Promise<string[]> {
  const done: string[] = []
  for (const s of plan.steps) {
    log(s.what)
    try {
      await s.run()
    } catch (e) {
      throw new PrivateLabError(`${s.what}: ${(e as Error).message}`)
    }
    done.push(s.what)
  }
  return done
}
