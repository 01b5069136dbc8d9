// Issue 9.11, the proof on the lab: the default two-host lab environment (two XenServer hosts of one simulated
// pool, each a dom0 + a compute VM; a controller running a real Glance; a storage node) registered as `lab up`
// registers it, deployed with `xenstack deploy` through the CLI, then the real effects checked on the lab's hosts
// and in the simulator. One lab for the whole file.
//
// The lab's controller has the /etc/nova/nova.conf a Fuel-deployed controller has (lab/controller-role.ts; xenstack's
// release does not install nova itself); the XenServer plugin's controller task changes that file, as the original did.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { connect, type Xapi } from '@xenstack/xenapi'
import { buildTestVm } from '../../src/integration/image/testvm.js'
import { parseIni } from '../../src/health/xenserver/ini-check.js'
import { tail, xenstack, type CliRun } from '../lab-fixture/cli.js'
import {
  assertComputeNat,
  assertDom0ReachesController,
  assertDom0Routes,
  assertHimnVifs,
  captureEndState,
  changedResources,
  filesContaining,
  labLogDirs,
  requireDeployLab,
  upDeployLab,
  XENSERVER_HOSTS,
} from '../lab-fixture/deploy-lab.js'

const tmp = scratchDirs()

const PRE_EXISTING_CRON = '17 3 * * * /usr/local/bin/site-backup --quiet'

test('lab deploy: the default two-host lab environment deploys with xenstack deploy and its effects are real', async (t) => {
  if (!(await requireDeployLab(t))) return

  const home = tmp('xenstack-lab-deploy-')
  const { lab, env, password, glance, upMs } = await upDeployLab(home)
  t.diagnostic(`lab up with Glance: ${upMs} ms`)
  const runs: CliRun[] = []
  let xapi: Xapi | undefined
  try {
    // an operator's own cron entry on dom0, which the deployment must keep
    await lab.execOk('dom0-1', ['crontab', '-'], { stdin: PRE_EXISTING_CRON + '\n' })
    xapi = await connect({ url: lab.simulator!.url, username: 'root', password })
    const sim = lab.simulator!.sim

    const first = await xenstack(home, ['deploy', env, '--json'])
    t.diagnostic(`first deploy: ${first.ms} ms`)
    runs.push(first)
    assert.equal(first.code, 0, `deploy failed:\n${tail(first)}`)
    assert.equal(first.json?.status, 'ready')
    assert.ok(first.json.changes > 0)

    const deployed = await captureEndState(lab)

    await t.test('dom0 reaches the controller through the compute VM NAT with real traffic', () =>
      assertDom0ReachesController(lab),
    )

    await t.test('routes in dom0 and the NAT rules in the compute VM exist once, for the real CIDRs', () => {
      assertDom0Routes(deployed)
      assertComputeNat(deployed)
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

    await t.test('each compute VM has its HIMN VIF and vm-data/himn_mac in the simulator', () => {
      assertHimnVifs(deployed)
    })

    await t.test('dom0 plugins answer through host.call_plugin', async () => {
      for (const { dom0: host } of XENSERVER_HOSTS) {
        const ref = lab.simulator!.refs.get(host)!
        // the serialized (pickled) version plugin, as nova's session checks it
        const version = await xapi!.checkPluginVersion(ref, '2.0', { plugin: 'dom0_plugin_version.py' })
        assert.match(version, /^2\.\d+$/)
        // a plain plugin: string arguments, JSON out
        const out = (await xapi!.call('host.call_plugin', ref, 'xenstack_dom0.py', 'version', {})) as string
        assert.notEqual(JSON.parse(out), null, `xenstack_dom0.py version() answered ${out}`)
        assert.match(deployed[`${host} plugins`], /^dom0_plugin_version\.py /m, `${host}: the plugin file`)
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
      const second = await xenstack(home, ['deploy', env, '--json'])
      t.diagnostic(`second deploy: ${second.ms} ms`)
      runs.push(second)
      assert.equal(second.code, 0, tail(second))
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
      const health = await xenstack(home, ['health', 'run', env, '--json'])
      t.diagnostic(`health run, every set: ${health.ms} ms`)
      runs.push(health)
      assert.equal(health.code, 0, `health checks failed:\n${tail(health, 6000)}`)
    })

    await t.test(
      'a 6.5.0 host without hotfix XS65ESP1013 fails the pre-test, saying what it found and needs',
      async () => {
        const host = lab.simulator!.refs.get('dom0-2')!
        const sv = { ...(sim.db.get(host)!.software_version as Record<string, string>) }
        sim.db.update(host, { software_version: { ...sv, product_version: '6.5.0', platform_version: '1.9.0' } })
        for (const [ref, p] of [...sim.db.all('pool_patch')])
          if (String(p.name_label).includes('XS65ESP1013')) sim.db.destroy(ref)
        const third = await xenstack(home, ['deploy', env, '--force', '--json'])
        t.diagnostic(`forced deploy on a 6.5.0 host: ${third.ms} ms`)
        runs.push(third)
        assert.notEqual(third.code, 0)
        const err = (third.json?.errors ?? []).find((e: any) => e.task === 'xenserver-pre-test')
        assert.ok(err, `a pre-test error: ${tail(third, 3000)}`)
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
      assert.deepEqual(
        labLogDirs(lab).flatMap((d) => filesContaining(d, password)),
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
