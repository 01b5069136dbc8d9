// Issue 9.11, the proof on the lab: the default two-host lab environment (two XenServer hosts of one simulated
// pool, each a dom0 + a compute VM; a controller running a real Glance; a storage node) registered as `lab up`
// registers it, deployed with `xenstack deploy` through the CLI, then the real effects checked on the lab's hosts
// and in the simulator. One lab for the whole file.
//
// The lab's controller has the /etc/nova/nova.conf a Fuel-deployed controller has (lab/controller-role.ts; xenstack's
// release does not install nova itself); the XenServer plugin's controller task changes that file, as the original did.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { connect, type Xapi } from '@xenstack/xenapi'
import { Lab, autoLabName, preflight } from '../../src/lab/index.js'
import '../../src/integration/lab-services.js'
import { describeLab } from '../../src/lab/supervisor.js'
import { registerLabEnvironment } from '../../src/lab/environment.js'
import { glanceInstalled } from '../../src/glance/server-config.js'
import { StateStore } from '../../src/state/store.js'
import type { GlanceEndpoint } from '../../src/lab/glance-service.js'
import { buildTestVm } from '../../src/integration/image/testvm.js'
import { parseIni } from '../../src/health/xenserver/ini-check.js'

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
const tmp = scratchDirs()

interface CliRun {
  code: number
  stdout: string
  stderr: string
  json?: any
}

function xenstack(home: string, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, XENSTACK_HOME: home }, maxBuffer: 64 << 20, timeout: 600_000 },
      (e, stdout, stderr) => {
        const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0
        // --json prints one JSON object (possibly over several lines) on stdout
        let json: any
        try {
          json = JSON.parse(stdout.slice(stdout.indexOf('{')))
        } catch {
          json = undefined
        }
        resolve({ code, stdout, stderr, json })
      },
    )
  })
}

/** Every file under `dir` (recursively) whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    let entries: string[]
    try {
      entries = readdirSync(d)
    } catch {
      return
    }
    for (const e of entries) {
      const p = join(d, e)
      let st
      try {
        st = statSync(p)
      } catch {
        continue
      }
      if (st.isDirectory()) walk(p)
      else if (st.isFile() && readFileSync(p).includes(needle)) out.push(p)
    }
  }
  walk(dir)
  return out
}

/** `a.b.c.d/p` of an interface address → its network `w.x.y.z/p` (the route dom0 needs). */
function networkOf(address: string): string {
  const [ip, p] = address.split('/')
  const n = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0)
  const size = 2 ** (32 - Number(p))
  const net = n - (n % size)
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${p}`
}

/** `<node>/<task>: <resource>` of every resource a deployment changed (from the engine's tables). */
function changedResources(home: string, deployment: number): string[] {
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

const PRE_EXISTING_CRON = '17 3 * * * /usr/local/bin/site-backup --quiet'

test('lab deploy: the default two-host lab environment deploys with xenstack deploy and its effects are real', async (t) => {
  let missing: string | undefined
  await preflight().catch((e: Error) => (missing = e.message))
  if (!requirePrerequisite(t, missing ?? 'lab', () => missing === undefined)) return
  if (!requirePrerequisite(t, 'python3-glance (Glance on the lab controller)', () => glanceInstalled())) return
  if (!requirePrerequisite(t, 'qemu-img (the TestVM image)', () => existsSync('/usr/bin/qemu-img'))) return

  const home = tmp('xenstack-lab-deploy-')
  const tUp = performance.now()
  const lab = await Lab.up({
    name: autoLabName(),
    hosts: 2,
    // real prefixes, not /24s: the routes and NAT must follow them
    networks: { management: { cidr: '192.168.0.0/22' }, storage: { cidr: '192.168.8.0/25' } },
    simulator: true,
    services: [{ kind: 'glance' }],
  })
  t.diagnostic(`lab up with Glance: ${Math.round(performance.now() - tUp)} ms`)
  const password = lab.simulator!.password
  const runs: CliRun[] = []
  let xapi: Xapi | undefined
  try {
    // an operator's own cron entry on dom0, which the deployment must keep
    await lab.execOk('dom0-1', ['crontab', '-'], { stdin: PRE_EXISTING_CRON + '\n' })
    const desc = describeLab(lab, 0)
    const env = registerLabEnvironment(desc, password, desc.refs, { dataDir: home })
    xapi = await connect({ url: lab.simulator!.url, username: 'root', password })
    const sim = lab.simulator!.sim
    const glance = lab.services.find((s) => s.kind === 'glance') as GlanceEndpoint

    const tfirst = performance.now()
    const first = await xenstack(home, 'deploy', env, '--json')
    t.diagnostic(`first deploy: ${Math.round(performance.now() - tfirst)} ms`)
    runs.push(first)
    assert.equal(first.code, 0, `deploy failed:\n${first.stdout.slice(-4000)}\n${first.stderr.slice(-2000)}`)
    assert.equal(first.json?.status, 'ready')
    assert.ok(first.json.changes > 0)

    const mgmt = networkOf(lab.host('compute-1').addresses.management!)
    const storage = networkOf(lab.host('compute-1').addresses.storage!)

    await t.test('dom0 reaches the controller through the compute VM NAT with real traffic', async () => {
      for (const [dom0, compute] of [
        ['dom0-1', 'compute-1'],
        ['dom0-2', 'compute-2'],
      ]) {
        const r = await lab.execOk(dom0, ['curl', '-sS', '-m', '10', lab.httpProbeUrl('controller-1')])
        const answer = JSON.parse(r.stdout) as { host: string; client: string }
        assert.equal(answer.host, 'controller-1')
        // the controller sees the compute VM's management address: the request went through its MASQUERADE
        assert.equal(answer.client, lab.host(compute).addresses.management!.split('/')[0])
      }
    })

    await t.test('routes in dom0 and the NAT rules in the compute VM exist once, for the real CIDRs', async () => {
      for (const [dom0, compute] of [
        ['dom0-1', 'compute-1'],
        ['dom0-2', 'compute-2'],
      ]) {
        const routes = (await lab.execOk(dom0, ['ip', '-4', 'route', 'show'])).stdout.split('\n')
        for (const cidr of [mgmt, storage]) {
          assert.equal(routes.filter((l) => l.startsWith(cidr + ' ')).length, 1, `${dom0}: one route to ${cidr}`)
          assert.match(
            routes.find((l) => l.startsWith(cidr + ' '))!,
            /via 169\.254\./,
          )
        }
        const rules = (await lab.execOk(compute, ['iptables-save'])).stdout.split('\n')
        const masq = rules.filter((l) => /-j MASQUERADE/.test(l))
        assert.equal(new Set(masq).size, masq.length, `${compute}: no MASQUERADE rule twice:\n${masq.join('\n')}`)
        assert.ok(masq.length >= 2, `${compute}: MASQUERADE on the management and storage interfaces`)
        const fwd = rules.filter((l) => l.startsWith('-A FORWARD'))
        assert.equal(new Set(fwd).size, fwd.length, `${compute}: no FORWARD rule twice`)
        const ipf = await lab.execOk(compute, ['cat', '/proc/sys/net/ipv4/ip_forward'])
        assert.equal(ipf.stdout.trim(), '1')
      }
    })

    await t.test("root's crontab on dom0 keeps the operator's entry next to the deployment's", async () => {
      const cron = (await lab.execOk('dom0-1', ['crontab', '-l'])).stdout
      assert.ok(cron.includes(PRE_EXISTING_CRON), cron)
      assert.ok(cron.split('\n').filter((l) => l.trim() && !l.startsWith('#')).length >= 2, cron)
    })

    await t.test("the controller's nova.conf shares console tokens through keystone's memcached", async () => {
      // the lab controller's nova.conf is a Fuel controller's; the plugin's controller task added the cache keys
      const conf = (await lab.execOk('controller-1', ['cat', '/etc/nova/nova.conf'])).stdout
      const servers = `${lab.host('controller-1').addresses.management!.split('/')[0]}:11211`
      const ini = parseIni(conf)
      assert.deepEqual(ini.errors, [], conf)
      const get = (section: string, key: string) => ini.sections.get(section)?.get(key)
      assert.equal(get('keystone_authtoken', 'memcached_servers'), servers, conf)
      assert.equal(get('cache', 'enabled'), 'True', conf)
      assert.equal(get('cache', 'memcache_servers'), servers, conf)
      assert.ok(get('DEFAULT', 'my_ip'), 'the rest of the file is kept')
    })

    await t.test('each compute VM has its HIMN VIF and vm-data/himn_mac in the simulator', async () => {
      const himn = sim.db.find(
        'network',
        (r) => (r.other_config as Record<string, string>)?.is_host_internal_management_network === 'true',
      )
      assert.ok(himn, 'the simulator has the HIMN')
      for (const compute of ['compute-1', 'compute-2']) {
        const vm = lab.simulator!.refs.get(compute)!
        const vifs = (sim.db.get(vm)!.VIFs as string[]).map((r) => sim.db.get(r)! as Record<string, unknown>)
        const onHimn: Record<string, unknown>[] = vifs.filter((v) => v.network === himn)
        assert.equal(onHimn.length, 1, `${compute}: one VIF on the HIMN`)
        assert.equal(onHimn[0].currently_attached, true)
        const xsd = sim.db.get(vm)!.xenstore_data as Record<string, string>
        assert.equal(xsd['vm-data/himn_mac'], onHimn[0].MAC)
        // the guest reads the same key from its xenstore
        const read = await lab.execOk(compute, ['xenstore-read', 'vm-data/himn_mac'])
        assert.equal(read.stdout.trim(), onHimn[0].MAC)
      }
    })

    await t.test('dom0 plugins answer through host.call_plugin', async () => {
      for (const host of ['dom0-1', 'dom0-2']) {
        const ref = lab.simulator!.refs.get(host)!
        // the serialized (pickled) version plugin, as nova's session checks it
        const version = await xapi!.checkPluginVersion(ref, '2.0', { plugin: 'dom0_plugin_version.py' })
        assert.match(version, /^2\.\d+$/)
        // a plain plugin: string arguments, JSON out
        const out = (await xapi!.call('host.call_plugin', ref, 'xenstack_dom0.py', 'version', {})) as string
        assert.notEqual(JSON.parse(out), null, `xenstack_dom0.py version() answered ${out}`)
        assert.ok(existsSync(lab.backingPath(host, '/etc/xapi.d/plugins/dom0_plugin_version.py')))
      }
    })

    await t.test('TestVM exists once in Glance with the XenServer properties', async () => {
      const res = await fetch(`${glance.adminUrl}/v2/images?name=TestVM`)
      assert.equal(res.status, 200)
      const images = ((await res.json()) as { images: Record<string, any>[] }).images
      assert.equal(images.length, 1, JSON.stringify(images))
      const img = images[0]
      assert.equal(img.container_format, 'ovf')
      assert.equal(img.disk_format, 'vhd')
      assert.equal(img.visibility, 'public')
      assert.equal(img.vm_mode, 'xen')
      assert.equal(img.status, 'active')
      // the bytes are xenstack's own TestVM (built reproducibly: the same md5 from a fresh build here)
      const expected = await buildTestVm(tmp('xenstack-lab-deploy-testvm-'))
      assert.equal(img.checksum, expected.tgzMd5)
    })

    await t.test('a second deploy reports zero changes', async () => {
      const tsecond = performance.now()
      const second = await xenstack(home, 'deploy', env, '--json')
      t.diagnostic(`second deploy: ${Math.round(performance.now() - tsecond)} ms`)
      runs.push(second)
      assert.equal(second.code, 0, `${second.stdout.slice(-4000)}\n${second.stderr.slice(-2000)}`)
      assert.equal(second.json?.status, 'ready')
      assert.equal(
        second.json?.changes,
        0,
        `changed again: ${changedResources(home, second.json?.deployment).join('; ')}`,
      )
      const res = await fetch(`${glance.adminUrl}/v2/images?name=TestVM`)
      assert.equal(((await res.json()) as { images: unknown[] }).images.length, 1, 'still one TestVM')
    })

    await t.test('the health checks pass on what the deploy made (xenstack health run)', async () => {
      const thealth = performance.now()
      const health = await xenstack(home, 'health', 'run', env, '--json')
      t.diagnostic(`health run, every set: ${Math.round(performance.now() - thealth)} ms`)
      runs.push(health)
      assert.equal(
        health.code,
        0,
        `health checks failed:\n${health.stdout.slice(-6000)}\n${health.stderr.slice(-2000)}`,
      )
    })

    await t.test(
      'a 6.5.0 host without hotfix XS65ESP1013 fails the pre-test, saying what it found and needs',
      async () => {
        const host = lab.simulator!.refs.get('dom0-2')!
        const sv = { ...(sim.db.get(host)!.software_version as Record<string, string>) }
        sim.db.update(host, { software_version: { ...sv, product_version: '6.5.0', platform_version: '1.9.0' } })
        for (const [ref, p] of [...sim.db.all('pool_patch')])
          if (String(p.name_label).includes('XS65ESP1013')) sim.db.destroy(ref)
        const tthird = performance.now()
        const third = await xenstack(home, 'deploy', env, '--force', '--json')
        t.diagnostic(`forced deploy on a 6.5.0 host: ${Math.round(performance.now() - tthird)} ms`)
        runs.push(third)
        assert.notEqual(third.code, 0)
        const err = (third.json?.errors ?? []).find((e: any) => e.task === 'xenserver-pre-test')
        assert.ok(err, `a pre-test error: ${third.stdout.slice(-3000)}\n${third.stderr.slice(-2000)}`)
        assert.equal(err.node, 'compute-2')
        assert.match(err.message, /6\.5\.0/)
        assert.match(err.message, /XS65ESP1013/)
      },
    )

    await t.test('the password is nowhere in task output, logs or state', async () => {
      for (const r of runs) {
        assert.ok(!r.stdout.includes(password), 'deploy output shows the password')
        assert.ok(!r.stderr.includes(password), 'deploy errors show the password')
      }
      assert.deepEqual(filesContaining(home, password), [], 'state (data dir) holds the password in plain text')
      const logs = lab.hosts.map((h) => join(lab.hostDir(h.name), 'log'))
      assert.deepEqual(
        logs.flatMap((d) => filesContaining(d, password)),
        [],
        'a lab log holds the password',
      )
      // where it belongs: nova's connection password on the compute VMs
      const conf = await lab.execOk('compute-1', ['cat', '/etc/nova/nova-compute.conf'])
      assert.ok(conf.stdout.includes(password))
    })
  } finally {
    await xapi?.close().catch(() => {})
    await lab.down()
  }
})
