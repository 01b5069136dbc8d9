/**
 * The lab: real isolated Linux hosts on this machine that reproduce XenServer pools (dom0 + compute VM per
 * host), controllers and a storage node, for tests, the demo and benchmarks.
 *
 * API
 * ---
 *   import { withLab } from '../../src/lab/index.js'   (in xenstack's tests; Lab and withLab are also exported by
 *                                                      '@xenstack/xenstack')
 *   await withLab({ hosts: 1 }, async (lab) => {
 *     const r = await lab.exec('compute-1', ['ip', '-br', 'addr'])   // { code, stdout, stderr }, never throws on exit code
 *     await lab.execOk('dom0-1', ['sh', '-c', 'echo hi > /etc/xapi.d/plugins/x'])  // throws CommandError unless exit 0
 *     lab.backingPath('dom0-1', '/etc/xapi.d/plugins/x')                // where that write landed on the machine
 *     const h = lab.host('controller-1')  // { name, role, netns, xapiHost, ssh: { host, port, user, identityFile,
 *                                         //   knownHostsFile }, addresses: { management: '192.168.0.2/24' }, … }
 *     // ssh -F lab.sshConfigFile compute-1   (or ssh2 with h.ssh; host keys are in h.ssh.knownHostsFile)
 *     lab.httpProbeUrl('controller-1')    // the controller's reachability endpoint
 *     await lab.attachGuestInterface('compute-1', 9, mac, 'xenapi') // a NIC by hand (XAPI does it with simulator)
 *   })
 *   withLab({ hosts: 2, simulator: true }, async (lab) => { lab.simulator!.url, .username, .password, .sim,
 *     .refs (lab host → XAPI ref), await lab.simulator!.settled(); lab.xenstore('compute-1').setXapiData(…) })
 *
 *   Lab.up(options) / lab.down() do the same by hand; `Lab.destroy(name)` removes a (stale) lab by name;
 *   `Lab.attach(name)` is a view (exec, hosts, ssh) of a lab another process holds (`xenstack lab up`).
 *
 * Options (all optional): `name` (default: unique per process), `hosts` (XenServer hosts, default 1),
 * `controllers` (default 1), `storageNode` (default true), `networks: { management: { cidr }, storage: { cidr } }`
 * (defaults 192.168.0.0/24 and 192.168.1.0/24; any prefix), `httpProbePort` (default 8000, false for none),
 * `simulator` (true or { password, version }: an xapi-sim pool wired to the lab, see simulator-link.ts),
 * `services` ([{ kind, host, options }], see services.ts), `root` (labs directory, default $XENSTACK_LAB_ROOT or
 * /tmp/xenstack-labs), `seed(host, paths)` (write files into a host's backing dirs before it starts — files
 * written into the backing dirs from outside while the lab runs are not reliably visible, overlayfs rule),
 * `log(line)` (progress with timings).
 *
 * Host names: `dom0-<i>` and `compute-<i>` per XenServer host `xs<i>`, `controller-<j>`, `storage`.
 * Each host has its own network, mount and UTS namespaces (hostname = host name) and its own root: an overlay of
 * the machine's `/` whose upper dir, `<lab dir>/hosts/<host>/fs`, is the host's backing dir (`backingPath`), made
 * the host's root with pivot_root, so every write — /etc, /root, /var, a new top-level /images, /boot/guest, cron's
 * spool — lands there and never on the machine. The upper dirs sit on a tmpfs the lab mounts on `<lab dir>/hosts`
 * (a separate file system: the overlay's layers must not overlap with its lower `/`). /proc, /sys (this network
 * namespace's), /dev (with a private /dev/shm), /run and /tmp are the host's own mounts, so no two hosts share a
 * temp dir; /usr/local/bin adds the lab's guest programs (xenstore-read/write, lab-dhcp-client). Inside a host the
 * rest of the lab dir is hidden: only the host's own dir (configs, logs, sockets) and the lab's programs are
 * there, at the same paths. A dom0 also has its local SR mounted where XenServer mounts it,
 * /var/run/sr-mount/<SR uuid> (backed by `<host dir>/sr-mount/<uuid>`, with the simulator's SR uuids). sshd
 * (key-only, own host key) listens on port 22 of
 * the host's admin address (198.18.<slot>.x), reachable from the machine. Controllers run an HTTP endpoint on
 * their management address (port `httpProbePort`) answering `{"host":…, "client":"<source address>"}` and logging
 * each request to <host dir>/log/http-probe.log, and have the /etc/nova/nova.conf a Fuel-deployed controller has
 * (controller-role.ts: keystone's memcached servers, which the XenServer plugin's controller task reads). Compute VMs
 * forward nothing (FORWARD policy DROP) until told to.
 *
 * Teardown kills every process in the lab's namespaces, deletes the namespaces (their links go with them)
 * and the lab directory. What a lab creates is recorded in `<lab dir>/state.json` before it is created, so
 * `up` of the same name (or `Lab.destroy`) after a crash removes the leftovers first.
 */
import { createHash } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { readdir } from 'node:fs/promises'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { PYTHON_SUPPORT_DIR } from '@xenstack/xapi-sim'
import { HOST_PROGRAMS } from './host-programs.js'
import { roleFiles } from './controller-role.js'
import { XenstoreDomain } from './xenstore.js'
import { startLabServices, type LabServiceEndpoint } from './services.js'
import { linkSimulator, type LabSimulator, type LabSimulatorOptions } from './simulator-link.js'
import {
  CommandError,
  cmdline,
  isAlive,
  procStat,
  run,
  runOk,
  sleep,
  startDaemon,
  waitFor,
  type RunOptions,
  type RunResult,
} from './sys.js'
import {
  COMPUTE_DOMID,
  HIMN,
  planLab,
  validateLabName,
  netnsPrefix,
  type LabEnvironment,
  type LabHostPlan,
  type LabNetworkName,
  type LabPlan,
  type LabRole,
} from './topology.js'

/** Machine directories every host sees read-only at the same path, wherever the checkout lives. */
const HOST_VISIBLE_DIRS = [PYTHON_SUPPORT_DIR]

export const DEFAULT_LAB_ROOT = '/tmp/xenstack-labs'
export const labRoot = (root?: string): string => root ?? process.env.XENSTACK_LAB_ROOT ?? DEFAULT_LAB_ROOT

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
/** Mounts of their own in every host (not in its backing dir): what is written there is not on the machine. */
export const PRIVATE_MOUNTS = ['/proc', '/sys', '/dev', '/run', '/tmp']
/** Where XenServer mounts a local SR (`/var/run` is `/run`): dom0's SR mounts are backed by `<host dir>/sr-mount`. */
export const SR_MOUNT_DIR = '/run/sr-mount'
const SLOT_MIN = 200
const SLOT_MAX = 249

export interface LabOptions extends LabEnvironment {
  name?: string
  root?: string
  /** Called for each host after its backing dirs exist and before the host starts. */
  seed?: (host: LabHostPlan, paths: { etc: string; root: string; var: string }) => void | Promise<void>
  /** Progress lines (timings); default: none. */
  log?: (line: string) => void
  /** Start an xapi-sim pool wired to the lab (see simulator-link.ts). Default false. */
  simulator?: boolean | LabSimulatorOptions
}

export interface LabSshEndpoint {
  host: string
  port: number
  user: string
  identityFile: string
  knownHostsFile: string
}

export interface LabHost {
  name: string
  role: LabRole
  netns: string
  xapiHost: string | null
  ssh: LabSshEndpoint
  addresses: Partial<Record<LabNetworkName | 'himn', string>>
  /** Backing dirs of the host's /etc, /root and /var (in its root overlay's upper dir). */
  backing: { etc: string; root: string; var: string }
  /** PID of the process holding the host's mount and UTS namespaces. */
  holderPid: number
}

/** Written to <lab dir>/state.json before anything is created, then updated as things are created. */
export interface LabState {
  name: string
  dir: string
  slot: number
  createdAt: string
  netns: string[]
  rootLinks: string[]
  /** Mounts the lab made on the machine (the tmpfs under the hosts' upper dirs), unmounted by down. */
  mounts?: string[]
  pids: Record<string, number>
  env: LabEnvironment
  /** PID of the supervisor process holding this lab (lab up), if any. */
  supervisorPid?: number
}

export interface LabExecOptions extends Omit<RunOptions, 'allowedExitCodes'> {
  allowedExitCodes?: number[]
}

let autoNameCounter = 0
/** A name unique to this process and call, for labs made by tests. */
export function autoLabName(): string {
  return `t${process.pid.toString(36)}${(autoNameCounter++).toString(36)}`
}

export class Lab {
  readonly hosts: LabHost[]
  private readonly byName: Map<string, LabHost>
  private readonly xenstores = new Map<string, XenstoreDomain>()
  private readonly downHooks: (() => Promise<void> | void)[] = []
  private downed = false
  /** The simulator pool wired to this lab (with `simulator: true`). */
  simulator?: LabSimulator
  /** Services started from `options.services` (the HTTP probe is in `httpProbeUrl`). */
  services: LabServiceEndpoint[] = []

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly plan: LabPlan,
    private state: LabState,
  ) {
    this.hosts = plan.hosts.map((p) => this.hostInfo(p))
    this.byName = new Map(this.hosts.map((h) => [h.name, h]))
  }

  get sshConfigFile(): string {
    return join(this.dir, 'admin', 'ssh_config')
  }
  get identityFile(): string {
    return join(this.dir, 'admin', 'id_ed25519')
  }
  get knownHostsFile(): string {
    return join(this.dir, 'admin', 'known_hosts')
  }
  get slot(): number {
    return this.plan.slot
  }

  host(name: string): LabHost {
    const h = this.byName.get(name)
    if (!h) throw new Error(`lab ${this.name}: no host "${name}" (hosts: ${[...this.byName.keys()].join(', ')})`)
    return h
  }

  hostPlan(name: string): LabHostPlan {
    const p = this.plan.hosts.find((h) => h.name === name)
    if (!p) throw new Error(`lab ${this.name}: no host "${name}"`)
    return p
  }

  hostDir(name: string): string {
    return join(this.dir, 'hosts', this.host(name).name)
  }

  /**
   * Where a file the host writes at `path` lands on the machine: its root overlay's upper dir, or for dom0's SR
   * mounts (/var/run/sr-mount/<uuid>/…) the SR's backing dir. Paths on the host's own /proc, /sys, /dev, /run and
   * /tmp have none (they are not kept), nor do relative paths.
   */
  backingPath(host: string, path: string): string {
    if (!path.startsWith('/') || path.split('/').includes('..'))
      throw new Error(`backingPath: ${path} is not an absolute path without ".." (expected e.g. /etc/nova/nova.conf)`)
    // /var/run and /var/lock are symlinks to /run and /run/lock on the machine, and so in every host
    const p = path.replace(/^\/var\/(run|lock)(?=\/|$)/, (_m, d: string) => (d === 'run' ? '/run' : '/run/lock'))
    if (p === SR_MOUNT_DIR || p.startsWith(SR_MOUNT_DIR + '/'))
      return join(this.hostDir(host), 'sr-mount', p.slice(SR_MOUNT_DIR.length))
    const priv = PRIVATE_MOUNTS.find((m) => p === m || p.startsWith(m + '/'))
    if (priv)
      throw new Error(
        `backingPath: ${path} is on the host's own ${priv} (${PRIVATE_MOUNTS.join(', ')} are not kept on the machine)`,
      )
    return join(this.hostDir(host), 'fs', p)
  }

  /** The URL of a controller's HTTP reachability endpoint. */
  httpProbeUrl(host = 'controller-1'): string {
    if (this.plan.httpProbePort === false) throw new Error(`lab ${this.name}: the HTTP probe is disabled`)
    const addr = this.host(host).addresses.management
    if (!addr) throw new Error(`lab ${this.name}: ${host} has no management address`)
    return `http://${addr.split('/')[0]}:${this.plan.httpProbePort}/`
  }

  /**
   * Runs argv on the host (its network, mount and UTS namespaces; PATH, HOME=/root, cwd /) and resolves
   * with the exit code and output. Does not reject on a non-zero exit code; see execOk.
   */
  exec(host: string, argv: string[], opts: LabExecOptions = {}): Promise<RunResult> {
    const h = this.host(host)
    return run(['nsenter', '-t', String(h.holderPid), '-m', '-u', '-n', '--', ...argv], {
      ...opts,
      env: { PATH, HOME: '/root', LANG: 'C.UTF-8', USER: 'root', LOGNAME: 'root', ...(opts.env ?? {}) },
      cwd: opts.cwd ?? '/',
    })
  }

  /** Like exec, but rejects with a CommandError (naming the host) unless the exit code is allowed (default 0). */
  async execOk(host: string, argv: string[], opts: LabExecOptions = {}): Promise<RunResult> {
    const r = await this.exec(host, argv, opts)
    if (!(opts.allowedExitCodes ?? [0]).includes(r.code)) throw new CommandError(argv, r, `on lab host ${host}`)
    return r
  }

  /** Starts a long-running process on the host, detached, output appended to <host dir>/log/<logName>. */
  startOnHost(host: string, argv: string[], logName: string, env?: NodeJS.ProcessEnv): number {
    const h = this.host(host)
    const pid = startDaemon(
      ['nsenter', '-t', String(h.holderPid), '-m', '-u', '-n', '--', ...argv],
      join(this.hostDir(host), 'log', logName),
      { PATH, HOME: '/root', LANG: 'C.UTF-8', ...(env ?? {}) },
    )
    return pid
  }

  /**
   * Attaches a guest interface: a veth `vif<domid>.<device>` in the compute host's dom0 (enslaved to `bridge`)
   * whose peer `eth<device>` (with `mac`) appears in the compute host, down and unaddressed, as a hot-plugged NIC.
   */
  async attachGuestInterface(compute: string, device: number, mac: string, bridge: string): Promise<string> {
    const c = this.hostPlan(compute)
    if (c.role !== 'compute' || !c.dom0) throw new Error(`attachGuestInterface: ${compute} is not a compute VM`)
    const d = this.hostPlan(c.dom0)
    const vif = `vif${COMPUTE_DOMID}.${device}`
    const eth = `eth${device}`
    await runOk(
      [
        'ip',
        'link',
        'add',
        'name',
        eth,
        'netns',
        c.netns,
        'address',
        mac,
        'type',
        'veth',
        'peer',
        'name',
        vif,
        'netns',
        d.netns,
      ],
      {},
      `attach ${eth} (${mac}) to ${compute}`,
    )
    await runOk(
      ['ip', '-n', d.netns, 'link', 'set', vif, 'master', bridge, 'up'],
      {},
      `plug ${vif} into ${bridge} on ${d.name}`,
    )
    return eth
  }

  /** Detaches what attachGuestInterface attached (no error if it is already gone). */
  async detachGuestInterface(compute: string, device: number): Promise<void> {
    const c = this.hostPlan(compute)
    if (!c.dom0) return
    const d = this.hostPlan(c.dom0)
    await run(['ip', '-n', d.netns, 'link', 'del', `vif${COMPUTE_DOMID}.${device}`])
  }

  /**
   * Mounts a local SR in dom0 where XenServer does, /var/run/sr-mount/<uuid> (the host's own mount, bound from
   * `<host dir>/sr-mount/<uuid>` so the machine sees what is stored there). Idempotent.
   */
  async mountLocalSr(dom0: string, uuid: string): Promise<string> {
    if (this.host(dom0).role !== 'dom0') throw new Error(`mountLocalSr: ${dom0} is not a dom0`)
    if (!/^[0-9a-f-]{36}$/.test(uuid)) throw new Error(`mountLocalSr: ${uuid} is not an SR uuid`)
    const at = `${SR_MOUNT_DIR}/${uuid}`
    const backing = this.backingPath(dom0, at)
    mkdirSync(backing, { recursive: true })
    await this.execOk(dom0, [
      'sh',
      '-c',
      'mountpoint -q "$1" || { mkdir -p "$1" && mount --bind "$2" "$1"; }',
      'mount-sr',
      at,
      backing,
    ])
    return at
  }

  /** Summary for `lab status` / `lab up --json`. */
  describe(): { name: string; dir: string; hosts: Omit<LabHost, 'holderPid' | 'backing'>[] } {
    return {
      name: this.name,
      dir: this.dir,
      hosts: this.hosts.map(({ name, role, netns, xapiHost, ssh, addresses }) => ({
        name,
        role,
        netns,
        xapiHost,
        ssh,
        addresses,
      })),
    }
  }

  /**
   * The xenstore a compute host's guest tools see (served by this process on the host's
   * /run/xenstored/socket; only on the Lab object that brought the lab up).
   */
  xenstore(host: string): XenstoreDomain {
    const x = this.xenstores.get(this.host(host).name)
    if (!x)
      throw new Error(`lab ${this.name}: ${host} has no xenstore here (compute hosts only, in the process that ran up)`)
    return x
  }

  /** Registers cleanup to run first on down (simulator links, services started by others). */
  onDown(fn: () => Promise<void> | void): void {
    this.downHooks.unshift(fn)
  }

  /** Records the process holding this lab (lab up's supervisor), so down stops it first. */
  recordSupervisor(pid: number): void {
    this.state.supervisorPid = pid
    writeState(this.dir, this.state)
  }

  /** Removes everything the lab created. Idempotent. */
  async down(): Promise<void> {
    if (this.downed) return
    this.downed = true
    for (const fn of this.downHooks) {
      try {
        await fn()
      } catch {
        // teardown goes on whatever a hook did
      }
    }
    for (const x of this.xenstores.values()) await x.close()
    await destroyLabDir(this.dir, { skipPid: process.pid })
  }

  private hostInfo(p: LabHostPlan): LabHost {
    const d = join(this.dir, 'hosts', p.name)
    return {
      name: p.name,
      role: p.role,
      netns: p.netns,
      xapiHost: p.xapiHost,
      ssh: {
        host: p.admin.hostAddress,
        port: 22,
        user: 'root',
        identityFile: join(this.dir, 'admin', 'id_ed25519'),
        knownHostsFile: join(this.dir, 'admin', 'known_hosts'),
      },
      addresses: { ...p.addresses },
      backing: { etc: join(d, 'fs', 'etc'), root: join(d, 'fs', 'root'), var: join(d, 'fs', 'var') },
      holderPid: this.state.pids[`${p.name}.holder`] ?? 0,
    }
  }

  /** Re-reads state (e.g. a supervisor's lab from another process). */
  static attach(name: string, root?: string): Lab {
    const dir = join(labRoot(root), validateLabName(name))
    const state = readState(dir)
    if (!state) throw new Error(`no lab named "${name}" (no ${join(dir, 'state.json')})`)
    const plan = planLab(state.name, state.slot, state.env)
    return new Lab(state.name, dir, plan, state)
  }

  /** Removes a lab by name (after a crash, or one held by a supervisor): processes, namespaces, links, dir. */
  static async destroy(name: string, root?: string): Promise<boolean> {
    const dir = join(labRoot(root), validateLabName(name))
    const had = existsSync(join(dir, 'state.json'))
    await destroyLabDir(dir, { name })
    return had
  }

  static async up(options: LabOptions = {}): Promise<Lab> {
    const log = options.log ?? (() => {})
    const t0 = performance.now()
    const lap = (() => {
      let t = t0
      return (what: string) => {
        const now = performance.now()
        log(`${what}: ${Math.round(now - t)} ms`)
        t = now
      }
    })()
    await preflight()
    const name = validateLabName(options.name ?? autoLabName())
    const root = labRoot(options.root)
    const dir = join(root, name)
    mkdirSync(root, { recursive: true })
    // a stale lab of the same name (crash, killed supervisor): remove what it recorded
    if (existsSync(join(dir, 'state.json')) || (await listNetns()).some((n) => n.startsWith(netnsPrefix(name) + '-'))) {
      log(`cleaning up a stale lab "${name}"`)
      await destroyLabDir(dir, { name })
    }
    const slot = allocateSlot(root, name)
    let plan: LabPlan
    try {
      plan = planLab(name, slot, options)
    } catch (e) {
      releaseSlot(root, slot, name)
      throw e
    }
    mkdirSync(dir, { recursive: true, mode: 0o755 })
    const state: LabState = {
      name,
      dir,
      slot,
      createdAt: new Date().toISOString(),
      netns: [plan.switchNetns, ...plan.hosts.map((h) => h.netns)],
      rootLinks: plan.hosts.map((h) => h.admin.rootIf),
      pids: {},
      env: stripFunctions(options),
    }
    writeState(dir, state)
    const lab = new Lab(name, dir, plan, state)
    try {
      await lab.build(options, lap)
    } catch (e) {
      for (const x of lab.xenstores.values()) await x.close()
      await destroyLabDir(dir, { skipPid: process.pid }).catch(() => {})
      throw e
    }
    if (options.simulator) {
      try {
        lab.simulator = await linkSimulator(lab, options.simulator === true ? {} : options.simulator, log)
        const sim = lab.simulator
        lab.onDown(() => sim.close())
      } catch (e) {
        await lab.down()
        throw e
      }
      lap(`simulator ${lab.simulator.url}`)
    }
    if (options.services?.length) {
      try {
        lab.services = await startLabServices(lab, options.services)
      } catch (e) {
        await lab.down()
        throw e
      }
      lap(`services ${options.services.map((s) => s.kind).join(', ')}`)
    }
    log(`lab ${name} up: ${Math.round(performance.now() - t0)} ms`)
    return lab
  }

  private async build(options: LabOptions, lap: (what: string) => void): Promise<void> {
    const { plan, dir, state } = this
    // -- dirs, keys, configs ----------------------------------------------------------------------
    const admin = join(dir, 'admin')
    const bin = join(dir, 'bin')
    mkdirSync(admin, { recursive: true, mode: 0o700 })
    mkdirSync(bin, { recursive: true })
    writeHelpers(bin)
    // the hosts' upper dirs on a file system of their own: an overlay's upper must not lie inside its lower `/`
    const hostsDir = join(dir, 'hosts')
    mkdirSync(hostsDir, { recursive: true })
    state.mounts = [hostsDir]
    writeState(dir, state)
    await runOk(
      ['mount', '-t', 'tmpfs', '-o', 'mode=0755', `xsl-${plan.name}-hosts`, hostsDir],
      {},
      `mount the hosts' tmpfs on ${hostsDir}`,
    )
    const keygen = (file: string, comment: string) =>
      runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], {}, 'ssh-keygen')
    const jobs: Promise<unknown>[] = [keygen(join(admin, 'id_ed25519'), `xenstack-lab-${plan.name}-admin`)]
    for (const h of plan.hosts) {
      const d = join(dir, 'hosts', h.name)
      for (const sub of ['fs', '.ovl', '.root', 'ssh', 'log', 'run', 'xenstored', 'sr-mount'])
        mkdirSync(join(d, sub), { recursive: true })
      // the upper dir's own directories override the machine's modes in the merged view: keep them
      for (const sub of ['etc', 'root', 'var'])
        mkdirSync(join(d, 'fs', sub), { mode: statSync(`/${sub}`).mode & 0o7777 })
      chmodSync(join(d, 'fs'), 0o755)
      for (const sub of ['etc', 'root', 'var']) chmodSync(join(d, 'fs', sub), statSync(`/${sub}`).mode & 0o7777)
      mkdirSync(join(d, 'fs', 'root', '.ssh'), { recursive: true, mode: 0o700 })
      jobs.push(keygen(join(d, 'ssh', 'ssh_host_ed25519_key'), `xenstack-lab-${plan.name}-${h.name}`))
    }
    await Promise.all(jobs)
    const adminPub = readFileSync(join(admin, 'id_ed25519.pub'), 'utf8')
    const etcHosts = [
      readFileSync('/etc/hosts', 'utf8').trimEnd(),
      `# xenstack lab ${plan.name}`,
      ...plan.hosts.flatMap((h) =>
        Object.entries(h.addresses).map(
          ([net, a]) => `${a!.split('/')[0]} ${net === 'management' ? h.name : `${h.name}-${net}`}`,
        ),
      ),
      '',
    ].join('\n')
    for (const h of plan.hosts) {
      const d = join(dir, 'hosts', h.name)
      const fs = join(d, 'fs')
      writeFileSync(join(d, 'ssh', 'sshd_config'), sshdConfig(h, d))
      writeFileSync(join(fs, 'root', '.ssh', 'authorized_keys'), adminPub, { mode: 0o600 })
      writeFileSync(join(fs, 'etc', 'hostname'), h.name + '\n')
      writeFileSync(join(fs, 'etc', 'hosts'), etcHosts)
      if (h.role === 'dom0') mkdirSync(join(fs, 'etc', 'xapi.d', 'plugins'), { recursive: true })
      mkdirSync(join(fs, 'var', 'lib', 'misc'), { recursive: true })
      // what the role has on a Fuel-deployed machine (a controller's nova.conf), before `seed` may change it
      for (const [path, text] of Object.entries(roleFiles(plan, h))) {
        mkdirSync(dirname(join(fs, path)), { recursive: true })
        writeFileSync(join(fs, path), text)
      }
      if (options.seed) await options.seed(h, { etc: join(fs, 'etc'), root: join(fs, 'root'), var: join(fs, 'var') })
    }
    lap('keys, dirs, configs')

    // -- namespaces and links ---------------------------------------------------------------------
    const rootBatch: string[] = [`netns add ${plan.switchNetns}`]
    for (const h of plan.hosts) rootBatch.push(`netns add ${h.netns}`)
    for (const h of plan.hosts) {
      rootBatch.push(`link add name ${h.admin.rootIf} type veth peer name adm0 netns ${h.netns}`)
      for (const l of h.links) {
        // each link is created once, from the host that owns the non-switch/non-dom0 end
        rootBatch.push(
          `link add name ${l.name} netns ${h.netns}${l.mac ? ` address ${l.mac}` : ''} type veth peer name ${l.peer.name} netns ${l.peer.netns}`,
        )
      }
    }
    await ipBatch(rootBatch, undefined, 'create namespaces and links')
    for (const h of plan.hosts) writeFileSync(`/proc/sys/net/ipv6/conf/${h.admin.rootIf}/disable_ipv6`, '1')
    const rootAddr = plan.hosts.flatMap((h) => [
      `addr add ${h.admin.rootAddress}/30 dev ${h.admin.rootIf}`,
      `link set ${h.admin.rootIf} up`,
    ])
    const perNs = new Map<string, string[]>()
    const ns = (n: string) => perNs.get(n) ?? (perNs.set(n, ['link set lo up']), perNs.get(n)!)
    ns(plan.switchNetns).push(
      'link add mgmt type bridge forward_delay 0 stp_state 0',
      'link add stor type bridge forward_delay 0 stp_state 0',
      'link set mgmt up',
      'link set stor up',
    )
    for (const h of plan.hosts) {
      const b = ns(h.netns)
      b.push(`addr add ${h.admin.hostAddress}/30 dev adm0`, 'link set adm0 up')
      for (const [br, addr] of Object.entries(h.bridges ?? {})) {
        b.push(`link add ${br} type bridge forward_delay 0 stp_state 0`)
        if (addr) b.push(`addr add ${addr} dev ${br}`)
        b.push(`link set ${br} up`)
      }
    }
    for (const h of plan.hosts) {
      for (const l of h.links) {
        const b = ns(h.netns)
        if (l.address) b.push(`addr add ${l.address} dev ${l.name}`)
        if (l.network === 'uplink') b.push(`link set ${l.name} master ${l.name === 'eth0' ? 'xenbr0' : 'xenbr1'}`)
        b.push(`link set ${l.name} up`)
        const p = ns(l.peer.netns)
        if (l.peer.bridge) p.push(`link set ${l.peer.name} master ${l.peer.bridge}`)
        p.push(`link set ${l.peer.name} up`)
      }
    }
    // bridges must exist before ports are enslaved: dom0 batches run after the compute/switch ones are
    // only needed for ordering within one namespace, which the push order above guarantees.
    await Promise.all([
      ipBatch(rootAddr, undefined, 'address the admin links'),
      ...[...perNs.entries()].map(([n, lines]) => ipBatch(orderBatch(lines), n, `configure ${n}`)),
    ])
    lap('namespaces, links, addresses')

    // -- holders: private mount + UTS namespaces, each with its own root ---------------------------
    // The root is an overlay of the machine's `/` (upper: the host's backing dir); the host's own /proc, /sys (this
    // network namespace's devices), /dev/shm, /run and /tmp; the host's dir and the lab's programs at their paths
    // (sshd's config and log, xenstore socket, the relays' scripts), the rest of the lab dir hidden by a tmpfs.
    // pivot_root (not chroot) makes it the mount namespace's root, so `nsenter -m` lands in it too.
    const holderScript = [
      'set -e',
      'h=$1; d=$2; bin=$3; lab=$4; r=$d/.root',
      'hostname "$h"',
      'mount -t overlay "xsl-$h-root" -o "lowerdir=/,upperdir=$d/fs,workdir=$d/.ovl" "$r"',
      'mount --rbind /dev "$r/dev"',
      'mount -t tmpfs -o mode=1777,size=64m "xsl-$h-shm" "$r/dev/shm"',
      'mount -t proc "xsl-$h-proc" "$r/proc"',
      'mount -t sysfs "xsl-$h-sys" "$r/sys"',
      'mount -t tmpfs -o mode=0755,size=16m "xsl-$h-run" "$r/run"',
      'mkdir -m 0755 "$r/run/sshd" "$r/run/xenstored" "$r/run/lock" "$r/run/sr-mount" "$r/run/.oldroot"',
      'mount -t tmpfs -o mode=1777 "xsl-$h-tmp" "$r/tmp"',
      'mkdir -p "$r$lab"',
      'mount -t tmpfs -o mode=0755,size=1m "xsl-$h-labdir" "$r$lab"',
      'mkdir -p "$r$d" "$r$bin"',
      'mount --bind "$d" "$r$d"',
      'mount --bind "$bin" "$r$bin"',
      'mount -o remount,bind,ro "$r$bin"',
      'mount --bind "$d/xenstored" "$r/run/xenstored"',
      // machine dirs hosts must see at the same path (xapi-sim's Python modules for dom0 plugins): an overlay's
      // lower layer is `/` alone, so a checkout on another mount or under /tmp would otherwise be missing
      'shift 4',
      'for p in "$@"; do mkdir -p "$r$p"; mount --bind "$p" "$r$p"; mount -o remount,bind,ro "$r$p"; done',
      'mount -t overlay "xsl-$h-bin" -o "lowerdir=$bin:/usr/local/bin" "$r/usr/local/bin"',
      'cd "$r"',
      'pivot_root . run/.oldroot',
      'cd /',
      'umount -l /run/.oldroot',
      'rmdir /run/.oldroot',
      ': > "$d/run/holder.ready"',
      'exec sleep infinity',
    ].join('\n')
    for (const h of plan.hosts) {
      const d = join(dir, 'hosts', h.name)
      state.pids[`${h.name}.holder`] = startDaemon(
        [
          'ip',
          'netns',
          'exec',
          h.netns,
          'unshare',
          '--mount',
          '--uts',
          '--propagation',
          'private',
          '--',
          '/bin/sh',
          '-c',
          holderScript,
          'xsl-holder',
          h.name,
          d,
          bin,
          dir,
          ...HOST_VISIBLE_DIRS,
        ],
        join(d, 'log', 'holder.log'),
      )
    }
    writeState(dir, state)
    await Promise.all(
      plan.hosts.map((h) =>
        waitFor(`${h.name}'s mount namespace (see ${join(dir, 'hosts', h.name, 'log', 'holder.log')})`, () => {
          if (!isAlive(state.pids[`${h.name}.holder`]))
            throw new Error(
              `${h.name}: the namespace holder exited: ${readTail(join(dir, 'hosts', h.name, 'log', 'holder.log'))}`,
            )
          return existsSync(join(dir, 'hosts', h.name, 'run', 'holder.ready'))
        }),
      ),
    )
    for (const h of this.hosts) h.holderPid = state.pids[`${h.name}.holder`]
    lap('holders (own root: overlay of /, own /proc /sys /run /tmp)')

    // -- daemons: sshd everywhere, dnsmasq on every dom0's HIMN, HTTP probe on controllers ----------
    for (const h of plan.hosts) {
      const d = join(dir, 'hosts', h.name)
      state.pids[`${h.name}.sshd`] = this.startOnHost(
        h.name,
        ['/usr/sbin/sshd', '-D', '-f', join(d, 'ssh', 'sshd_config'), '-E', join(d, 'log', 'sshd.log')],
        'sshd.out',
      )
      if (h.role === 'dom0') {
        state.pids[`${h.name}.dnsmasq`] = this.startOnHost(h.name, dnsmasqArgv(), 'dnsmasq.log')
      }
      if (h.role === 'compute') {
        // a compute VM forwards nothing until xenstack's rules say so
        await this.execOk(h.name, ['iptables', '-P', 'FORWARD', 'DROP'])
      }
      if (h.role === 'controller' && plan.httpProbePort !== false) {
        state.pids[`${h.name}.http-probe`] = this.startOnHost(
          h.name,
          [
            process.execPath,
            join(bin, 'lab-http-probe.mjs'),
            h.addresses.management!.split('/')[0],
            String(plan.httpProbePort),
            h.name,
            join(d, 'run', 'http-probe.ready'),
          ],
          'http-probe.log',
        )
      }
    }
    writeState(dir, state)
    await Promise.all([
      ...plan.hosts.map((h) =>
        waitFor(`sshd on ${h.name} (${h.admin.hostAddress}:22)`, () => tcpOpen(h.admin.hostAddress, 22)),
      ),
      ...plan.hosts
        .filter((h) => h.role === 'controller' && plan.httpProbePort !== false)
        .map((h) =>
          waitFor(`the HTTP probe on ${h.name}`, () =>
            existsSync(join(dir, 'hosts', h.name, 'run', 'http-probe.ready')),
          ),
        ),
      ...plan.hosts
        .filter((h) => h.role === 'dom0')
        .map((h) =>
          waitFor(`dnsmasq on ${h.name}`, async () => {
            const r = await run(['ip', 'netns', 'exec', h.netns, 'ss', '-Hlnu', 'sport = :67'])
            return r.stdout.trim() !== ''
          }),
        ),
    ])
    lap('sshd, dnsmasq, http probe')

    // -- ssh client side: known_hosts and ssh_config for xenstack ---------------------------------
    const known: string[] = []
    const cfg: string[] = [`# ssh -F ${join(admin, 'ssh_config')} root@<host>  (lab ${plan.name})`]
    for (const h of plan.hosts) {
      const pub = readFileSync(join(dir, 'hosts', h.name, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
        .split(' ')
        .slice(0, 2)
        .join(' ')
      known.push(`${h.admin.hostAddress} ${pub}`)
      cfg.push(`Host ${h.name}`, `  HostName ${h.admin.hostAddress}`, `  HostKeyAlias ${h.admin.hostAddress}`)
    }
    writeFileSync(join(admin, 'known_hosts'), known.join('\n') + '\n')
    cfg.push(
      'Host *',
      '  User root',
      `  IdentityFile ${join(admin, 'id_ed25519')}`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${join(admin, 'known_hosts')}`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      '  ConnectTimeout 5',
      '  LogLevel ERROR',
      '  KexAlgorithms curve25519-sha256,sntrup761x25519-sha512@openssh.com',
      '',
    )
    writeFileSync(join(admin, 'ssh_config'), cfg.join('\n'))
    lap('ssh client config')

    // -- xenstore for the compute hosts' guest tools ----------------------------------------------
    for (const h of plan.hosts.filter((x) => x.role === 'compute')) {
      const x = new XenstoreDomain(COMPUTE_DOMID, h.name)
      await x.listen(join(dir, 'hosts', h.name, 'xenstored', 'socket'))
      this.xenstores.set(h.name, x)
    }
  }
}

/** `await withLab(options, async lab => …)`: the lab is up inside the callback and down after it, whatever happens. */
export async function withLab<T>(options: LabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await Lab.up(options)
  try {
    return await fn(lab)
  } finally {
    await lab.down()
  }
}

// --- preflight -----------------------------------------------------------------------------------

/** Throws one clear line naming what is missing to build a lab (root, capabilities, kernel features, tools). */
export async function preflight(): Promise<void> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    throw new Error('the lab needs root (network namespaces, veth links, overlay mounts): run it as root')
  const caps = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'
  const eff = BigInt('0x' + caps)
  for (const [bit, cap] of [
    [21n, 'CAP_SYS_ADMIN'],
    [12n, 'CAP_NET_ADMIN'],
  ] as const)
    if (!((eff >> bit) & 1n)) throw new Error(`the lab needs ${cap} (an unprivileged container will not do)`)
  if (!/\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8')))
    throw new Error('the lab needs the kernel overlay filesystem (modprobe overlay)')
  const missing: string[] = []
  for (const [tool, pkg] of [
    ['/usr/sbin/sshd', 'openssh-server'],
    ['/usr/bin/ssh-keygen', 'openssh-client'],
    ['/usr/sbin/dnsmasq', 'dnsmasq-base'],
    ['/usr/bin/nsenter', 'util-linux'],
    ['/usr/bin/unshare', 'util-linux'],
    ['/usr/sbin/iptables', 'iptables'],
    ['/usr/bin/python3', 'python3'],
  ] as const)
    if (!existsSync(tool)) missing.push(`${tool} (${pkg})`)
  if ((await run(['ip', '-V']).catch(() => ({ code: 1 }))).code !== 0) missing.push('ip (iproute2)')
  if (missing.length) throw new Error(`the lab needs ${missing.join(', ')}: run ./scripts/setup.sh`)
}

// --- teardown ------------------------------------------------------------------------------------

async function listNetns(): Promise<string[]> {
  try {
    return await readdir('/run/netns')
  } catch {
    return []
  }
}

/** Kills every process in the lab's namespaces, deletes them and the root links, frees the slot, removes the dir. */
export async function destroyLabDir(dir: string, opts: { name?: string; skipPid?: number } = {}): Promise<void> {
  const state = readState(dir)
  const name = state?.name ?? opts.name
  const prefix = name ? netnsPrefix(name) + '-' : undefined
  // the supervisor (not in any lab namespace) first: it takes its lab down itself on SIGTERM
  const sup = state?.supervisorPid
  if (sup && sup !== opts.skipPid && isAlive(sup) && (cmdline(sup) ?? '').includes('supervisor')) {
    try {
      process.kill(sup, 'SIGTERM')
    } catch {
      // gone
    }
    await waitFor('the lab supervisor to exit', () => !isAlive(sup), 15000).catch(() => {
      try {
        process.kill(sup, 'SIGKILL')
      } catch {
        // gone
      }
    })
  }
  const existing = await listNetns()
  const namespaces = new Set<string>([
    ...(state?.netns ?? []).filter((n) => existing.includes(n)),
    ...(prefix ? existing.filter((n) => n.startsWith(prefix)) : []),
  ])
  // every process whose network namespace is one of the lab's (holders, sshd and its sessions, dnsmasq, services,
  // whatever tests started there): one scan of /proc comparing namespace inodes, no process spawned per poll
  const inodes = new Set<number>()
  for (const n of namespaces) {
    try {
      inodes.add(statSync(`/run/netns/${n}`).ino)
    } catch {
      // already gone
    }
  }
  const labPids = () => {
    const out: number[] = []
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue
      const pid = Number(e)
      if (pid === process.pid || pid === opts.skipPid) continue
      try {
        const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${e}/ns/net`))
        if (m && inodes.has(Number(m[1]))) out.push(pid)
      } catch {
        // gone, or a kernel thread
      }
    }
    return out
  }
  // A process leaves the namespace scan early in its exit (the kernel drops its namespaces before it is gone, and
  // the last member of a host's mount namespace then unmounts that host's whole tree, which takes seconds on a
  // busy machine): so every process signalled is remembered by pid and start time (against pid reuse) and waited
  // for until it is gone or a zombie; one that outlives SIGKILL by LAB_EXIT_WAIT_MS is named in an error.
  const signalled = new Map<number, string | undefined>()
  const signalAll = (pids: number[], sig: NodeJS.Signals) => {
    for (const p of pids) {
      if (!signalled.has(p)) signalled.set(p, procStat(p)?.startTime)
      try {
        process.kill(p, sig)
      } catch {
        // gone
      }
    }
  }
  let pids = inodes.size ? labPids() : []
  if (pids.length) {
    signalAll(pids, 'SIGTERM')
    const end = Date.now() + 1000
    while ((pids = labPids()).length && Date.now() < end) await sleep(20)
    if (pids.length) {
      signalAll(pids, 'SIGKILL')
      const end2 = Date.now() + 2000
      while ((pids = labPids()).length && Date.now() < end2) await sleep(20)
      signalAll(pids, 'SIGKILL') // what was started meanwhile
    }
  }
  const living = () =>
    [...signalled]
      .filter(([p, start]) => {
        const stat = procStat(p)
        return stat !== undefined && stat.state !== 'Z' && stat.startTime === start
      })
      .map(([p]) => p)
  const end3 = Date.now() + LAB_EXIT_WAIT_MS
  while (living().length && Date.now() < end3) await sleep(20)
  const survivors = living()
  if (survivors.length)
    throw new Error(
      `lab ${name ?? dir}: ${survivors.length} process(es) still exist ${LAB_EXIT_WAIT_MS / 1000} s after SIGKILL ` +
        `(uninterruptible?): ${survivors.map((p) => `${p} ${(cmdline(p) ?? '?').slice(0, 80)}`).join('; ')}; ` +
        `run 'xenstack lab down --name ${name ?? '<name>'}' again once they are gone`,
    )
  for (const n of namespaces) {
    const r = await run(['ip', 'netns', 'del', n])
    if (r.code !== 0 && existsSync(`/run/netns/${n}`))
      throw new Error(`cannot delete network namespace ${n}: ${r.stderr.trim()}`)
  }
  for (const l of state?.rootLinks ?? []) {
    if (existsSync(`/sys/class/net/${l}`)) await run(['ip', 'link', 'del', l])
  }
  // the lab's mounts on the machine (recorded, and any other under its dir after a crash), deepest first
  const mounted = mountPointsUnder(dir)
  for (const m of [...new Set([...(state?.mounts ?? []).filter((x) => mounted.includes(x)), ...mounted])].sort(
    (a, b) => b.length - a.length,
  )) {
    const r = await run(['umount', '-l', m])
    if (r.code !== 0 && mountPointsUnder(dir).includes(m))
      throw new Error(`cannot unmount ${m} (lab ${name ?? dir}): ${r.stderr.trim()}`)
  }
  if (state) releaseSlot(join(dir, '..'), state.slot, state.name)
  rmSync(dir, { recursive: true, force: true })
}

/** How long `lab down` waits for killed processes to finish exiting before it names them in an error. */
const LAB_EXIT_WAIT_MS = 30_000

/** Mount points in this process's mount namespace at or under `dir` (mountinfo's octal escapes decoded). */
function mountPointsUnder(dir: string): string[] {
  const out: string[] = []
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4]
    if (!mp) continue
    const path = mp.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
    if (path === dir || path.startsWith(dir + '/')) out.push(path)
  }
  return out
}

// --- slots: one 198.18.<slot>.0/24 admin range per running lab ------------------------------------

function allocateSlot(root: string, name: string): number {
  const slots = join(root, '.slots')
  mkdirSync(slots, { recursive: true })
  // stable first guess per name, so a lab tends to keep its addresses
  const first =
    SLOT_MIN + (parseInt(createHash('sha1').update(name).digest('hex').slice(0, 6), 16) % (SLOT_MAX - SLOT_MIN + 1))
  for (let k = 0; k <= SLOT_MAX - SLOT_MIN; k++) {
    const slot = SLOT_MIN + ((first - SLOT_MIN + k) % (SLOT_MAX - SLOT_MIN + 1))
    const file = join(slots, String(slot))
    if (existsSync(file)) {
      // reclaim a slot whose lab is gone
      const owner = readFileSync(file, 'utf8').trim()
      // a lab between taking its slot and writing its state looks the same: only reclaim old claims
      const old = Date.now() - statSync(file).mtimeMs > 60_000
      if (old && !existsSync(join(root, owner, 'state.json')) && !existsSync(`/sys/class/net/xl${slot}h0`)) {
        try {
          unlinkSync(file)
        } catch {
          continue
        }
      } else continue
    }
    if (existsSync(`/sys/class/net/xl${slot}h0`)) continue
    try {
      const fd = openSync(file, 'wx')
      writeFileSync(fd, name)
      closeSync(fd)
      return slot
    } catch {
      continue
    }
  }
  throw new Error(`no free lab slot: ${SLOT_MAX - SLOT_MIN + 1} labs are running (see ${slots})`)
}

function releaseSlot(root: string, slot: number, name: string): void {
  const file = join(root, '.slots', String(slot))
  try {
    if (readFileSync(file, 'utf8').trim() === name) unlinkSync(file)
  } catch {
    // already free
  }
}

// --- helpers -------------------------------------------------------------------------------------

export function readState(dir: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState
  } catch {
    return undefined
  }
}

export function writeState(dir: string, state: LabState): void {
  const tmp = join(dir, 'state.json.tmp')
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n')
  // rename is atomic: a crash leaves the old or the new state, never half of one
  renameSync(tmp, join(dir, 'state.json'))
}

function stripFunctions(o: LabOptions): LabEnvironment {
  // the simulator's password never goes into state
  const { hosts, controllers, storageNode, networks, httpProbePort, services } = o
  return JSON.parse(
    JSON.stringify({ hosts, controllers, storageNode, networks, httpProbePort, services }),
  ) as LabEnvironment
}

async function ipBatch(lines: string[], netns: string | undefined, what: string): Promise<void> {
  if (!lines.length) return
  const argv = ['ip', ...(netns ? ['-n', netns] : []), '-batch', '-']
  await runOk(argv, { stdin: lines.join('\n') + '\n' }, what)
}

/** Within one namespace: create links and bridges before enslaving and addressing. */
function orderBatch(lines: string[]): string[] {
  const rank = (l: string) => (l.startsWith('link add') ? 0 : l.includes(' master ') ? 1 : l.startsWith('addr') ? 2 : 3)
  return [...lines].sort((a, b) => rank(a) - rank(b))
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 500 })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
    s.once('timeout', () => {
      s.destroy()
      resolve(false)
    })
  })
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ')
  } catch {
    return '(no log)'
  }
}

function sshdConfig(h: LabHostPlan, d: string): string {
  return [
    `# lab host ${h.name}: its own config, host key, pid file and log (the machine's /etc/ssh is not used)`,
    'Port 22',
    'ListenAddress 0.0.0.0',
    `HostKey ${join(d, 'ssh', 'ssh_host_ed25519_key')}`,
    'PidFile /run/sshd.pid',
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'AuthorizedKeysFile .ssh/authorized_keys',
    // root's password is locked on this machine: with UsePAM no, sshd refuses even key logins for root
    'UsePAM yes',
    'UseDNS no',
    'PrintMotd no',
    'LogLevel VERBOSE',
    'AcceptEnv LANG LC_*',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n')
}

function dnsmasqArgv(): string[] {
  // like XAPI's HIMN: other_config ip_begin=169.254.0.1 ip_end=169.254.255.254 netmask=255.255.0.0; no DNS
  return [
    '/usr/sbin/dnsmasq',
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--port=0',
    `--interface=${HIMN.bridge}`,
    '--bind-dynamic',
    '--dhcp-authoritative',
    // no ICMP probe of an address before offering it (seconds per lease); the lab's HIMN has no strangers
    '--no-ping',
    `--dhcp-range=${HIMN.rangeStart},${HIMN.rangeEnd},255.255.0.0,12h`,
    '--dhcp-option=3',
    '--dhcp-option=6',
    '--dhcp-leasefile=/var/lib/misc/dnsmasq.xenapi.leases',
    '--pid-file=/run/dnsmasq.xenapi.pid',
    '--log-dhcp',
    '--log-facility=-',
  ]
}

/** Small programs installed into every host's /usr/local/bin (read-only overlay) and used by the lab itself. */
function writeHelpers(bin: string): void {
  for (const [f, text] of Object.entries(HOST_PROGRAMS)) writeFileSync(join(bin, f), text, { mode: 0o755 })
}
