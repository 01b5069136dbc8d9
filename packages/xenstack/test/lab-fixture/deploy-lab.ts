// The lab-backed deployment tests' one environment and what they read back from it.
//
// `upDeployLab` brings up the default two-host lab environment (two XenServer hosts of one simulated pool, each a
// dom0 + a compute VM; a controller running a real Glance, with the /etc/nova/nova.conf a Fuel controller has —
// lab/controller-role.ts; a storage node) on real prefixes (not /24s: routes and NAT must follow them), and registers
// it as `xenstack lab up` registers it. `captureEndState` reads the lab's observable state after a deployment as text
// per item, so that two moments can be compared; the `assert…` functions check what a successful deployment makes,
// once (the facts integration/lab-deploy.test.ts proves after a clean deploy).
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { requirePrerequisite } from '@xenstack/testkit'
import { Lab, autoLabName, preflight, type LabOptions } from '../../src/lab/index.js'
import '../../src/integration/lab-services.js'
import { describeLab } from '../../src/lab/supervisor.js'
import { registerLabEnvironment } from '../../src/lab/environment.js'
import { glanceInstalled } from '../../src/glance/server-config.js'
import type { GlanceEndpoint } from '../../src/lab/glance-service.js'
import { StateStore } from '../../src/state/store.js'
import { Sweep, needlesOf } from '../reliability/secrets-sweep.js'

/** The lab's networks: the routes dom0 gets and the NAT the compute VMs do are for these prefixes. */
export const DEPLOY_LAB_NETWORKS = { management: { cidr: '192.168.0.0/22' }, storage: { cidr: '192.168.8.0/25' } }
/** The lab's XenServer hosts and their compute VMs, in pairs. */
export const XENSERVER_HOSTS = [
  { dom0: 'dom0-1', compute: 'compute-1' },
  { dom0: 'dom0-2', compute: 'compute-2' },
]

/** The lab (root, namespaces), Glance for the controller and qemu-img for the TestVM; more when asked. */
export async function requireDeployLab(t: TestContext, also: [name: string, holds: () => boolean][] = []) {
  let missing: string | undefined
  await preflight().catch((e: Error) => (missing = e.message))
  const needs: [string, () => boolean][] = [
    [missing ?? 'lab', () => missing === undefined],
    ['python3-glance (Glance on the lab controller)', () => glanceInstalled()],
    ['qemu-img (the TestVM image)', () => existsSync('/usr/bin/qemu-img')],
    ...also,
  ]
  for (const [name, holds] of needs) if (!requirePrerequisite(t, name, holds)) return false
  return true
}

/**
 * SQLite for this test and every CLI it runs (DATABASE_URL emptied until the test ends): for a test that reads the
 * database file itself, and keeps a long lab test out of the runner's PostgreSQL pass.
 */
export function useSqliteOnly(t: TestContext): void {
  const databaseUrl = process.env.DATABASE_URL
  process.env.DATABASE_URL = ''
  t.after(() => {
    if (databaseUrl === undefined) delete process.env.DATABASE_URL
    else process.env.DATABASE_URL = databaseUrl
  })
}

export interface DeployLab {
  lab: Lab
  /** The environment's name (the lab's), registered in `home`. */
  env: string
  /** The simulated pool's root password (the XenServer password of the environment). */
  password: string
  glance: GlanceEndpoint
  upMs: number
}

/** Brings the lab up and registers its environment in the data dir `home`; the caller takes it down (`lab.down()`). */
export async function upDeployLab(home: string, opts: Pick<LabOptions, 'seed' | 'log'> = {}): Promise<DeployLab> {
  const t0 = performance.now()
  const lab = await Lab.up({
    name: autoLabName(),
    hosts: 2,
    networks: DEPLOY_LAB_NETWORKS,
    simulator: true,
    services: [{ kind: 'glance' }],
    ...opts,
  })
  const upMs = Math.round(performance.now() - t0)
  try {
    const password = lab.simulator!.password
    const desc = describeLab(lab, 0)
    const env = registerLabEnvironment(desc, password, desc.refs, { dataDir: home })
    const glance = lab.services.find((s) => s.kind === 'glance') as GlanceEndpoint
    return { lab, env, password, glance, upMs }
  } catch (e) {
    await lab.down()
    throw e
  }
}

/** `<node>/<task>: <resource>` of every resource a deployment changed (the engine's tables, on either backend). */
export function changedResources(home: string, deployment: number): string[] {
  const state = StateStore.open({ dataDir: home })
  try {
    const rows = state.db
      .prepare('SELECT node, task, changes_json FROM engine_tasks WHERE deployment_id = ? AND changes_json IS NOT NULL')
      .all(deployment) as { node: string; task: string; changes_json: string }[]
    return rows.flatMap((r) =>
      (JSON.parse(r.changes_json) as { resource: string; result: string; diff?: string }[])
        .filter((c) => c.result === 'changed')
        .map((c) => `${r.node}/${r.task}: ${c.resource}${c.diff ? ` (${c.diff.slice(0, 300)})` : ''}`),
    )
  } finally {
    state.close()
  }
}

/** Every file under `dir` holding `text` as it is (not encoded). */
export function filesContaining(dir: string, text: string): string[] {
  const sweep = new Sweep(needlesOf({ what: 'text', value: text }).filter((n) => n.encoding === 'plain'))
  sweep.files('file', dir)
  return sweep.findings.map((f) => f.place.replace(/^file: /, ''))
}

export type EndState = Record<string, string>

/**
 * The lab's observable state after a deployment, as text per item: each dom0's routes, crontab and plugin files
 * (mode, size, modification time, content hash); each compute VM's iptables (packet counters removed), ip_forward,
 * nova config (hashed: it holds the XenServer password) and xenstore key; the controller's nova.conf (hashed);
 * Glance's TestVM; in the simulator each compute VM's VIFs, xenstore data and power state, each host's other_config
 * and the pool's VIF and network counts.
 */
export async function captureEndState(lab: Lab): Promise<EndState> {
  const out: EndState = {}
  const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16)
  for (const { dom0 } of XENSERVER_HOSTS) {
    out[`${dom0} routes`] = (await lab.execOk(dom0, ['ip', '-4', 'route', 'show'])).stdout
    out[`${dom0} crontab`] = (await lab.execOk(dom0, ['crontab', '-l'])).stdout
    out[`${dom0} plugins`] = (
      await lab.execOk(dom0, [
        'sh',
        '-c',
        'cd /etc/xapi.d/plugins && for f in *; do echo "$(stat -c "%n %a %s %Y" "$f") $(sha256sum < "$f")"; done',
      ])
    ).stdout
  }
  for (const { compute } of XENSERVER_HOSTS) {
    out[`${compute} iptables`] = (await lab.execOk(compute, ['iptables-save'])).stdout
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/g, ''))
      .join('\n')
    out[`${compute} ip_forward`] = (await lab.execOk(compute, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout
    const conf = await lab.exec(compute, [
      'sh',
      '-c',
      'cat /etc/nova/nova-compute.conf /etc/nova/nova.conf 2>/dev/null',
    ])
    out[`${compute} nova config (sha256)`] = hash(conf.stdout)
    out[`${compute} xenstore himn_mac`] = (await lab.exec(compute, ['xenstore-read', 'vm-data/himn_mac'])).stdout
  }
  out['controller-1 nova.conf (sha256)'] = hash(
    (await lab.execOk('controller-1', ['cat', '/etc/nova/nova.conf'])).stdout,
  )
  const glance = lab.services.find((s) => s.kind === 'glance') as GlanceEndpoint
  const images = (
    (await (await fetch(`${glance.adminUrl}/v2/images?name=TestVM`)).json()) as {
      images: { id: string; checksum: string; status: string; visibility: string }[]
    }
  ).images
  out['glance TestVM'] = JSON.stringify(images.map((i) => [i.id, i.checksum, i.status, i.visibility]))
  const sim = lab.simulator!.sim
  const himn = himnOf(lab)
  for (const { compute } of XENSERVER_HOSTS) {
    const vm = sim.db.get(lab.simulator!.refs.get(compute)!)!
    const vifs = (vm.VIFs as string[]).map((r) => sim.db.get(r)!)
    out[`${compute} VIFs`] = JSON.stringify(
      vifs.map((v) => [v.device, v.network === himn ? 'himn' : v.network, v.currently_attached, v.MAC]).sort(),
    )
    out[`${compute} xenstore_data`] = JSON.stringify(Object.entries(vm.xenstore_data as object).sort())
    out[`${compute} power`] = String(vm.power_state)
  }
  for (const { dom0 } of XENSERVER_HOSTS) {
    const h = sim.db.get(lab.simulator!.refs.get(dom0)!)!
    out[`${dom0} other_config`] = JSON.stringify(Object.entries(h.other_config as object).sort())
  }
  out['VIFs in the pool'] = String(sim.db.count('VIF'))
  out['networks in the pool'] = String(sim.db.count('network'))
  return out
}

/** The simulated pool's host-internal management network (its ref). */
function himnOf(lab: Lab): string | undefined {
  return lab.simulator!.sim.db.find(
    'network',
    (r) => (r.other_config as Record<string, string>)?.is_host_internal_management_network === 'true',
  )
}

/** Each dom0 has one route to each lab network, via the HIMN (169.254.0.0/16), and no other route via it. */
export function assertDom0Routes(state: EndState): void {
  for (const { dom0 } of XENSERVER_HOSTS) {
    const routes = state[`${dom0} routes`].split('\n')
    for (const { cidr } of Object.values(DEPLOY_LAB_NETWORKS)) {
      const to = routes.filter((l) => l.startsWith(cidr + ' '))
      assert.equal(to.length, 1, `${dom0}: one route to ${cidr}:\n${routes.join('\n')}`)
      assert.match(to[0], /via 169\.254\./, `${dom0}: the route to ${cidr} goes through the HIMN`)
    }
    const viaHimn = routes.filter((l) => / via 169\.254\./.test(l))
    assert.equal(viaHimn.length, 2, `${dom0}: the two routes, once each:\n${routes.join('\n')}`)
  }
}

/** Each compute VM forwards, masquerades on the management and storage interfaces, and has no rule twice. */
export function assertComputeNat(state: EndState): void {
  for (const { compute } of XENSERVER_HOSTS) {
    const rules = state[`${compute} iptables`].split('\n')
    const masq = rules.filter((l) => /-j MASQUERADE/.test(l))
    assert.equal(new Set(masq).size, masq.length, `${compute}: no MASQUERADE rule twice:\n${masq.join('\n')}`)
    assert.ok(masq.length >= 2, `${compute}: MASQUERADE on the management and storage interfaces`)
    const fwd = rules.filter((l) => l.startsWith('-A FORWARD'))
    assert.equal(new Set(fwd).size, fwd.length, `${compute}: no FORWARD rule twice`)
    assert.equal(state[`${compute} ip_forward`].trim(), '1', `${compute}: ip_forward`)
  }
}

/**
 * Each compute VM has one attached VIF on the HIMN, its MAC in the VM's xenstore data (vm-data/himn_mac) and the
 * guest reads the same from its xenstore.
 */
export function assertHimnVifs(state: EndState): void {
  for (const { compute } of XENSERVER_HOSTS) {
    const onHimn = (JSON.parse(state[`${compute} VIFs`]) as [string, string, boolean, string][]).filter(
      (v) => v[1] === 'himn',
    )
    assert.equal(onHimn.length, 1, `${compute}: one VIF on the HIMN`)
    const [, , attached, mac] = onHimn[0]
    assert.equal(attached, true, `${compute}: the HIMN VIF is attached`)
    const xsd = Object.fromEntries(JSON.parse(state[`${compute} xenstore_data`]) as [string, string][])
    assert.equal(xsd['vm-data/himn_mac'], mac, `${compute}: vm-data/himn_mac in the VM's xenstore data`)
    assert.equal(state[`${compute} xenstore himn_mac`].trim(), mac, `${compute}: the guest reads vm-data/himn_mac`)
  }
}

/** What a successful deployment makes, once: routes, NAT, HIMN VIFs, the dom0 plugins and one active TestVM. */
export function assertDeployed(state: EndState): void {
  assertDom0Routes(state)
  assertComputeNat(state)
  assertHimnVifs(state)
  for (const { dom0 } of XENSERVER_HOSTS)
    assert.match(state[`${dom0} plugins`], /^dom0_plugin_version\.py /m, `${dom0}: the version plugin is installed`)
  const images = JSON.parse(state['glance TestVM']) as string[][]
  assert.equal(images.length, 1, `one TestVM in Glance: ${state['glance TestVM']}`)
  assert.equal(images[0][2], 'active')
}

/**
 * Real traffic: each dom0 reaches the controller's HTTP probe, and the controller sees the compute VM's management
 * address (the request went through the compute VM's MASQUERADE).
 */
export async function assertDom0ReachesController(lab: Lab): Promise<void> {
  for (const { dom0, compute } of XENSERVER_HOSTS) {
    const r = await lab.execOk(dom0, ['curl', '-sS', '-m', '10', lab.httpProbeUrl('controller-1')])
    const answer = JSON.parse(r.stdout) as { host: string; client: string }
    assert.equal(answer.host, 'controller-1')
    assert.equal(answer.client, lab.host(compute).addresses.management!.split('/')[0], `${dom0} through ${compute}`)
  }
}

/** The lab's log directories (sshd, services) of every host. */
export const labLogDirs = (lab: Lab): string[] => lab.hosts.map((h) => join(lab.hostDir(h.name), 'log'))
