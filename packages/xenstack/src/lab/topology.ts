/**
 * The lab's topology, computed (no side effects) from an environment description: which hosts exist,
 * their namespaces, interfaces, MACs and addresses. Addresses come from the environment's network CIDRs,
 * whatever their prefix length; nothing here assumes a /24.
 *
 * Per simulated XenServer host `i` (1-based):
 *  - `dom0-i`: bridges `xenapi` (HIMN, 169.254.0.1/16, DHCP by dnsmasq), `xenbr0` (management) and `xenbr1`
 *    (storage) without addresses; uplinks `eth0`/`eth1` into the lab's switch.
 *  - `compute-i`: the OpenStack compute VM running on that host (domid 1): `eth0` (management) and `eth1`
 *    (storage), veth peers of `vif1.0`/`vif1.1` in dom0; its HIMN interface `eth<device>` appears only when
 *    a VIF on the HIMN is plugged through XAPI.
 * Per environment: `controller-j` on the management network, `storage` on the storage network.
 * The switch (`<prefix>-sw`) is a namespace holding the physical networks' bridges `mgmt` and `stor`.
 * Every host has an admin link to the machine's root namespace: a /30 out of 198.18.<slot>.0/24 (the slot is unique
 * per running lab), root side `xl<slot>h<index>`, host side `adm0`. 198.18.0.0/15 is the range reserved for
 * network benchmarks and labs (RFC 2544): never routed, so it shadows nothing on the machine, and it is not
 * link-local — a guest that finds its HIMN interface by "an address in 169.254.0.0/16" must not find `adm0`.
 * No default route goes through it, and its /30 keeps the other lab hosts unreachable through it.
 */

import type { LabServiceSpec } from './services.js'

export type LabRole = 'dom0' | 'compute' | 'controller' | 'storage'
export type LabNetworkName = 'management' | 'storage'

export interface LabNetworkSettings {
  /** Network address with prefix, e.g. "192.168.0.0/24" or "10.20.0.0/22". */
  cidr: string
}

/** What a lab is made of; the lab's part of an environment description (`lab up --env FILE`). */
export interface LabEnvironment {
  /** Number of simulated XenServer hosts in the pool (each: a dom0 and a compute VM). Default 1. */
  hosts?: number
  /** Number of controller hosts. Default 1. */
  controllers?: number
  /** Whether there is a storage node on the storage network. Default true. */
  storageNode?: boolean
  networks?: Partial<Record<LabNetworkName, LabNetworkSettings>>
  /** HTTP reachability endpoint on the controllers (port; default 8000; false to disable). */
  httpProbePort?: number | false
  /** Further services to start on lab hosts (see services.ts; e.g. Glance on the controller). */
  services?: LabServiceSpec[]
}

export const DEFAULT_NETWORKS: Record<LabNetworkName, LabNetworkSettings> = {
  management: { cidr: '192.168.0.0/24' },
  storage: { cidr: '192.168.1.0/24' },
}

export const HIMN = {
  bridge: 'xenapi',
  address: '169.254.0.1',
  prefix: 16,
  rangeStart: '169.254.0.2',
  rangeEnd: '169.254.255.254',
}
/** The compute VM's domain id in its dom0 (one guest per simulated host). */
export const COMPUTE_DOMID = 1
/** First two octets of the admin links' addresses (198.18.<slot>.<4i+1|4i+2>/30). */
export const ADMIN_NET = '198.18'

export interface LabLink {
  /** Interface name inside this host. */
  name: string
  network: LabNetworkName | 'admin' | 'uplink'
  /** The other end: namespace and interface name, and the bridge it is enslaved to there. */
  peer: { netns: string; name: string; bridge?: string }
  mac?: string
  /** Address with prefix inside this host, if any. */
  address?: string
}

export interface LabHostPlan {
  name: string
  role: LabRole
  index: number
  netns: string
  /** The simulated XenServer host (its name_label) this host is, or runs on; null for controllers/storage. */
  xapiHost: string | null
  /** For a compute VM: its dom0 host's name. */
  dom0?: string
  admin: { rootIf: string; rootAddress: string; hostAddress: string }
  addresses: Partial<Record<LabNetworkName, string>>
  links: LabLink[]
  /** For dom0: its bridges, name → address (or null). */
  bridges?: Record<string, string | null>
}

export interface LabPlan {
  name: string
  slot: number
  prefix: string
  switchNetns: string
  networks: Record<LabNetworkName, LabNetworkSettings>
  hosts: LabHostPlan[]
  httpProbePort: number | false
}

// --- IPv4 helpers -------------------------------------------------------------------------------

export function parseIPv4(s: string, what = 'address'): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s)
  if (!m || m.slice(1).some((x) => Number(x) > 255)) throw new Error(`${what}: "${s}" is not an IPv4 address`)
  return m.slice(1).reduce((acc, x) => acc * 256 + Number(x), 0)
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
}

export interface Cidr {
  network: number
  prefix: number
  size: number
}

export function parseCidr(s: string, what = 'cidr'): Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s ?? '')
  if (!m || Number(m[2]) > 30 || Number(m[2]) < 8)
    throw new Error(`${what}: "${s}" is not an IPv4 CIDR with a prefix between /8 and /30 (e.g. 192.168.0.0/22)`)
  const prefix = Number(m[2])
  const size = 2 ** (32 - prefix)
  const addr = parseIPv4(m[1], what)
  const network = addr - (addr % size)
  if (network !== addr)
    throw new Error(`${what}: "${s}" has host bits set; did you mean ${formatIPv4(network)}/${prefix}?`)
  return { network, prefix, size }
}

/** The address at `offset` in the network, with the network's prefix; offsets 1..size-2 are hosts. */
export function hostAddress(c: Cidr, offset: number, what: string): string {
  if (offset < 1 || offset > c.size - 2)
    throw new Error(`${what}: the network ${formatIPv4(c.network)}/${c.prefix} has no room for host number ${offset}`)
  return `${formatIPv4(c.network + offset)}/${c.prefix}`
}

function overlaps(a: Cidr, b: Cidr): boolean {
  return a.network < b.network + b.size && b.network < a.network + a.size
}

// --- names ---------------------------------------------------------------------------------------

/** Lab names are used in namespace and directory names: short, lowercase, no surprises. */
export function validateLabName(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(name))
    throw new Error(
      `lab name "${name}": expected 1-24 characters, a lowercase letter then lowercase letters, digits or -`,
    )
  return name
}

export const netnsPrefix = (lab: string): string => `xsl-${lab}`

export function macFor(slot: number, hostIndex: number, device: number): string {
  return ['02', '16', '3e', slot, hostIndex, device].map((x) => (typeof x === 'number' ? hex2(x) : x)).join(':')
}
const hex2 = (n: number): string => (n % 256).toString(16).padStart(2, '0')

// --- the plan ------------------------------------------------------------------------------------

export function planLab(name: string, slot: number, env: LabEnvironment = {}): LabPlan {
  validateLabName(name)
  const xsHosts = env.hosts ?? 1
  const controllers = env.controllers ?? 1
  const storageNode = env.storageNode ?? true
  if (!Number.isInteger(xsHosts) || xsHosts < 1 || xsHosts > 16)
    throw new Error(`hosts: expected a whole number of XenServer hosts from 1 to 16, got ${xsHosts}`)
  if (!Number.isInteger(controllers) || controllers < 0 || controllers > 8)
    throw new Error(`controllers: expected a whole number from 0 to 8, got ${controllers}`)
  const networks: Record<LabNetworkName, LabNetworkSettings> = {
    management: { cidr: env.networks?.management?.cidr ?? DEFAULT_NETWORKS.management.cidr },
    storage: { cidr: env.networks?.storage?.cidr ?? DEFAULT_NETWORKS.storage.cidr },
  }
  const mgmt = parseCidr(networks.management.cidr, 'networks.management.cidr')
  const stor = parseCidr(networks.storage.cidr, 'networks.storage.cidr')
  const himn = parseCidr('169.254.0.0/16')
  if (overlaps(mgmt, stor))
    throw new Error(`networks: management ${networks.management.cidr} and storage ${networks.storage.cidr} overlap`)
  for (const [n, c] of [
    ['management', mgmt],
    ['storage', stor],
  ] as const)
    if (overlaps(c, himn))
      throw new Error(
        `networks.${n}.cidr: ${networks[n].cidr} overlaps the host internal management network 169.254.0.0/16`,
      )

  const prefix = netnsPrefix(name)
  const switchNetns = `${prefix}-sw`
  const hosts: LabHostPlan[] = []
  let index = 0
  const admin = (i: number) => ({
    rootIf: `xl${slot}h${i}`,
    rootAddress: `${ADMIN_NET}.${slot}.${4 * i + 1}`,
    hostAddress: `${ADMIN_NET}.${slot}.${4 * i + 2}`,
  })
  if (4 * (xsHosts * 2 + controllers + (storageNode ? 1 : 0)) > 256) throw new Error('too many hosts for one lab')
  const mgmtNext = { n: 2 }
  const storNext = { n: 2 }
  const take = (c: Cidr, counter: { n: number }, what: string) => hostAddress(c, counter.n++, what)

  for (let j = 1; j <= controllers; j++) {
    const i = index++
    const addr = take(mgmt, mgmtNext, `networks.management.cidr (controller-${j})`)
    hosts.push({
      name: `controller-${j}`,
      role: 'controller',
      index: i,
      netns: `${prefix}-controller-${j}`,
      xapiHost: null,
      admin: admin(i),
      addresses: { management: addr },
      links: [
        {
          name: 'eth0',
          network: 'management',
          peer: { netns: switchNetns, name: `c${j}m`, bridge: 'mgmt' },
          mac: macFor(slot, i, 0),
          address: addr,
        },
      ],
    })
  }
  if (storageNode) {
    const i = index++
    const addr = take(stor, storNext, 'networks.storage.cidr (storage)')
    hosts.push({
      name: 'storage',
      role: 'storage',
      index: i,
      netns: `${prefix}-storage`,
      xapiHost: null,
      admin: admin(i),
      addresses: { storage: addr },
      links: [
        {
          name: 'eth0',
          network: 'storage',
          peer: { netns: switchNetns, name: 'stm', bridge: 'stor' },
          mac: macFor(slot, i, 0),
          address: addr,
        },
      ],
    })
  }
  for (let k = 1; k <= xsHosts; k++) {
    const xapiHost = `xs${k}`
    const d = index++
    const dom0Netns = `${prefix}-dom0-${k}`
    hosts.push({
      name: `dom0-${k}`,
      role: 'dom0',
      index: d,
      netns: dom0Netns,
      xapiHost,
      admin: admin(d),
      addresses: {},
      bridges: { [HIMN.bridge]: `${HIMN.address}/${HIMN.prefix}`, xenbr0: null, xenbr1: null },
      links: [
        {
          name: 'eth0',
          network: 'uplink',
          peer: { netns: switchNetns, name: `d${k}m`, bridge: 'mgmt' },
          mac: macFor(slot, d, 0),
        },
        {
          name: 'eth1',
          network: 'uplink',
          peer: { netns: switchNetns, name: `d${k}s`, bridge: 'stor' },
          mac: macFor(slot, d, 1),
        },
      ],
    })
    const c = index++
    const m = take(mgmt, mgmtNext, `networks.management.cidr (compute-${k})`)
    const s = take(stor, storNext, `networks.storage.cidr (compute-${k})`)
    hosts.push({
      name: `compute-${k}`,
      role: 'compute',
      index: c,
      netns: `${prefix}-compute-${k}`,
      xapiHost,
      dom0: `dom0-${k}`,
      admin: admin(c),
      addresses: { management: m, storage: s },
      links: [
        {
          name: 'eth0',
          network: 'management',
          peer: { netns: dom0Netns, name: `vif${COMPUTE_DOMID}.0`, bridge: 'xenbr0' },
          mac: macFor(slot, c, 0),
          address: m,
        },
        {
          name: 'eth1',
          network: 'storage',
          peer: { netns: dom0Netns, name: `vif${COMPUTE_DOMID}.1`, bridge: 'xenbr1' },
          mac: macFor(slot, c, 1),
          address: s,
        },
      ],
    })
  }
  return { name, slot, prefix, switchNetns, networks, hosts, httpProbePort: env.httpProbePort ?? 8000 }
}
