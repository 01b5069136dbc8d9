/**
 * Scenarios: YAML descriptions of the pools a simulator serves. The schema is documented in
 * packages/xapi-sim/README.md ("Scenarios"); `loadScenarioFile` validates a file and reports the first problem with
 * its file, line and field path; `defaultScenario()` and `generatedScenario(hosts, vms)` are the built-ins.
 *
 * Sizes accept bytes (integers) or strings with a binary unit (`512MiB`, `20GiB`, `2TiB`; `G`/`GB` are read as GiB
 * like XenServer's tools do).
 */
import { readFile } from 'node:fs/promises'
import { LineCounter, parseDocument, isMap, isSeq, type Document, type Node } from 'yaml'
import { parseFaultRule, type FaultRule } from './faults.js'

/** XenServer releases the simulator knows: product_version → platform_version, build number, API version. */
export const KNOWN_VERSIONS: Record<string, { platform: string; build: string; api: [number, number]; xapi: string }> =
  {
    '6.5.0': { platform: '1.9.0', build: '90233c', api: [2, 4], xapi: '1.9' },
    '7.0.0': { platform: '2.1.0', build: '125380c', api: [2, 5], xapi: '1.20' },
    '7.1.0': { platform: '2.2.0', build: '137272c', api: [2, 6], xapi: '1.29' },
    '7.2.0': { platform: '2.3.0', build: '138005c', api: [2, 7], xapi: '1.40' },
    '8.2.1': { platform: '3.2.1', build: 'release/yangtze/master/58', api: [2, 16], xapi: '1.249' },
  }

export type SrType = 'ext' | 'nfs' | 'lvm' | 'iso' | 'lvmoiscsi' | 'udev'
const SR_TYPES: SrType[] = ['ext', 'nfs', 'lvm', 'iso', 'lvmoiscsi', 'udev']
export type PowerState = 'Halted' | 'Running' | 'Paused' | 'Suspended'
const POWER_STATES: PowerState[] = ['Halted', 'Running', 'Paused', 'Suspended']

export interface ScenarioHost {
  name: string
  /** Address the member answers on (127.0.0.N when not given: master .1, members .2, .3, …). */
  address?: string
  /** Directory of this host's plugins (default `<state>/hosts/<name>/etc/xapi.d/plugins`). */
  plugins_dir?: string
  memory: number
  cpus: number
}

export interface ScenarioSr {
  name: string
  type: SrType
  size: number
  shared: boolean
  /** Host of a local SR; a local SR without a host is created once per host (`<name>` on each). */
  host?: string
  default: boolean
}

export interface ScenarioPif {
  host: string
  device: string
  ip?: string
  netmask?: string
  gateway?: string
  management: boolean
  vlan?: number
}

export interface ScenarioNetwork {
  name: string
  bridge: string
  mtu: number
  pifs: ScenarioPif[]
  other_config: Record<string, string>
}

export interface ScenarioDisk {
  size: number
  sr?: string
  name?: string
}

export interface ScenarioVm {
  name: string
  host?: string
  power_state: PowerState
  memory: number
  vcpus: number
  pv_drivers: boolean
  template?: string
  disks: ScenarioDisk[]
  networks: string[]
  xenstore_data: Record<string, string>
  other_config: Record<string, string>
}

export interface ScenarioPatch {
  name: string
  version: string
  /** Hosts that already have it (`all` is expanded). */
  applied: string[]
}

export interface ScenarioPlugin {
  /** File name under each host's plugins directory (e.g. `dom0_plugin_version.py`). */
  name: string
  /** Inline contents, or `file` (relative to the scenario file). */
  source?: string
  file?: string
  /** Hosts to install it on; default all. */
  hosts?: string[]
}

export interface ScenarioPool {
  name: string
  version: string
  platform_version: string
  build: string
  hosts: ScenarioHost[]
  srs: ScenarioSr[]
  networks: ScenarioNetwork[]
  vms: ScenarioVm[]
  /** One running "compute" VM (the OpenStack compute node) per host, named `compute-<host>`. */
  compute_vm_per_host: boolean
  /** Default templates to create: `default` (XenServer's stock set) or a list of names. */
  templates: 'default' | 'none' | string[]
  patches: ScenarioPatch[]
  updates: ScenarioPatch[]
  plugins: ScenarioPlugin[]
  /** VMs have PV drivers unless they say otherwise. */
  pv_drivers: boolean
}

export interface Scenario {
  name: string
  /** Where it came from (file path or `builtin:<name>`), for messages. */
  source: string
  pools: ScenarioPool[]
  faults: FaultRule[]
  /** Fault PRNG seed. */
  seed: number
}

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string,
    readonly expected: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${field}: ${expected}`)
    this.name = 'ScenarioError'
  }
}

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  KB: 1024,
  KIB: 1024,
  M: 1024 ** 2,
  MB: 1024 ** 2,
  MIB: 1024 ** 2,
  G: 1024 ** 3,
  GB: 1024 ** 3,
  GIB: 1024 ** 3,
  T: 1024 ** 4,
  TB: 1024 ** 4,
  TIB: 1024 ** 4,
}

/** Parses `20GiB`, `512 MiB`, `1073741824`; undefined when malformed. */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? v : undefined
  if (typeof v !== 'string') return undefined
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(v)
  if (!m) return undefined
  const unit = UNITS[m[2].toUpperCase()]
  if (unit === undefined) return undefined
  return Math.round(Number(m[1]) * unit)
}

/** Validates a parsed YAML/JSON value, locating problems through `locate(path)` (a line number). */
class Validator {
  constructor(
    readonly file: string,
    readonly locate: (path: (string | number)[]) => number | undefined,
  ) {}

  fail(path: (string | number)[], expected: string): never {
    const field = path.reduce<string>(
      (acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p),
      '',
    )
    // Point at the deepest part of the path that exists in the document.
    let line: number | undefined
    for (let n = path.length; n >= 0 && line === undefined; n--) line = this.locate(path.slice(0, n))
    throw new ScenarioError(this.file, line, field || '(document)', expected)
  }

  obj(v: unknown, path: (string | number)[], keys: string[]): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'expected a mapping')
    const o = v as Record<string, unknown>
    for (const k of Object.keys(o))
      if (!keys.includes(k)) this.fail([...path, k], `unknown field; expected one of ${keys.join(', ')}`)
    return o
  }
  list(v: unknown, path: (string | number)[]): unknown[] {
    if (v === undefined || v === null) return []
    if (!Array.isArray(v)) this.fail(path, 'expected a list')
    return v
  }
  str(v: unknown, path: (string | number)[], dflt?: string): string {
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt
      this.fail(path, 'required; expected a string')
    }
    if (typeof v === 'number') return String(v)
    if (typeof v !== 'string' || v === '') this.fail(path, `expected a non-empty string, got ${JSON.stringify(v)}`)
    return v
  }
  optStr(v: unknown, path: (string | number)[]): string | undefined {
    return v === undefined || v === null ? undefined : this.str(v, path)
  }
  int(v: unknown, path: (string | number)[], dflt: number, min = 0): number {
    if (v === undefined || v === null) return dflt
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      this.fail(path, `expected an integer ≥ ${min}, got ${JSON.stringify(v)}`)
    return v
  }
  bool(v: unknown, path: (string | number)[], dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, got ${JSON.stringify(v)}`)
    return v
  }
  size(v: unknown, path: (string | number)[], dflt: number): number {
    if (v === undefined || v === null) return dflt
    const n = parseSize(v)
    if (n === undefined)
      this.fail(path, `expected a size such as 20GiB, 512MiB or a byte count, got ${JSON.stringify(v)}`)
    return n
  }
  strMap(v: unknown, path: (string | number)[]): Record<string, string> {
    if (v === undefined || v === null) return {}
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(path, 'expected a mapping of strings')
    const out: Record<string, string> = {}
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (typeof x === 'object' && x !== null) this.fail([...path, k], 'expected a string value')
      out[k] = String(x)
    }
    return out
  }
  oneOf<T extends string>(v: unknown, path: (string | number)[], values: readonly T[], dflt: T): T {
    if (v === undefined || v === null) return dflt
    if (typeof v !== 'string' || !values.includes(v as T))
      this.fail(path, `expected one of ${values.join(', ')}, got ${JSON.stringify(v)}`)
    return v as T
  }
  unique(names: string[], path: (string | number)[], what: string): void {
    const seen = new Set<string>()
    names.forEach((n, i) => {
      if (seen.has(n)) this.fail([...path, i, 'name'], `duplicate ${what} name ${JSON.stringify(n)}`)
      seen.add(n)
    })
  }
}

const TOP_KEYS = ['name', 'pools', 'faults', 'seed', 'pool']
const POOL_KEYS = [
  'name',
  'version',
  'platform_version',
  'build',
  'hosts',
  'srs',
  'networks',
  'vms',
  'compute_vm_per_host',
  'templates',
  'patches',
  'updates',
  'plugins',
  'pv_drivers',
]

/** Validates a scenario value (already parsed from YAML/JSON). `locate` maps a path to a line for messages. */
export function validateScenario(
  value: unknown,
  file: string,
  locate: (path: (string | number)[]) => number | undefined = () => undefined,
): Scenario {
  const v = new Validator(file, locate)
  const top = v.obj(value, [], TOP_KEYS)
  if (top.pool !== undefined && top.pools !== undefined)
    v.fail(['pool'], 'give either pool (one pool) or pools (a list), not both')
  const poolsRaw = top.pool !== undefined ? [top.pool] : v.list(top.pools, ['pools'])
  const poolsKey = top.pool !== undefined ? 'pool' : 'pools'
  if (poolsRaw.length === 0) v.fail([poolsKey], 'expected at least one pool')
  const pools = poolsRaw.map((p, i) => validatePool(v, p, top.pool !== undefined ? ['pool'] : ['pools', i], i))
  v.unique(
    pools.map((p) => p.name),
    ['pools'],
    'pool',
  )
  const allHosts = pools.flatMap((p) => p.hosts.map((h) => h.name))
  const dup = allHosts.find((h, i) => allHosts.indexOf(h) !== i)
  if (dup) v.fail([poolsKey], `host name ${JSON.stringify(dup)} is used twice; host names must be unique across pools`)
  const faults = v.list(top.faults, ['faults']).map((f, i) => {
    try {
      return parseFaultRule(f, `faults[${i}]`)
    } catch (e) {
      const field = (e as { field?: string }).field ?? `faults[${i}]`
      const sub = /^faults\[\d+\]\.?(.*)$/.exec(field)?.[1]
      return v.fail(sub ? ['faults', i, sub] : ['faults', i], (e as Error).message.replace(/^fault rule [^:]*: /, ''))
    }
  })
  return {
    name: v.str(top.name, ['name'], 'scenario'),
    source: file,
    pools,
    faults,
    seed: v.int(top.seed, ['seed'], 1),
  }
}

function validatePool(v: Validator, raw: unknown, path: (string | number)[], index: number): ScenarioPool {
  const p = v.obj(raw, path, POOL_KEYS)
  const version = v.str(p.version, [...path, 'version'], '7.1.0')
  const known = KNOWN_VERSIONS[version]
  if (!/^\d+\.\d+\.\d+$/.test(version))
    v.fail([...path, 'version'], `expected a product version such as 7.1.0, got ${version}`)
  const platform = v.str(p.platform_version, [...path, 'platform_version'], known?.platform ?? '')
  if (!platform)
    v.fail(
      [...path, 'platform_version'],
      `required for version ${version} (known versions: ${Object.keys(KNOWN_VERSIONS).join(', ')})`,
    )
  const hostsRaw = v.list(p.hosts, [...path, 'hosts'])
  if (hostsRaw.length === 0) v.fail([...path, 'hosts'], 'expected at least one host (the first is the master)')
  const hosts: ScenarioHost[] = hostsRaw.map((h, i) => {
    const hp = [...path, 'hosts', i]
    if (typeof h === 'string') return { name: h, memory: 64 * 1024 ** 3, cpus: 16 }
    const o = v.obj(h, hp, ['name', 'address', 'plugins_dir', 'memory', 'cpus'])
    const address = v.optStr(o.address, [...hp, 'address'])
    if (address !== undefined && !/^\d+\.\d+\.\d+\.\d+$/.test(address) && address !== 'localhost')
      v.fail([...hp, 'address'], `expected an IPv4 address such as 127.0.0.2, got ${address}`)
    return {
      name: v.str(o.name, [...hp, 'name']),
      address,
      plugins_dir: v.optStr(o.plugins_dir, [...hp, 'plugins_dir']),
      memory: v.size(o.memory, [...hp, 'memory'], 64 * 1024 ** 3),
      cpus: v.int(o.cpus, [...hp, 'cpus'], 16, 1),
    }
  })
  v.unique(
    hosts.map((h) => h.name),
    [...path, 'hosts'],
    'host',
  )
  const hostNames = new Set(hosts.map((h) => h.name))
  const hostRef = (x: unknown, fp: (string | number)[]): string => {
    const n = v.str(x, fp)
    if (!hostNames.has(n)) v.fail(fp, `expected one of this pool's hosts (${[...hostNames].join(', ')}), got ${n}`)
    return n
  }
  const srsRaw =
    p.srs === undefined ? [{ name: 'Local storage', type: 'ext', default: true }] : v.list(p.srs, [...path, 'srs'])
  const srs: ScenarioSr[] = srsRaw.map((s, i) => {
    const sp = [...path, 'srs', i]
    const o = v.obj(s, sp, ['name', 'type', 'size', 'shared', 'host', 'default'])
    const type = v.oneOf(o.type, [...sp, 'type'], SR_TYPES, 'ext')
    return {
      name: v.str(o.name, [...sp, 'name']),
      type,
      size: v.size(o.size, [...sp, 'size'], 500 * 1024 ** 3),
      shared: v.bool(o.shared, [...sp, 'shared'], type === 'nfs' || type === 'lvmoiscsi'),
      host: o.host === undefined ? undefined : hostRef(o.host, [...sp, 'host']),
      default: v.bool(o.default, [...sp, 'default'], false),
    }
  })
  if (srs.length > 0 && !srs.some((s) => s.default)) {
    const first = srs.find((s) => s.type !== 'iso') ?? srs[0]
    first.default = true
  }
  if (srs.filter((s) => s.default).length > 1)
    v.fail([...path, 'srs'], 'at most one SR can be the default (default: true)')
  const srNames = new Set(srs.map((s) => s.name))
  const netsRaw =
    p.networks === undefined
      ? [{ name: 'Pool-wide network associated with eth0', bridge: 'xenbr0', pifs: 'management' }]
      : v.list(p.networks, [...path, 'networks'])
  const networks: ScenarioNetwork[] = netsRaw.map((n, i) => {
    const np = [...path, 'networks', i]
    const o = v.obj(n, np, ['name', 'bridge', 'mtu', 'pifs', 'other_config'])
    const bridge = v.str(o.bridge, [...np, 'bridge'], `xenbr${i}`)
    let pifs: ScenarioPif[]
    if (o.pifs === 'management' || o.pifs === 'all') {
      // One PIF per host on device eth<i>; `management` also makes them the management interfaces.
      pifs = hosts.map((h, hi) => ({
        host: h.name,
        device: `eth${i}`,
        ip: o.pifs === 'management' ? `10.0.${index}.${hi + 1}` : undefined,
        netmask: o.pifs === 'management' ? '255.255.0.0' : undefined,
        management: o.pifs === 'management',
      }))
    } else {
      pifs = v.list(o.pifs, [...np, 'pifs']).map((pf, j) => {
        const pp = [...np, 'pifs', j]
        const po = v.obj(pf, pp, ['host', 'device', 'ip', 'netmask', 'gateway', 'management', 'vlan'])
        return {
          host: hostRef(po.host, [...pp, 'host']),
          device: v.str(po.device, [...pp, 'device'], `eth${i}`),
          ip: v.optStr(po.ip, [...pp, 'ip']),
          netmask: v.optStr(po.netmask, [...pp, 'netmask']),
          gateway: v.optStr(po.gateway, [...pp, 'gateway']),
          management: v.bool(po.management, [...pp, 'management'], false),
          vlan: po.vlan === undefined ? undefined : v.int(po.vlan, [...pp, 'vlan'], 0, 0),
        }
      })
    }
    return {
      name: v.str(o.name, [...np, 'name']),
      bridge,
      mtu: v.int(o.mtu, [...np, 'mtu'], 1500, 68),
      pifs,
      other_config: v.strMap(o.other_config, [...np, 'other_config']),
    }
  })
  v.unique(
    networks.map((n) => n.name),
    [...path, 'networks'],
    'network',
  )
  for (const h of hosts) {
    const mgmt = networks.flatMap((n) => n.pifs).filter((pf) => pf.host === h.name && pf.management)
    if (mgmt.length > 1)
      v.fail([...path, 'networks'], `host ${h.name} has ${mgmt.length} management PIFs; expected one`)
  }
  const netNames = new Set(networks.map((n) => n.name))
  const pvDefault = v.bool(p.pv_drivers, [...path, 'pv_drivers'], true)
  const vms: ScenarioVm[] = v.list(p.vms, [...path, 'vms']).map((m, i) => {
    const mp = [...path, 'vms', i]
    const o = v.obj(m, mp, [
      'name',
      'host',
      'power_state',
      'memory',
      'vcpus',
      'pv_drivers',
      'template',
      'disks',
      'networks',
      'xenstore_data',
      'other_config',
    ])
    const power = v.oneOf(o.power_state, [...mp, 'power_state'], POWER_STATES, 'Halted')
    const host = o.host === undefined ? undefined : hostRef(o.host, [...mp, 'host'])
    return {
      name: v.str(o.name, [...mp, 'name']),
      host,
      power_state: power,
      memory: v.size(o.memory, [...mp, 'memory'], 1024 ** 3),
      vcpus: v.int(o.vcpus, [...mp, 'vcpus'], 1, 1),
      pv_drivers: v.bool(o.pv_drivers, [...mp, 'pv_drivers'], pvDefault),
      template: v.optStr(o.template, [...mp, 'template']),
      disks: v.list(o.disks, [...mp, 'disks']).map((d, j) => {
        const dp = [...mp, 'disks', j]
        const dobj = v.obj(typeof d === 'string' || typeof d === 'number' ? { size: d } : d, dp, ['size', 'sr', 'name'])
        const sr = v.optStr(dobj.sr, [...dp, 'sr'])
        if (sr !== undefined && !srNames.has(sr))
          v.fail([...dp, 'sr'], `expected one of this pool's SRs (${[...srNames].join(', ')}), got ${sr}`)
        return {
          size: v.size(dobj.size, [...dp, 'size'], 10 * 1024 ** 3),
          sr,
          name: v.optStr(dobj.name, [...dp, 'name']),
        }
      }),
      networks: v.list(o.networks, [...mp, 'networks']).map((n, j) => {
        const name = v.str(n, [...mp, 'networks', j])
        if (!netNames.has(name) && name !== 'Host internal management network')
          v.fail(
            [...mp, 'networks', j],
            `expected one of this pool's networks (${[...netNames].join(', ')}), got ${name}`,
          )
        return name
      }),
      xenstore_data: v.strMap(o.xenstore_data, [...mp, 'xenstore_data']),
      other_config: v.strMap(o.other_config, [...mp, 'other_config']),
    }
  })
  let templates: ScenarioPool['templates'] = 'default'
  if (p.templates !== undefined) {
    if (p.templates === 'default' || p.templates === 'none') templates = p.templates
    else templates = v.list(p.templates, [...path, 'templates']).map((t, i) => v.str(t, [...path, 'templates', i]))
  }
  const patchList = (key: 'patches' | 'updates'): ScenarioPatch[] =>
    v.list(p[key], [...path, key]).map((x, i) => {
      const xp = [...path, key, i]
      const o = v.obj(typeof x === 'string' ? { name: x } : x, xp, ['name', 'version', 'applied'])
      let applied: string[] = []
      if (o.applied === 'all' || o.applied === true) applied = [...hostNames]
      else if (o.applied !== undefined && o.applied !== false)
        applied = v.list(o.applied, [...xp, 'applied']).map((h, j) => hostRef(h, [...xp, 'applied', j]))
      return { name: v.str(o.name, [...xp, 'name']), version: v.str(o.version, [...xp, 'version'], '1.0'), applied }
    })
  const plugins: ScenarioPlugin[] = v.list(p.plugins, [...path, 'plugins']).map((x, i) => {
    const xp = [...path, 'plugins', i]
    const o = v.obj(x, xp, ['name', 'source', 'file', 'hosts'])
    const name = v.str(o.name, [...xp, 'name'])
    if (name.includes('/')) v.fail([...xp, 'name'], 'expected a file name (no directories)')
    const source = v.optStr(o.source, [...xp, 'source'])
    const fileRef = v.optStr(o.file, [...xp, 'file'])
    if ((source === undefined) === (fileRef === undefined)) v.fail(xp, 'give exactly one of source (inline) or file')
    return {
      name,
      source,
      file: fileRef,
      hosts:
        o.hosts === undefined
          ? undefined
          : v.list(o.hosts, [...xp, 'hosts']).map((h, j) => hostRef(h, [...xp, 'hosts', j])),
    }
  })
  return {
    name: v.str(p.name, [...path, 'name'], `pool${index}`),
    version,
    platform_version: platform,
    build: v.str(p.build, [...path, 'build'], known?.build ?? 'sim'),
    hosts,
    srs,
    networks,
    vms,
    compute_vm_per_host: v.bool(p.compute_vm_per_host, [...path, 'compute_vm_per_host'], true),
    templates,
    patches: patchList('patches'),
    updates: patchList('updates'),
    plugins,
    pv_drivers: pvDefault,
  }
}

/** Parses and validates scenario YAML text; errors name `file:line: field: expected …`. */
export function parseScenario(text: string, file: string): Scenario {
  const lineCounter = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]
    const line = lineCounter.linePos(e.pos[0]).line
    throw new ScenarioError(file, line, '(yaml)', e.message.split('\n')[0])
  }
  const locate = (path: (string | number)[]): number | undefined => {
    const node = (path.length === 0 ? doc.contents : doc.getIn(path, true)) as Node | undefined
    if (node && typeof node === 'object' && 'range' in node && node.range) {
      // For a key that exists, point at the key's line rather than its value's.
      if (path.length > 0) {
        const parent = (path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true)) as Node | undefined
        if (isMap(parent)) {
          const pair = parent.items.find(
            (it) => (it.key as { value?: unknown } | null)?.value === path[path.length - 1],
          )
          const kr = (pair?.key as Node | undefined)?.range
          if (kr) return lineCounter.linePos(kr[0]).line
        } else if (isSeq(parent)) {
          // fall through to the item's own range
        }
      }
      return lineCounter.linePos(node.range[0]).line
    }
    return undefined
  }
  return validateScenario(doc.toJS(), file, locate)
}

export async function loadScenarioFile(path: string): Promise<Scenario> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new ScenarioError(path, undefined, '(file)', `cannot read the scenario: ${(e as Error).message}`)
  }
  return parseScenario(text, path)
}

/** The built-in `default`: a 2-host XenServer 7.1 pool, local EXT SR per host, one compute VM per host. */
export function defaultScenario(): Scenario {
  return validateScenario(
    {
      name: 'default',
      pools: [
        {
          name: 'xenserver-7.1',
          version: '7.1.0',
          hosts: ['xs1', 'xs2'],
          srs: [{ name: 'Local storage', type: 'ext', size: '500GiB', default: true }],
          compute_vm_per_host: true,
          templates: 'default',
        },
      ],
    },
    'builtin:default',
  )
}

/**
 * The generated pool of `--hosts N --vms M`: N hosts, M VMs spread round-robin (alternately Running and Halted),
 * default templates. Built directly (it is valid by construction), so 50,000 VMs cost no validation time.
 */
export function generatedScenario(hosts: number, vms: number, version = '7.1.0'): Scenario {
  if (!Number.isInteger(hosts) || hosts < 1)
    throw new ScenarioError('--hosts', undefined, 'hosts', 'expected an integer ≥ 1')
  if (!Number.isInteger(vms) || vms < 0) throw new ScenarioError('--vms', undefined, 'vms', 'expected an integer ≥ 0')
  const width = String(hosts).length
  const hostNames = Array.from({ length: hosts }, (_, i) => `host${String(i + 1).padStart(width, '0')}`)
  const vmWidth = String(vms).length
  const known = KNOWN_VERSIONS[version]
  const noMap: Record<string, string> = {}
  return {
    name: `generated-${hosts}x${vms}`,
    source: 'builtin:generated',
    seed: 1,
    faults: [],
    pools: [
      {
        name: `pool-${hosts}`,
        version,
        platform_version: known?.platform ?? '2.2.0',
        build: known?.build ?? 'sim',
        hosts: hostNames.map((name) => ({ name, memory: 256 * 1024 ** 3, cpus: 16 })),
        srs: [{ name: 'Local storage', type: 'ext', size: 2 * 1024 ** 4, shared: false, default: true }],
        networks: [],
        compute_vm_per_host: false,
        templates: 'default',
        pv_drivers: true,
        patches: [],
        updates: [],
        plugins: [],
        vms: Array.from({ length: vms }, (_, i) => ({
          name: `vm${String(i + 1).padStart(vmWidth, '0')}`,
          host: hostNames[i % hosts],
          power_state: i % 2 === 0 ? 'Running' : 'Halted',
          memory: 1024 ** 3,
          vcpus: 1,
          pv_drivers: true,
          disks: [],
          networks: [],
          xenstore_data: noMap,
          other_config: noMap,
        })),
      },
    ],
  }
}
