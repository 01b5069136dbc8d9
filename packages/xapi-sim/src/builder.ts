/**
 * Builds a pool from a plain description — what S2's scenario loader and quick tests call. Every host gets its
 * metrics, CPUs, a control domain, a management PIF (IP = the host's address) on the pool's management network, a
 * local SR with a PBD; the pool gets the Host internal management network (HIMN), a shared ISO SR, default templates
 * and the requested VMs with metrics, disks and VIFs.
 */
import { NULL_REF } from './model.js'
import { nowXapi } from './time.js'
import type { Simulator } from './simulator.js'
import { refreshVmOperations } from './semantics/vm.js'
import { newUuid } from './store.js'

export interface HostDescription {
  name?: string
  /** Address clients reach it on; default 127.0.<i/250>.<i%250+1> (127.0.0.1 for the first). */
  address?: string
  uuid?: string
  /** product_version, e.g. 6.5.0, 7.0.0, 7.1.0, 8.2.1 (default: the pool's version). */
  version?: string
  platformVersion?: string
  build?: string
  brand?: string
  memoryBytes?: number
  cpus?: number
  enabled?: boolean
  /** Extra software_version entries. */
  softwareVersion?: Record<string, string>
}

export interface SrDescription {
  name: string
  type: 'ext' | 'nfs' | 'lvm' | 'iso' | string
  sizeBytes?: number
  /** Shared SRs get a PBD on every host; local ones on `host` only. */
  shared?: boolean
  /** Host name or index for a local SR (default: the master). */
  host?: string | number
  contentType?: string
  /** Make it the pool's default SR. */
  default?: boolean
  uuid?: string
}

export interface NetworkDescription {
  name: string
  bridge?: string
  mtu?: number
  /** Give every host a PIF on this network (device, optional VLAN tag). */
  pif?: { device: string; vlan?: number }
  otherConfig?: Record<string, string>
}

export interface VmDescription {
  name: string
  /** Host name or index it runs on / is affine to (default: round-robin). */
  host?: string | number
  powerState?: 'Running' | 'Halted' | 'Paused' | 'Suspended'
  memoryBytes?: number
  vcpus?: number
  /** PV drivers reported by the guest (VM_guest_metrics); default true for running VMs. */
  pvDrivers?: boolean
  /** Disks (default one 10 GiB disk on the default SR). */
  disks?: { sizeBytes: number; sr?: string; name?: string }[]
  /** Networks by name for its VIFs (default: the management network). */
  networks?: string[]
  xenstoreData?: Record<string, string>
  otherConfig?: Record<string, string>
  uuid?: string
}

export interface UpdateDescription {
  /** name_label, e.g. XS71E001. */
  name: string
  version?: string
  uuid?: string
  afterApplyGuidance?: string[]
  /** Host names or indexes where it is already applied ('all' = every host). */
  appliedOn?: (string | number)[] | 'all'
}

export interface PatchDescription {
  /** name_label, e.g. XS65ESP1013. */
  name: string
  version?: string
  uuid?: string
  appliedOn?: (string | number)[] | 'all'
}

export interface PoolDescription {
  name?: string
  /** A number of hosts, or their descriptions (the first is the master). */
  hosts: number | HostDescription[]
  /** product_version for hosts that do not say (default 7.1.0). */
  version?: string
  srs?: SrDescription[]
  networks?: NetworkDescription[]
  /** A number of VMs (named vm-<i>, spread round-robin, running) or their descriptions. */
  vms?: number | VmDescription[]
  /** Default templates (default true). */
  templates?: boolean
  updates?: UpdateDescription[]
  patches?: PatchDescription[]
  /** Local storage size per host (default 1 TiB). */
  localSrBytes?: number
}

/** Known releases: product_version → platform_version, build, API version, brand. */
export const RELEASES: Record<
  string,
  { platform: string; build: string; api: [number, number]; brand: string; xen: string }
> = {
  '6.5.0': { platform: '1.9.0', build: '90233c', api: [2, 4], brand: 'XenServer', xen: '4.4.1-xs90192' },
  '7.0.0': { platform: '2.1.0', build: '125380c', api: [2, 5], brand: 'XenServer', xen: '4.6.1-xs125300' },
  '7.1.0': { platform: '2.2.0', build: '137272c', api: [2, 6], brand: 'XenServer', xen: '4.7.1-xs137269' },
  '7.2.0': { platform: '2.3.0', build: '142089c', api: [2, 7], brand: 'XenServer', xen: '4.7.2-xs142076' },
  '8.2.1': { platform: '3.2.1', build: 'release/yangtze/master/58', api: [2, 20], brand: 'XenServer', xen: '4.13.5' },
}

const GiB = 1024 ** 3

// Map values every generated VM / guest shares. Records never mutate nested values in place (store.ts), so one
// frozen object serves 50,000 records: less to allocate, copy and collect while building, and less resident memory.
const VM_BOOT_PARAMS = Object.freeze({ order: 'dc' })
const VM_PLATFORM = Object.freeze({ acpi: '1', apic: 'true', pae: 'true', nx: 'true' })
const GUEST_OS_VERSION = Object.freeze({ name: 'Ubuntu 16.04', distro: 'ubuntu', major: '16', minor: '04' })
const GUEST_PV_DRIVERS_VERSION = Object.freeze({ major: '7', minor: '1', micro: '0', build: '1' })
const GUEST_OTHER = Object.freeze({ 'feature-shutdown': '1', 'feature-suspend': '1', 'feature-vcpu-hotplug': '1' })

export function softwareVersion(version: string, hostname: string, over: HostDescription = {}): Record<string, string> {
  const rel = RELEASES[version] ?? {
    platform: '2.2.0',
    build: 'unknown',
    api: [2, 6],
    brand: 'XenServer',
    xen: '4.7.1',
  }
  return {
    product_version: version,
    product_version_text: version.replace(/\.0$/, ''),
    product_version_text_short: version.replace(/\.0$/, ''),
    platform_name: 'XCP',
    platform_version: over.platformVersion ?? rel.platform,
    product_brand: over.brand ?? rel.brand,
    build_number: over.build ?? rel.build,
    hostname,
    date: '2017-01-01',
    dbv: '2017.0101',
    xapi: '1.9',
    xen: rel.xen,
    linux: '4.4.0+2',
    xencenter_min: '2.6',
    xencenter_max: `2.${rel.api[1]}`,
    network_backend: 'openvswitch',
    ...over.softwareVersion,
  }
}

/** A MAC as XAPI generates them (locally administered, unicast); not cryptographic, just distinct. */
export function randomMac(): string {
  const hi = Math.floor(Math.random() * 0x1000000)
  const lo = Math.floor(Math.random() * 0x1000000)
  const b0 = ((hi >> 16) & 0xfe) | 0x02
  const h = (n: number) => (n < 16 ? '0' : '') + n.toString(16)
  return `${h(b0)}:${h((hi >> 8) & 0xff)}:${h(hi & 0xff)}:${h(lo >> 16)}:${h((lo >> 8) & 0xff)}:${h(lo & 0xff)}`
}

export function loopbackAddress(i: number): string {
  return `127.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
}

export const DEFAULT_TEMPLATES = [
  'Other install media',
  'CentOS 7',
  'Debian Jessie 8.0',
  'Debian Stretch 9.0',
  'Ubuntu Xenial Xerus 16.04',
  'Red Hat Enterprise Linux 7',
  'Windows Server 2016 (64-bit)',
  'Windows 10 (64-bit)',
]

export interface BuiltPool {
  pool: string
  hosts: string[]
  /** Network name → ref (incl. the management network and the HIMN). */
  networks: Map<string, string>
  srs: Map<string, string>
  vms: string[]
  templates: string[]
}

/** Builds a pool into an empty simulator database (as one bulk load: see Database.batch). */
export function buildPool(sim: Simulator, desc: PoolDescription): BuiltPool {
  return sim.db.batch(() => build(sim, desc))
}

function build(sim: Simulator, desc: PoolDescription): BuiltPool {
  const db = sim.db
  if (db.count('pool') > 0) throw new Error('xapi-sim: buildPool needs an empty database (this one already has a pool)')
  const version = desc.version ?? '7.1.0'
  const hostDescs: HostDescription[] =
    typeof desc.hosts === 'number' ? Array.from({ length: desc.hosts }, () => ({})) : desc.hosts
  if (hostDescs.length === 0) throw new Error('xapi-sim: a pool needs at least one host (hosts: 0 given)')
  const now = nowXapi()

  // Pool-wide networks.
  const networks = new Map<string, string>()
  const mgmtNet = db.create('network', {
    name_label: 'Pool-wide network associated with eth0',
    bridge: 'xenbr0',
    MTU: 1500,
    managed: true,
    other_config: {},
  })
  networks.set('management', mgmtNet)
  networks.set('Pool-wide network associated with eth0', mgmtNet)
  const himn = db.create('network', {
    name_label: 'Host internal management network',
    name_description:
      'Network on which guests will be assigned a private link-local IP address which can be used to talk XenAPI',
    bridge: 'xenapi',
    MTU: 1500,
    managed: true,
    other_config: {
      is_guest_installer_network: 'true',
      is_host_internal_management_network: 'true',
      ip_begin: '169.254.0.1',
      ip_end: '169.254.255.254',
      netmask: '255.255.0.0',
    },
  })
  networks.set('Host internal management network', himn)
  networks.set('himn', himn)
  for (const n of desc.networks ?? []) {
    networks.set(
      n.name,
      db.create('network', {
        name_label: n.name,
        bridge: n.bridge ?? `xapi${networks.size}`,
        MTU: n.mtu ?? 1500,
        managed: true,
        other_config: n.otherConfig ?? {},
      }),
    )
  }

  // Hosts.
  const hosts: string[] = []
  const hostNames: string[] = []
  hostDescs.forEach((h, i) => {
    const name = h.name ?? `host-${i + 1}`
    const address = h.address ?? loopbackAddress(i)
    const v = h.version ?? version
    const rel = RELEASES[v] ?? RELEASES['7.1.0']
    const mem = h.memoryBytes ?? 256 * GiB
    const metrics = db.create('host_metrics', { memory_total: mem, memory_free: mem, live: true, last_updated: now })
    const host = db.create('host', {
      uuid: h.uuid,
      name_label: name,
      hostname: name,
      address,
      enabled: h.enabled ?? true,
      API_version_major: rel.api[0],
      API_version_minor: rel.api[1],
      API_version_vendor: 'XenSource',
      software_version: softwareVersion(v, name, h),
      capabilities: ['xen-3.0-x86_64', 'hvm-3.0-x86_32', 'hvm-3.0-x86_64'],
      cpu_info: {
        cpu_count: String(h.cpus ?? 8),
        socket_count: '1',
        vendor: 'GenuineIntel',
        speed: '2400.000',
        modelname: 'Intel(R) Xeon(R) CPU',
      },
      metrics,
      edition: 'free',
      sched_policy: 'credit',
      iscsi_iqn: `iqn.2017-01.com.example:${name}`,
      other_config: { agent_start_time: String(Date.now() / 1000), iscsi_iqn: `iqn.2017-01.com.example:${name}` },
      allowed_operations: ['provision', 'evacuate', 'reboot', 'shutdown', 'vm_start', 'vm_resume', 'vm_migrate'],
    })
    for (let c = 0; c < Math.min(h.cpus ?? 8, 64); c++)
      db.create('host_cpu', {
        host,
        number: c,
        vendor: 'GenuineIntel',
        speed: 2400,
        modelname: 'Intel(R) Xeon(R) CPU',
        utilisation: 0,
      })
    const dom0Metrics = db.create('VM_metrics', {
      memory_actual: 4 * GiB,
      VCPUs_number: 4,
      state: [],
      start_time: now,
      install_time: now,
      last_updated: now,
    })
    const dom0 = db.create('VM', {
      name_label: `Control domain on host: ${name}`,
      name_description: 'The domain which manages physical devices and manages other domains',
      is_control_domain: true,
      power_state: 'Running',
      resident_on: host,
      affinity: host,
      domid: 0,
      memory_static_max: 4 * GiB,
      memory_dynamic_max: 4 * GiB,
      memory_dynamic_min: 4 * GiB,
      memory_static_min: 4 * GiB,
      memory_target: 4 * GiB,
      VCPUs_max: 4,
      VCPUs_at_startup: 4,
      metrics: dom0Metrics,
      domarch: 'x64',
      domain_type: 'pv',
    })
    db.update(host, { control_domain: dom0 })
    // Management PIF: its IP is the host's address, so `PIF.get_all_records_where('field "IP"="<ip>"')` finds it.
    const pifMetrics = db.create('PIF_metrics', { carrier: true, speed: 10000, duplex: true, last_updated: now })
    db.create('PIF', {
      device: 'eth0',
      network: mgmtNet,
      host,
      MAC: randomMac(),
      MTU: 1500,
      VLAN: -1,
      metrics: pifMetrics,
      physical: true,
      currently_attached: true,
      ip_configuration_mode: 'Static',
      IP: address,
      netmask: '255.0.0.0',
      gateway: '',
      DNS: '',
      management: true,
      managed: true,
      primary_address_type: 'IPv4',
    })
    for (const n of desc.networks ?? []) {
      if (!n.pif) continue
      db.create('PIF', {
        device: n.pif.device,
        network: networks.get(n.name),
        host,
        MAC: randomMac(),
        MTU: n.mtu ?? 1500,
        VLAN: n.pif.vlan ?? -1,
        physical: n.pif.vlan === undefined,
        currently_attached: true,
        ip_configuration_mode: 'None',
        managed: true,
      })
    }
    hosts.push(host)
    hostNames.push(name)
  })
  // Index (not ref) of a described host: VMs need both, and looking the index up from the ref per VM
  // (hosts.indexOf) made a 1,000-host × 50,000-VM build quadratic.
  const hostIndex = (h: string | number | undefined, i = 0): number => {
    if (h === undefined) return i % hosts.length
    if (typeof h === 'number') {
      if (!hosts[h]) throw new Error(`xapi-sim: host index ${h} out of range (0..${hosts.length - 1})`)
      return h
    }
    const j = hostNames.indexOf(h)
    if (j < 0) throw new Error(`xapi-sim: unknown host ${JSON.stringify(h)} (hosts: ${hostNames.join(', ')})`)
    return j
  }
  const hostRef = (h: string | number | undefined, i = 0): string => hosts[hostIndex(h, i)]

  // Storage.
  const srs = new Map<string, string>()
  const makeSr = (s: SrDescription, host: string | undefined): string => {
    const size = s.sizeBytes ?? (s.type === 'iso' ? 0 : (desc.localSrBytes ?? 1024 * GiB))
    const sr = db.create('SR', {
      uuid: s.uuid,
      name_label: s.name,
      name_description: s.type === 'iso' ? 'ISO library' : '',
      type: s.type,
      content_type: s.contentType ?? (s.type === 'iso' ? 'iso' : 'user'),
      shared: !!s.shared,
      physical_size: size,
      physical_utilisation: 0,
      virtual_allocation: 0,
      sm_config: s.type === 'ext' ? { devserial: 'scsi-local' } : {},
      other_config: s.default ? { i18n_key: 'local-storage' } : {},
      allowed_operations: [
        'scan',
        'vdi_create',
        'vdi_destroy',
        'vdi_resize',
        'vdi_clone',
        'vdi_snapshot',
        'unplug',
        'plug',
        'update',
      ],
    })
    for (const h of s.shared ? hosts : [host!])
      db.create('PBD', {
        host: h,
        SR: sr,
        device_config: s.type === 'nfs' ? { server: '192.0.2.10', serverpath: '/export' } : { device: '/dev/sdb' },
        currently_attached: true,
      })
    return sr
  }
  const localSrs: string[] = []
  hosts.forEach((h, i) => {
    const sr = makeSr({ name: 'Local storage', type: 'ext' }, h)
    localSrs.push(sr)
    if (i === 0) srs.set('Local storage', sr)
    srs.set(`Local storage on ${hostNames[i]}`, sr)
  })
  const tools = makeSr({ name: 'XenServer Tools', type: 'iso', shared: true }, undefined)
  db.update(tools, { is_tools_sr: true })
  srs.set('XenServer Tools', tools)
  let defaultSr = localSrs[0]
  for (const s of desc.srs ?? []) {
    const sr = makeSr(s, s.shared ? undefined : hostRef(s.host ?? 0))
    srs.set(s.name, sr)
    if (s.default) defaultSr = sr
  }

  const pool = db.create('pool', {
    name_label: desc.name ?? '',
    master: hosts[0],
    default_SR: defaultSr,
    suspend_image_SR: defaultSr,
    crash_dump_SR: defaultSr,
    other_config: {},
    gui_config: {},
    cpu_info: { cpu_count: String(8 * hosts.length), socket_count: String(hosts.length), vendor: 'GenuineIntel' },
    restrictions: { restrict_vlan: 'false', restrict_pool_size: 'false' },
  })
  hosts.forEach((h, i) => db.update(h, { suspend_image_sr: localSrs[i], crash_dump_sr: localSrs[i] }))

  // Templates.
  const templates: string[] = []
  if (desc.templates !== false) {
    for (const name of DEFAULT_TEMPLATES) {
      const windows = name.startsWith('Windows')
      const t = db.create('VM', {
        name_label: name,
        name_description: `Template for ${name}`,
        is_a_template: true,
        is_default_template: true,
        power_state: 'Halted',
        memory_static_max: 2 * GiB,
        memory_dynamic_max: 2 * GiB,
        memory_dynamic_min: 2 * GiB,
        memory_static_min: 512 * 1024 ** 2,
        VCPUs_max: 2,
        VCPUs_at_startup: 2,
        HVM_boot_policy: 'BIOS order',
        HVM_boot_params: { order: 'cdn' },
        platform: windows
          ? { viridian: 'true', acpi: '1', apic: 'true', pae: 'true', nx: 'true' }
          : { acpi: '1', apic: 'true', pae: 'true', nx: 'true' },
        other_config: {
          default_template: 'true',
          'install-methods': 'cdrom,nfs,http,ftp',
          disks: '<provision><disk device="0" size="34359738368" sr="" bootable="true" type="system"/></provision>',
        },
        domain_type: 'hvm',
        actions_after_crash: 'restart',
        actions_after_reboot: 'restart',
        actions_after_shutdown: 'destroy',
      })
      refreshVmOperations(sim, t)
      templates.push(t)
    }
  }

  // VMs.
  const vms: string[] = []
  const vmDescs: VmDescription[] =
    typeof desc.vms === 'number'
      ? Array.from({ length: desc.vms }, (_, i) => ({ name: `vm-${i + 1}`, powerState: 'Running' as const }))
      : (desc.vms ?? [])
  vmDescs.forEach((v, i) => {
    const hi = hostIndex(v.host, i)
    const host = hosts[hi]
    const power = v.powerState ?? 'Running'
    const live = power === 'Running' || power === 'Paused'
    const mem = v.memoryBytes ?? 1 * GiB
    const vcpus = v.vcpus ?? 1
    const vmMetrics = db.create('VM_metrics', {
      memory_actual: live ? mem : 0,
      VCPUs_number: live ? vcpus : 0,
      start_time: live ? now : '19700101T00:00:00Z',
      install_time: now,
      last_updated: now,
      current_domain_type: live ? 'hvm' : 'unspecified',
    })
    const pv = v.pvDrivers ?? live
    const guest = pv && live ? createGuestMetrics(sim, now) : NULL_REF
    const vm = db.create('VM', {
      uuid: v.uuid,
      name_label: v.name,
      power_state: power,
      resident_on: live || power === 'Suspended' ? (power === 'Suspended' ? NULL_REF : host) : NULL_REF,
      affinity: host,
      domid: live ? sim.nextDomid(host) : -1,
      memory_static_max: mem,
      memory_dynamic_max: mem,
      memory_dynamic_min: mem,
      memory_static_min: Math.min(mem, 512 * 1024 ** 2),
      memory_target: live ? mem : 0,
      VCPUs_max: vcpus,
      VCPUs_at_startup: vcpus,
      metrics: vmMetrics,
      guest_metrics: guest,
      xenstore_data: v.xenstoreData ?? {},
      other_config: v.otherConfig ?? {},
      HVM_boot_policy: 'BIOS order',
      HVM_boot_params: VM_BOOT_PARAMS,
      platform: VM_PLATFORM,
      domain_type: 'hvm',
      actions_after_crash: 'restart',
      actions_after_reboot: 'restart',
      actions_after_shutdown: 'destroy',
    })
    const disks = v.disks ?? [{ sizeBytes: 10 * GiB }]
    disks.forEach((d, di) => {
      const sr = d.sr ? srs.get(d.sr) : localSrs[hi]
      if (!sr)
        throw new Error(
          `xapi-sim: VM ${v.name}: unknown SR ${JSON.stringify(d.sr)} (known: ${[...srs.keys()].join(', ')})`,
        )
      const vdiUuid = newUuid()
      const vdi = db.create(
        'VDI',
        {
          uuid: vdiUuid,
          name_label: d.name ?? `${v.name} disk ${di}`,
          SR: sr,
          virtual_size: d.sizeBytes,
          physical_utilisation: 0,
          type: 'system',
          managed: true,
          location: vdiUuid,
        },
        { freshUuid: true },
      )
      db.update(sr, { virtual_allocation: (db.get(sr)!.virtual_allocation as number) + d.sizeBytes })
      db.create('VBD', {
        VM: vm,
        VDI: vdi,
        device: `xvd${String.fromCharCode(97 + di)}`,
        userdevice: String(di),
        bootable: di === 0,
        mode: 'RW',
        type: 'Disk',
        unpluggable: true,
        empty: false,
        currently_attached: live,
      })
    })
    const nets = v.networks ?? ['management']
    nets.forEach((n, ni) => {
      const net = networks.get(n)
      if (!net)
        throw new Error(
          `xapi-sim: VM ${v.name}: unknown network ${JSON.stringify(n)} (known: ${[...networks.keys()].join(', ')})`,
        )
      db.create('VIF', {
        device: String(ni),
        network: net,
        VM: vm,
        MAC: randomMac(),
        MAC_autogenerated: true,
        MTU: 1500,
        currently_attached: live,
        locking_mode: 'network_default',
      })
    })
    refreshVmOperations(sim, vm)
    vms.push(vm)
  })

  // Updates and patches.
  for (const u of desc.updates ?? []) {
    const upd = db.create('pool_update', {
      uuid: u.uuid,
      name_label: u.name,
      name_description: u.name,
      version: u.version ?? '1.0',
      installation_size: 1024 * 1024,
      key: '',
      after_apply_guidance: u.afterApplyGuidance ?? [],
      vdi: NULL_REF,
      enforce_homogeneity: false,
    })
    const on = u.appliedOn === 'all' ? hosts : (u.appliedOn ?? []).map((h) => hostRef(h))
    for (const h of on) {
      db.update(upd, { hosts: [...(db.get(upd)!.hosts as string[]), h] })
      db.update(h, { updates: [...(db.get(h)!.updates as string[]), upd] })
    }
  }
  for (const p of desc.patches ?? []) {
    const patch = db.create('pool_patch', {
      uuid: p.uuid,
      name_label: p.name,
      name_description: p.name,
      version: p.version ?? '1.0',
      size: 1024 * 1024,
      after_apply_guidance: [],
      pool_applied: p.appliedOn === 'all',
    })
    const on = p.appliedOn === 'all' ? hosts : (p.appliedOn ?? []).map((h) => hostRef(h))
    for (const h of on)
      db.create('host_patch', {
        name_label: p.name,
        version: p.version ?? '1.0',
        host: h,
        pool_patch: patch,
        applied: true,
        timestamp_applied: now,
        size: 1024 * 1024,
      })
  }

  return { pool, hosts, networks, srs, vms, templates }
}

/** A VM_guest_metrics row for a guest with PV drivers. */
export function createGuestMetrics(sim: Simulator, now: string = nowXapi()): string {
  return sim.db.create('VM_guest_metrics', {
    os_version: GUEST_OS_VERSION,
    PV_drivers_version: GUEST_PV_DRIVERS_VERSION,
    PV_drivers_up_to_date: true,
    PV_drivers_detected: true,
    networks: {},
    other: GUEST_OTHER,
    last_updated: now,
    live: true,
    can_use_hotplug_vbd: 'yes',
    can_use_hotplug_vif: 'yes',
  })
}
