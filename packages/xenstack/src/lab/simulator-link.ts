/**
 * One with the simulator: an xapi-sim pool whose hosts, VMs and VIFs are the lab's.
 *
 * - Hosts `xs<i>` (one per dom0 host); each host's `host.call_plugin` runs the plugin files found in that dom0's
 *   /etc/xapi.d/plugins, inside dom0 (its network, mount and UTS namespaces: a plugin changes dom0, never the
 *   machine), with xapi-sim's XenAPIPlugin/XenAPI support modules on PYTHONPATH and XAPI at http://127.0.0.1/.
 *   The simulator's own plugins_dir for the host is the same directory seen from the machine (its backing dir).
 * - A running VM `compute-<i>` on `xs<i>` per compute host, PV drivers present, with VIFs device 0 on the management
 *   network (xenbr0) and device 1 on the storage network (xenbr1) whose MACs are the compute host's eth0/eth1 MACs.
 *   Networks: the pool-wide management network (xenbr0), `storage` (xenbr1) and the Host internal management network
 *   (xenapi, other_config:is_host_internal_management_network=true).
 * - A VIF of a compute VM that becomes attached (VIF.plug, or VM start with the VIF) makes the lab attach a NIC
 *   `eth<device>` with the VIF's MAC to the compute host, its dom0 end `vif1.<device>` in the network's bridge in dom0;
 *   unplug or destroy detaches it. VIF.plug/unplug/destroy return only once the lab has done so (as XAPI's hotplug).
 * - VM.xenstore_data is what the compute host's xenstore-read sees (kept in sync on every change); what the guest
 *   writes as a guest agent does (attr/vif/…/ipv4/…, data/…) shows in the VM's guest metrics (reflectGuestWrite).
 * - XAPI is reachable from the guests over the HIMN, as on XenServer: http://169.254.0.1/ in dom0-<i> is xs<i>'s
 *   XAPI (a relay in dom0 → a unix socket served here → the simulator's address for that host).
 */
import {
  nowXapi,
  PYTHON_SUPPORT_DIR,
  PluginError,
  XapiError,
  parsePluginOutput,
  generatePassword,
  startSimServer,
  validateScenario,
  type Change,
  type SimServer,
  type Simulator,
} from '@xenstack/xapi-sim'
import { encodeMethodCall } from '@xenstack/xapi-wire'
import { existsSync, openSync, readSync, closeSync, statSync } from 'node:fs'
import { connect, createServer, type Server } from 'node:net'
import { join } from 'node:path'
import type { Lab } from './lab.js'
import { waitFor } from './sys.js'
import { HIMN } from './topology.js'

export interface LabSimulatorOptions {
  /** root's password (default: generated per lab, never written to disk). */
  password?: string
  /** XenServer product_version of the pool (default 7.1.0). */
  version?: string
}

export interface LabSimulator {
  url: string
  username: string
  password: string
  server: SimServer
  sim: Simulator
  /** Lab host name (dom0-<i> and compute-<i>) → XAPI ref (host or VM). */
  refs: Map<string, string>
  /** Resolves once the lab has acted on every simulator change so far. */
  settled(): Promise<void>
  /** Errors the lab met acting on simulator changes (also logged). */
  errors: string[]
  close(): Promise<void>
}

export async function linkSimulator(
  lab: Lab,
  opts: LabSimulatorOptions = {},
  log: (line: string) => void = () => {},
): Promise<LabSimulator> {
  const dom0s = lab.hosts.filter((h) => h.role === 'dom0')
  const computes = lab.hosts.filter((h) => h.role === 'compute')
  const password = opts.password ?? generatePassword()
  const scenario = validateScenario(
    {
      name: `lab-${lab.name}`,
      pools: [
        {
          name: lab.name,
          version: opts.version ?? '7.1.0',
          hosts: dom0s.map((d) => ({ name: d.xapiHost, plugins_dir: lab.backingPath(d.name, '/etc/xapi.d/plugins') })),
          srs: [{ name: 'Local storage', type: 'ext', size: '500GiB', default: true }],
          networks: [
            { name: 'Pool-wide network associated with eth0', bridge: 'xenbr0', pifs: 'management' },
            { name: 'storage', bridge: 'xenbr1', pifs: 'all' },
          ],
          compute_vm_per_host: false,
          templates: 'default',
          vms: computes.map((c) => ({
            name: c.name,
            host: c.xapiHost,
            power_state: 'Running',
            pv_drivers: true,
            networks: ['Pool-wide network associated with eth0', 'storage'],
            other_config: { 'xenstack-lab-host': c.name },
          })),
        },
      ],
    },
    `lab:${lab.name}`,
  )
  const server = await startSimServer({ scenario, password, listen: '127.0.0.1:0' })
  const sim = server.pools[0].sim
  const db = sim.db
  const refs = new Map<string, string>()
  const vmHost = new Map<string, string>() // VM ref → lab compute host
  const labWired = new Set<string>() // VIF refs of the compute hosts' eth0/eth1
  for (const d of dom0s) {
    const ref = db.find('host', (r) => r.name_label === d.xapiHost)
    if (ref) refs.set(d.name, ref)
  }
  for (const c of computes) {
    const ref = db.find('VM', (r) => r.name_label === c.name && !r.is_a_template)
    if (!ref) throw new Error(`lab ${lab.name}: the simulator has no VM ${c.name}`)
    refs.set(c.name, ref)
    vmHost.set(ref, c.name)
    const plan = lab.hostPlan(c.name)
    // the VIFs the lab wired itself carry the lab interfaces' MACs
    for (const vif of db.get(ref)!.VIFs as string[]) {
      const device = String(db.get(vif)!.device)
      const link = plan.links.find((l) => l.name === `eth${device}`)
      if (link?.mac) {
        db.update(vif, { MAC: link.mac, currently_attached: true })
        labWired.add(vif)
      }
    }
    db.update(ref, { domid: 1 })
    const xs = lab.xenstore(c.name)
    xs.vmUuid = String(db.get(ref)!.uuid)
    xs.setXapiData((db.get(ref)!.xenstore_data as Record<string, string>) ?? {})
    xs.onGuestChange = (key, value) => reflectGuestWrite(sim, ref, key, value)
  }

  // dom0's /etc/xensource-inventory, as XenServer writes it (dom0 tools read the host uuid and version there);
  // written through the host, since files added to a running host's backing dir may stay invisible
  for (const d of dom0s) {
    const host = db.get(refs.get(d.name) ?? '')
    if (!host) continue
    const sv = (host.software_version as Record<string, string>) ?? {}
    const controlDomain = db.find('VM', (r) => r.is_control_domain === true && r.resident_on === refs.get(d.name))
    const inventory = [
      ['PRODUCT_BRAND', sv.product_brand ?? 'XenServer'],
      ['PRODUCT_VERSION', sv.product_version ?? opts.version ?? '7.1.0'],
      ['PLATFORM_VERSION', sv.platform_version ?? ''],
      ['BUILD_NUMBER', sv.build_number ?? ''],
      ['INSTALLATION_UUID', String(host.uuid)],
      ['CONTROL_DOMAIN_UUID', controlDomain ? String(db.get(controlDomain)!.uuid) : ''],
      ['MANAGEMENT_INTERFACE', 'xenbr0'],
    ]
      .map(([k, v]) => `${k}='${v}'`)
      .join('\n')
    await lab.execOk(d.name, ['sh', '-c', 'cat > /etc/xensource-inventory'], { stdin: inventory + '\n' })
  }

  // dom0's local SRs (ext/lvm, a PBD on its host) mounted where XenServer mounts them: /var/run/sr-mount/<uuid>
  for (const d of dom0s) {
    const hostRef = refs.get(d.name)
    if (!hostRef) continue
    for (const uuid of localSrUuids(sim, hostRef)) await lab.mountLocalSr(d.name, uuid)
  }

  // -- reacting to changes ------------------------------------------------------------------------------
  const errors: string[] = []
  let chain: Promise<void> = Promise.resolve()
  const attached = new Map<string, { host: string; device: number }>() // VIF ref → NIC
  const enqueue = (what: string, fn: () => Promise<void>) => {
    chain = chain.then(fn).catch((e: Error) => {
      const line = `lab ${lab.name}: ${what}: ${e.message}`
      errors.push(line)
      log(line)
    })
  }
  const bridgeOf = (network: string) => String(db.get(network)?.bridge ?? '')
  const onVif = (c: Change) => {
    const host = vmHost.get(String(c.rec.VM))
    if (!host) return
    // eth0/eth1 are the lab's own wiring: always there, never hot-plugged
    if (labWired.has(c.ref)) return
    const device = Number(c.rec.device)
    const want = c.op !== 'del' && c.rec.currently_attached === true
    const have = attached.get(c.ref)
    if (want && !have) {
      const mac = String(c.rec.MAC)
      const bridge = bridgeOf(String(c.rec.network))
      attached.set(c.ref, { host, device })
      enqueue(`attach VIF ${device} (${mac}) to ${host}`, async () => {
        await lab.attachGuestInterface(host, device, mac, bridge)
        log(`attached eth${device} (${mac}, bridge ${bridge}) to ${host}`)
      })
    } else if (!want && have) {
      attached.delete(c.ref)
      enqueue(`detach VIF ${have.device} from ${have.host}`, async () => {
        await lab.detachGuestInterface(have.host, have.device)
        log(`detached eth${have.device} from ${have.host}`)
      })
    }
  }
  const onChange = (c: Change) => {
    if (c.cls === 'VIF') onVif(c)
    else if (c.cls === 'VM' && vmHost.has(c.ref) && (c.op !== 'mod' || c.fields?.includes('xenstore_data'))) {
      const host = vmHost.get(c.ref)!
      lab.xenstore(host).setXapiData(c.op === 'del' ? {} : ((c.rec.xenstore_data as Record<string, string>) ?? {}))
    }
  }
  db.on('change', onChange)

  // -- XAPI on the HIMN: 169.254.0.1:80 in each dom0 reaches that host's simulated XAPI ------------------
  const relays: Server[] = []
  const port = Number(new URL(server.url).port)
  for (const d of dom0s) {
    const target = server.pools[0].addresses.get(d.xapiHost!) ?? '127.0.0.1'
    const dir = lab.hostDir(d.name)
    const sock = join(dir, 'run', 'xapi.sock')
    const relay = createServer((c) => {
      const up = connect(port, target)
      c.on('error', () => up.destroy())
      up.on('error', () => c.destroy())
      c.pipe(up).pipe(c)
    })
    await new Promise<void>((resolve, reject) => {
      relay.once('error', reject)
      relay.listen(sock, () => resolve())
    })
    relay.unref()
    relays.push(relay)
    const ready = join(dir, 'run', 'xapi-relay.ready')
    lab.startOnHost(
      d.name,
      [process.execPath, join(lab.dir, 'bin', 'lab-xapi-relay.mjs'), HIMN.address, '80', sock, ready],
      'xapi-relay.log',
    )
    await waitFor(`XAPI relay on ${d.name} (${HIMN.address}:80)`, () => existsSync(ready))
  }

  // -- host.call_plugin runs inside the host's dom0 ---------------------------------------------------------
  // Not on the machine: dom0 plugins change the host they run on (routes, iptables, files), and must see dom0's
  // /etc, network and hostname. The plugin files are dom0's /etc/xapi.d/plugins; the XML-RPC contract and
  // the outcome mapping are xapi-sim's (encodeMethodCall in, parsePluginOutput out).
  const dom0OfHost = new Map<string, string>()
  for (const d of dom0s) if (refs.get(d.name)) dom0OfHost.set(refs.get(d.name)!, d.name)
  const restorePlugins = sim.messages.override('host.call_plugin', async (ctx, args) => {
    const [host, plugin, fn, pargs] = args as [string, string, string, Record<string, string>]
    db.must('host', host)
    const dom0 = dom0OfHost.get(host)
    if (!dom0) throw new XapiError('XENAPI_MISSING_PLUGIN', plugin)
    try {
      return await runPluginInDom0(lab, dom0, plugin, fn, pargs ?? {}, ctx.session?.ref ?? '')
    } catch (e) {
      if (e instanceof PluginError) throw new XapiError(e.code, ...e.params)
      throw e
    }
  })

  // hotplug is synchronous in XAPI: the call returns once the device is there (or gone)
  const restore: (() => void)[] = []
  for (const m of [
    'VIF.plug',
    'VIF.unplug',
    'VIF.unplug_force',
    'VIF.destroy',
    'VM.start',
    'VM.start_on',
    'VM.clean_shutdown',
    'VM.hard_shutdown',
    'VM.shutdown',
    'VM.clean_reboot',
    'VM.hard_reboot',
  ]) {
    const impl = sim.messages.implementation(m)
    if (!impl) continue
    restore.push(
      sim.messages.override(m, async (ctx, args) => {
        const r = await impl(ctx, args)
        await chain
        return r
      }),
    )
  }

  return {
    url: server.url,
    username: 'root',
    password,
    server,
    sim,
    refs,
    errors,
    settled: () => chain,
    close: async () => {
      db.off('change', onChange)
      for (const r of restore) r()
      restorePlugins()
      await chain
      for (const r of relays) r.close()
      await server.close()
    },
  }
}

/**
 * What XAPI makes of a guest agent's xenstore writes (xapi_guest_agent): `attr/vif/<dev>/ipv4|ipv6/<n>` become the
 * VM's guest metrics `networks` (`<dev>/ipv4/<n>`, and `<dev>/ip` for the first IPv4 address), `data/<key>` becomes
 * `other[<key>]`; `last_updated` moves. Other keys stay in the guest's xenstore only, as on XenServer.
 */
export function reflectGuestWrite(sim: Simulator, vm: string, key: string, value: string | undefined): void {
  const db = sim.db
  const gm = String(db.get(vm)?.guest_metrics ?? '')
  if (!db.has('VM_guest_metrics', gm)) return
  const rec = db.get(gm)!
  const vif = /^attr\/vif\/(\d+)\/(ipv4|ipv6)\/(\d+)$/.exec(key)
  const data = /^data\/([^/]+)$/.exec(key)
  const set = (field: 'networks' | 'other', entries: [string, string | undefined][]) => {
    const next = { ...((rec[field] as Record<string, string>) ?? {}) }
    for (const [k, v] of entries) {
      if (v === undefined) delete next[k]
      else next[k] = v
    }
    db.update(gm, { [field]: next, last_updated: nowXapi() })
  }
  if (vif) {
    const [, dev, family, n] = vif
    const keys: [string, string | undefined][] = [[`${dev}/${family}/${n}`, value]]
    if (family === 'ipv4' && n === '0') keys.push([`${dev}/ip`, value])
    set('networks', keys)
  } else if (data) set('other', [[data[1], value]])
}

/** UUIDs of the host's local storage SRs: not shared, not ISO, with a PBD on that host. */
export function localSrUuids(sim: Simulator, host: string): string[] {
  const out: string[] = []
  for (const [, pbd] of sim.db.all('PBD')) {
    if (pbd.host !== host) continue
    const sr = sim.db.get(String(pbd.SR))
    if (!sr || sr.shared === true || sr.content_type === 'iso' || sr.type === 'iso') continue
    out.push(String(sr.uuid))
  }
  return [...new Set(out)].sort()
}

const PLUGINS_DIR = '/etc/xapi.d/plugins'

/** Runs one plugin call in dom0's namespaces, the way XAPI runs /etc/xapi.d/plugins/<plugin> (xapi-protocol.md §8). */
export async function runPluginInDom0(
  lab: Lab,
  dom0: string,
  plugin: string,
  fn: string,
  args: Record<string, string>,
  sessionRef: string,
): Promise<string> {
  if (!/^[^/\0]+$/.test(plugin) || plugin === '.' || plugin === '..')
    throw new PluginError('XENAPI_MISSING_PLUGIN', [plugin])
  const backing = lab.backingPath(dom0, `${PLUGINS_DIR}/${plugin}`)
  let head = ''
  try {
    if (!statSync(backing).isFile()) throw new Error('not a file')
    const fd = openSync(backing, 'r')
    const buf = Buffer.alloc(256)
    const n = readSync(fd, buf, 0, 256, 0)
    closeSync(fd)
    head = buf.subarray(0, n).toString('latin1')
  } catch {
    throw new PluginError('XENAPI_MISSING_PLUGIN', [plugin])
  }
  const shebang = head.startsWith('#!') ? head.slice(2, head.indexOf('\n') >>> 0).trim() : ''
  const python = shebang === '' ? plugin.endsWith('.py') : /\bpython[0-9.]*\b/.test(shebang)
  const path = `${PLUGINS_DIR}/${plugin}`
  const argv = python ? ['/usr/bin/python3', path] : [path]
  const request = encodeMethodCall(fn, [sessionRef, args])
  const r = await lab.exec(dom0, ['sh', '-c', 'cd "$0" && exec "$@"', PLUGINS_DIR, ...argv, request], {
    env: {
      PYTHONPATH: `${PYTHON_SUPPORT_DIR}:${PLUGINS_DIR}`,
      PYTHONDONTWRITEBYTECODE: '1',
      XENSTACK_XAPI_URL: 'http://127.0.0.1/',
    },
    timeoutMs: 600_000,
  })
  if (r.code > 128) throw new PluginError('XENAPI_PLUGIN_FAILURE', [`signal: ${r.code - 128}`, r.stdout, r.stderr])
  if (r.code !== 0) throw new PluginError('XENAPI_PLUGIN_FAILURE', ['non-zero exit', r.stdout, r.stderr])
  return parsePluginOutput(r.stdout)
}
