/**
 * `xenstack devstack install` against the XAPI simulator (no SSH): --dry-run on an empty pool lists the steps and
 * changes nothing; an unreachable Ubuntu mirror stops the run after prerequisites and networks with a message naming
 * the mirror and a recorded, resumable state; once the "mirror" (a local HTTP server) answers, the same command
 * continues with the template netinstall (the test plays the installer: it powers the VM off) and creates the DomU
 * with its three interfaces and the operator's key in xenstore; a second run changes nothing on the pool; a same-
 * named VM xenstack did not create is not taken over; the SR and version prerequisites refuse with their reasons.
 */
import { after, before, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { DEFAULTS, parseOverrides, renderLocalConf, renderPreseed } from '../../src/prep/devstack/index.js'
import { runCli } from '../cli/run.js'
import { playingNetinstall } from './helpers.js'

const PASSWORD = 'devstack-sim-Secr3t!'
const scratch = scratchDirs()
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined, XENSTACK_PROBE_TIMEOUT_MS: '3000' }

let sim: SimServer
let xapi: Xapi
let dataDir: string
let keyFile: string
let mirror: Server
let mirrorUrl: string
const mirrorHits: string[] = []

before(async () => {
  sim = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  xapi = await connect({ url: sim.url, username: 'root', password: PASSWORD })
  dataDir = scratch('xenstack-devstack-')
  keyFile = join(dataDir, 'operator_key')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@test', '-f', keyFile])
  // the "mirror": answers the Release file the probe asks for, and serves the preseed the installer would fetch
  mirror = createServer((req, res) => {
    mirrorHits.push(req.url ?? '')
    if (req.url === '/ubuntu/dists/xenial/Release') return void res.end('Suite: xenial\n')
    if (req.url === '/preseed.cfg')
      return void res.end(readFileSync(join(dataDir, 'devstack', '127.0.0.1', 'preseed.cfg')))
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((r) => mirror.listen(0, '127.0.0.1', r))
  mirrorUrl = `http://127.0.0.1:${(mirror.address() as { port: number }).port}/ubuntu`
})
after(async () => {
  await xapi?.close().catch(() => undefined)
  await sim?.close()
  await new Promise((r) => mirror?.close(r))
})

/** Everything the command could touch, for "changed nothing" comparisons. */
async function snapshot(x: Xapi): Promise<string> {
  const out: Record<string, unknown> = {}
  for (const cls of ['network', 'VM', 'VIF', 'VBD', 'VDI', 'SR', 'pool'])
    out[cls] = await x
      .call(`${cls}.get_all_records`)
      .then((r) =>
        Object.fromEntries(
          Object.entries(r as Record<string, Record<string, unknown>>).map(([k, v]) => [
            k,
            Object.fromEntries(
              Object.entries(v).filter(([f]) => !/operations|metrics|last_updated|physical_utilisation/.test(f)),
            ),
          ]),
        ),
      )
  return JSON.stringify(out)
}

const base = () => [
  'devstack',
  'install',
  '127.0.0.1',
  '--url',
  sim.url,
  '--username',
  'root',
  '--data-dir',
  dataDir,
  '--ssh-key',
  keyFile,
  '--disk',
  '1',
]

/** A pool of the test's own (for changes the shared pool must not see), closed when the test ends. */
async function ownPool(t: TestContext): Promise<{ url: string; x: Xapi }> {
  const s = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  const x = await connect({ url: s.url, username: 'root', password: PASSWORD }).catch(async (e: unknown) => {
    await s.close()
    throw e
  })
  t.after(async () => {
    await x.close()
    await s.close()
  })
  return { url: s.url, x }
}

/** `devstack install` of the DomU 127.0.0.1 on the pool at `url`, with a data dir of its own. */
const install = (url: string, dataDirPrefix: string) => [
  'devstack',
  'install',
  '127.0.0.1',
  '--url',
  url,
  '--data-dir',
  scratch(dataDirPrefix),
]

test('devstack: --dry-run on an empty pool lists the steps and changes nothing', async () => {
  const before = await snapshot(xapi)
  const r = await runCli([...base(), '--mirror', mirrorUrl, '--dry-run', '--json'], env)
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.equal(out.dryRun, true)
  const step = (id: string) => out.steps.find((s: { id: string }) => s.id === id)
  assert.equal(step('prerequisites').state, 'unchanged')
  assert.deepEqual(step('networks').changes, [
    'create vm network "OpenStack VM Network"',
    'create public network "OpenStack Public Network"',
  ])
  assert.match(step('template').changes.join('\n'), /check the Ubuntu mirror .*\/dists\/xenial\/Release/)
  assert.equal(step('domu').state, 'not reached', 'nothing after the template can be planned before it exists')
  assert.equal(await snapshot(xapi), before, 'a dry run changed the pool')
  assert.deepEqual(mirrorHits, [], 'a dry run does not even probe the mirror')
})

test('devstack: an unreachable mirror stops after the recorded earlier steps; the re-run continues to the DomU', async () => {
  const dead = 'http://127.0.0.1:9/ubuntu' // discard port: nothing listens
  const r = await runCli([...base(), '--mirror', dead, '--json'], env)
  assert.equal(r.code, 4, r.stderr)
  assert.match(r.stderr, /template: the Ubuntu mirror http:\/\/127\.0\.0\.1:9\/ubuntu is unreachable from this machine/)
  assert.match(r.stderr, /prerequisites, networks are done and recorded in /)
  const out = JSON.parse(r.stdout)
  assert.equal(out.stopped.step, 'template')
  assert.equal(out.stopped.state, 'blocked')
  const progress = JSON.parse(readFileSync(out.progressFile, 'utf8'))
  assert.equal(progress.steps.prerequisites.status, 'done')
  assert.equal(progress.steps.networks.status, 'done')
  assert.equal(progress.steps.template.status, 'blocked')
  assert.match(progress.steps.template.message, /127\.0\.0\.1:9/)
  assert.ok(!JSON.stringify(progress).includes(PASSWORD), 'no password in the record')
  const nets = (await xapi.call('network.get_all_records')) as Record<string, any>
  const vmNet = Object.entries(nets).find(([, n]) => n.name_label === 'OpenStack VM Network')
  assert.ok(vmNet, 'the VM network was created before the stop')
  assert.equal(vmNet[1].other_config.assume_network_is_shared, 'true')
  assert.equal(vmNet[1].other_config.xenstack_devstack, 'vm')
  assert.deepEqual(await xapi.call('VM.get_by_name_label', 'jeos_template_for_ubuntu'), [], 'no template yet')

  // the installer: when the VM runs with the preseed boot arguments, it "installs" and powers off
  const { result: again, installer: installerSeen } = await playingNetinstall(xapi, 120_000, () =>
    runCli(
      [
        ...base(),
        '--mirror',
        mirrorUrl,
        '--preseed-url',
        `${mirrorUrl.replace('/ubuntu', '')}/preseed.cfg`,
        '--json',
        '--domu-ssh',
        'root@127.0.0.1:9',
      ],
      env,
    ),
  )
  const out2 = JSON.parse(again.stdout)
  assert.deepEqual(out2.previouslyDone, ['prerequisites', 'networks'])
  const step = (id: string) => out2.steps.find((s: { id: string }) => s.id === id)
  assert.equal(step('prerequisites').state, 'unchanged')
  assert.equal(step('networks').state, 'unchanged')
  assert.equal(step('template').state, 'changed', JSON.stringify(step('template')))
  assert.ok(mirrorHits.includes('/ubuntu/dists/xenial/Release'), 'the mirror was probed')
  assert.ok(installerSeen, 'the installer VM ran')
  assert.equal(installerSeen.other_config['install-repository'], mirrorUrl)
  assert.match(installerSeen.PV_args, /url=http:\/\/127\.0\.0\.1:\d+\/preseed\.cfg/)
  const preseed = readFileSync(join(dataDir, 'devstack', '127.0.0.1', 'preseed.cfg'), 'utf8')
  assert.match(preseed, /^d-i mirror\/http\/hostname string 127\.0\.0\.1:\d+$/m)
  assert.match(preseed, /^d-i mirror\/http\/directory string \/ubuntu$/m)
  assert.match(preseed, /^d-i mirror\/suite string xenial$/m)
  // the DomU exists and runs; the SSH step fails (nothing listens on port 9) and says so
  assert.equal(step('domu').state, 'changed', JSON.stringify(step('domu')))
  assert.equal(again.code, 1, again.stderr)
  assert.match(again.stderr, /domu-access: DomU DevStackOSDomU at root@127\.0\.0\.1:9/)

  const tpl = (await xapi.call('VM.get_by_name_label', 'jeos_template_for_ubuntu')) as string[]
  assert.equal(tpl.length, 1)
  const t = (await xapi.call('VM.get_record', tpl[0])) as any
  assert.equal(t.is_a_template, true)
  assert.equal(t.other_config.xenstack_devstack, 'template')
  const domu = (await xapi.call('VM.get_by_name_label', 'DevStackOSDomU')) as string[]
  assert.equal(domu.length, 1)
  const d = (await xapi.call('VM.get_record', domu[0])) as any
  assert.equal(d.power_state, 'Running')
  assert.equal(d.other_config['os-vpx'], 'true')
  assert.equal(d.memory_static_max, 6144 * 1024 ** 2)
  assert.equal(d.xenstore_data['vm-data/authorized_keys'], readFileSync(`${keyFile}.pub`, 'utf8').trim())
  const vifs = await Promise.all(d.VIFs.map((v: string) => xapi.call('VIF.get_record', v)))
  const byDevice = Object.fromEntries(vifs.map((v: any) => [v.device, nets[v.network]?.name_label ?? v.network]))
  const pifs = (await xapi.call('PIF.get_all_records')) as Record<string, any>
  const mgmt = Object.values(pifs).find((p) => p.management).network
  assert.equal(vifs.find((v: any) => v.device === '0')?.network, mgmt, 'eth0 on the management network')
  assert.equal(byDevice['1'], 'OpenStack VM Network')
  assert.equal(byDevice['2'], 'OpenStack Public Network')

  // a second run: nothing changes on the pool (it stops at the same SSH step)
  const converged = await snapshot(xapi)
  const third = await runCli([...base(), '--mirror', mirrorUrl, '--json', '--domu-ssh', 'root@127.0.0.1:9'], env)
  const out3 = JSON.parse(third.stdout)
  for (const id of ['prerequisites', 'networks', 'template', 'domu'])
    assert.equal(out3.steps.find((s: { id: string }) => s.id === id).state, 'unchanged', id)
  assert.equal(await snapshot(xapi), converged, 'a second run changed the pool')
})

test('devstack: a same-named DomU xenstack did not create is not taken over', async (t) => {
  const { url, x } = await ownPool(t)
  const other = (await x.call('VM.get_all_records')) as Record<string, any>
  const tmpl = Object.entries(other).find(([, v]) => v.is_a_template && v.name_label === 'Other install media')![0]
  await x.call('VM.clone', tmpl, 'jeos_template_for_ubuntu')
  const vm = (await x.call('VM.clone', tmpl, 'DevStackOSDomU')) as string
  await x.call('VM.set_is_a_template', vm, false)
  const before = await snapshot(x)
  const r = await runCli([...install(url, 'xenstack-devstack-'), '--no-wait'], env)
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, /VM DevStackOSDomU \(uuid [0-9a-f-]+\) exists but xenstack did not create it/)
  assert.match(r.stderr, /other-config:xenstack_devstack=domu/)
  const after = await snapshot(x)
  // only the two networks of the earlier step were made
  assert.notEqual(after, before)
  assert.equal(((await x.call('VM.get_by_name_label', 'DevStackOSDomU')) as string[]).length, 1)
})

test('devstack: usage errors before anything is read', async () => {
  const r = await runCli(
    ['devstack', 'install', '127.0.0.1', '--url', 'http://127.0.0.1:1', '--test-type', 'most'],
    env,
  )
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--test-type most: expected one of none, exercise, smoke, full/)
  const c = await runCli(['devstack', 'install', '127.0.0.1', '--url', 'http://127.0.0.1:1', '--compute-only'], env)
  assert.equal(c.code, 2)
  assert.match(c.stderr, /--compute-only needs --controller-ip/)
})

test('devstack: a default SR that is not ext/nfs is refused; --force-sr-replace asks, --yes replaces it with ext on its device', async (t) => {
  const { url, x } = await ownPool(t)
  const pool = ((await x.call('pool.get_all')) as string[])[0]
  const host = (await x.call('pool.get_master', pool)) as string
  const lvm = (await x.call(
    'SR.create',
    host,
    { device: '/dev/sdc' },
    0,
    'Local LVM',
    '',
    'lvm',
    'user',
    false,
    {},
  )) as string
  await x.call('pool.set_default_SR', pool, lvm)
  const args = [...install(url, 'xenstack-devstack-sr-'), '--no-wait']
  const before = await snapshot(x)
  const refused = await runCli(args, env)
  assert.equal(refused.code, 1)
  assert.match(
    refused.stderr,
    /prerequisites: default SR Local LVM \(uuid [0-9a-f-]+\) is of type lvm; devstack needs ext or nfs/,
  )
  assert.match(refused.stderr, /--force-sr-replace replaces it/)
  const unconfirmed = await runCli([...args, '--force-sr-replace'], env)
  assert.equal(unconfirmed.code, 2, unconfirmed.stderr)
  assert.match(
    unconfirmed.stderr,
    /--force-sr-replace destroys the default SR when it is not ext\/nfs, and stdin is not a terminal to confirm on/,
  )
  assert.match(unconfirmed.stderr, /hint: add --yes to confirm/)
  const dry = await runCli([...args, '--force-sr-replace', '--dry-run', '--json'], env)
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(
    JSON.stringify(JSON.parse(dry.stdout).steps[0].changes),
    /replace default SR Local LVM \(lvm, uuid [0-9a-f-]+\) with an ext SR on \/dev\/sdc/,
  )
  assert.equal(await snapshot(x), before, 'refusals and the dry run changed nothing')

  const replaced = await runCli([...args, '--force-sr-replace', '--yes', '--json'], env)
  assert.equal(JSON.parse(replaced.stdout).steps[0].state, 'changed', replaced.stderr)
  const sr = (await x.call('pool.get_default_SR', pool)) as string
  assert.notEqual(sr, lvm)
  assert.equal(await x.call('SR.get_type', sr), 'ext')
  assert.equal(await x.call('pool.get_suspend_image_SR', pool), sr)
  const pbds = (await x.call('SR.get_PBDs', sr)) as string[]
  assert.deepEqual(await x.call('PBD.get_device_config', pbds[0]), { device: '/dev/sdc' })
  assert.ok(!((await x.call('SR.get_all')) as string[]).includes(lvm), 'the lvm SR is gone')
})

test('devstack: local.conf for a compute-only DomU points at the controller; overrides replace, add and append sections', () => {
  const cfg = {
    ...DEFAULTS,
    host: '10.0.0.5',
    mode: 'compute' as const,
    controllerIp: '10.0.0.10',
    vmNetwork: 'xapi1',
    publicNetwork: 'Public Net',
    localConfOverrides:
      '# comment\nPUBLIC_INTERFACE=eth4\n[[post-config|$NOVA_CONF]]\n[xenserver]\ncache_images = none\n',
  }
  const conf = renderLocalConf(cfg, { service: 'svc-pass', xapi: 'xapi-pass' }).split('\n')
  for (const line of [
    '[[local|localrc]]',
    'ENABLED_SERVICES=neutron,q-agt,q-domua,n-cpu,placement-client,dstat,n-novnc',
    'SERVICE_HOST=10.0.0.10',
    'GLANCE_HOSTPORT=10.0.0.10:9292',
    'VM_BRIDGE_OR_NET_NAME=xapi1',
    'PUB_BRIDGE_OR_NET_NAME="Public Net"',
    'XENAPI_CONNECTION_URL=http://10.0.0.5',
    'XENAPI_PASSWORD=xapi-pass',
    'MYSQL_PASSWORD=svc-pass',
    'PUBLIC_INTERFACE=eth4',
    'disk_allocation_ratio = 2.0',
    'cache_images = none',
  ])
    assert.ok(conf.includes(line), `${line} in\n${conf.join('\n')}`)
  assert.ok(!conf.includes('ENABLED_SERVICES+=,neutron,q-domua'), 'no all-in-one services')
  assert.ok(!conf.includes('PUBLIC_INTERFACE=eth2'), 'the override replaced the sample value')
  assert.throws(
    () => renderLocalConf({ ...cfg, controllerIp: undefined }, { service: 's', xapi: 'x' }),
    /--controller-ip/,
  )
  assert.deepEqual(parseOverrides('A=1\n[[local|localrc]]\nB=2\n[[post-extra|$TEMPEST_CONF]]\nx'), {
    assignments: ['A=1', 'B=2'],
    sections: '[[post-extra|$TEMPEST_CONF]]\nx\n',
  })
  const preseed = renderPreseed({ ...cfg, mirror: 'https://mirror.example.org/ubuntu/', ubuntuRelease: 'bionic' })
  assert.match(preseed, /^d-i mirror\/protocol string https$/m)
  assert.match(preseed, /^d-i mirror\/https\/hostname string mirror\.example\.org$/m)
  assert.match(preseed, /^d-i mirror\/https\/directory string \/ubuntu$/m)
  assert.match(preseed, /^d-i mirror\/suite string bionic$/m)
  assert.match(preseed, /^d-i debian-installer\/exit\/poweroff boolean true$/m)
})

test('devstack: an installer still running at --install-timeout is blocked; the re-run waits for that same VM', async (t) => {
  const { url, x } = await ownPool(t)
  const args = [
    ...install(url, 'xenstack-devstack-wait-'),
    '--mirror',
    mirrorUrl,
    '--preseed-url',
    `${mirrorUrl}/preseed.cfg`,
    '--disk',
    '1',
    '--install-timeout',
    '1',
    '--json',
  ]
  const first = await runCli(args, env)
  assert.equal(first.code, 4, first.stderr)
  assert.match(first.stderr, /template: the template installer VM \(uuid ([0-9a-f-]+)\) is still Running after 1 s/)
  const uuid = /uuid ([0-9a-f-]+)\)/.exec(first.stderr)![1]
  const progress = JSON.parse(readFileSync(JSON.parse(first.stdout).progressFile, 'utf8'))
  assert.equal(progress.notes.installer, uuid)
  assert.equal(progress.steps.template.status, 'blocked')

  // the install finishes while nobody watches; the re-run picks the same VM up (no second installer)
  await x.call('VM.clean_shutdown', await x.call('VM.get_by_uuid', uuid))
  const again = await runCli(args, env)
  const out = JSON.parse(again.stdout)
  const template = out.steps.find((st: { id: string }) => st.id === 'template')
  assert.equal(template.state, 'changed', JSON.stringify(template))
  assert.match(template.changes[0], new RegExp(`continue with the template installer VM \\(uuid ${uuid}, Halted\\)`))
  const tpl = (await x.call('VM.get_by_name_label', 'jeos_template_for_ubuntu')) as string[]
  assert.deepEqual(
    await Promise.all(tpl.map((r) => x.call('VM.get_uuid', r))),
    [uuid],
    'the installer VM became the template',
  )
  assert.equal(await x.call('VM.get_is_a_template', tpl[0]), true)
})

test('devstack: no template that installs over http: refused before anything is cloned, naming the way out', async (t) => {
  const { url, x } = await ownPool(t)
  for (const name of ['Ubuntu Xenial Xerus 16.04', 'Other install media'])
    for (const ref of (await x.call('VM.get_by_name_label', name)) as string[]) {
      await x.call('VM.remove_from_other_config', ref, 'install-methods')
      await x.call('VM.add_to_other_config', ref, 'install-methods', 'cdrom')
    }
  const vmsBefore = ((await x.call('VM.get_all')) as string[]).length
  const r = await runCli(
    [...install(url, 'xenstack-devstack-im-'), '--mirror', mirrorUrl, '--preseed-url', `${mirrorUrl}/preseed.cfg`],
    env,
  )
  assert.equal(r.code, 1, r.stderr)
  assert.match(
    r.stderr,
    /template: no template to netinstall Ubuntu xenial from: "Ubuntu Xenial Xerus 16\.04" installs from cdrom only .*Import one with --template-xva FILE/,
  )
  assert.equal(((await x.call('VM.get_all')) as string[]).length, vmsBefore, 'no installer VM was made')
})
