import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { Lab, preflight } from '../../../src/lab/index.js'
import { isAlive } from '../../../src/lab/sys.js'
import { describeLab } from '../../../src/lab/supervisor.js'
import { registerLabEnvironment } from '../../../src/lab/environment.js'
import '../../../src/integration/lab-services.js'
import type { GlanceEndpoint } from '../../../src/lab/glance-service.js'
import { GlanceClient, glanceInstalled } from '../../../src/glance/index.js'
import { nodeAccessFromRecords } from '../../../src/engine/node-access.js'
import { natives } from '../../../src/integration/image/index.js'
import { StateStore } from '../../../src/state/store.js'
import { handlerContext } from '../task-context.js'

// One lab for the file: a controller with Glance (a /22 management network: the endpoint comes from the real
// address, not a /24 guess), a XenServer host and the simulator (so the lab registers as an environment).
const tmp = scratchDirs()
let lab: Lab | undefined
let missing: string | undefined
let glancePid = 0
const PASSWORD = 'glance-lab-Secr3t'

before(async () => {
  try {
    await preflight()
  } catch (e) {
    missing = (e as Error).message
    return
  }
  if (!glanceInstalled()) return
  process.env.XENSTACK_HOME = tmp('xs-home-')
  lab = await Lab.up({
    hosts: 1,
    storageNode: false,
    httpProbePort: false,
    simulator: { password: PASSWORD },
    networks: { management: { cidr: '10.41.4.0/22' } },
    services: [{ kind: 'glance' }],
  })
  glancePid = lab.services.find((s) => s.kind === 'glance')?.pids?.[0] ?? 0
})
after(async () => {
  await lab?.down()
})

function ready(t: import('node:test').TestContext): boolean {
  if (!requirePrerequisite(t, missing ?? 'lab', () => missing === undefined)) return false
  return requirePrerequisite(t, 'python3-glance', glanceInstalled)
}

const endpoint = () => lab!.services.find((s) => s.kind === 'glance') as GlanceEndpoint

test('the lab runs a real Glance on its controller: reachable from lab hosts on the management address and from the machine, data in the host', async (t) => {
  if (!ready(t)) return
  const g = endpoint()
  assert.equal(g.host, 'controller-1')
  assert.equal(g.url, 'http://10.41.4.2:9292')
  assert.equal(g.adminUrl, `http://${lab!.host('controller-1').ssh.host}:9292`)
  assert.ok(isAlive(glancePid))

  // the machine (xenstack) uses the admin address
  const client = new GlanceClient({ endpoint: g.adminUrl })
  const img = await client.createImage({ name: 'lab-probe', disk_format: 'raw', container_format: 'bare' })
  await client.uploadImage(img.id, Buffer.from('glance in the lab\n'))

  // a lab host (the compute VM) reaches it on the controller's management address, and sees the same image
  const r = await lab!.execOk('compute-1', ['curl', '-sS', '-f', `${g.url}/v2/images?name=lab-probe`], {
    timeoutMs: 30_000,
  })
  const listed = JSON.parse(r.stdout) as { images: { id: string; status: string }[] }
  assert.deepEqual(
    listed.images.map((i) => [i.id, i.status]),
    [[img.id, 'active']],
  )
  const data = await lab!.execOk('compute-1', ['curl', '-sS', '-f', `${g.url}/v2/images/${img.id}/file`])
  assert.equal(data.stdout, 'glance in the lab\n')

  // configuration, database and image file live in the controller host, the log in the lab dir
  assert.match(
    readFileSync(lab!.backingPath('controller-1', '/etc/glance/glance-api.conf'), 'utf8'),
    /bind_port = 9292/,
  )
  assert.ok(existsSync(lab!.backingPath('controller-1', '/var/lib/glance/glance.sqlite')))
  assert.equal(
    readFileSync(lab!.backingPath('controller-1', `/var/lib/glance/images/${img.id}`), 'utf8'),
    'glance in the lab\n',
  )
  assert.ok(!existsSync(`/var/lib/glance/images/${img.id}`), 'nothing lands on the machine')
  assert.equal(g.logFile, join(lab!.hostDir('controller-1'), 'log', 'glance-api.log'))
  assert.match(readFileSync(g.logFile, 'utf8'), /PUT \/v2\/images\/[0-9a-f-]+\/file/)
  await client.deleteImage(img.id)
})

test('xenserver.test-image on the lab: Glance from the registered primary controller (data.glance), then from its /root/openrc over SSH; second run unchanged', async (t) => {
  if (!ready(t)) return
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  const dataDir = tmp('xs-state-')
  const desc = describeLab(lab!, 0)
  registerLabEnvironment(desc, PASSWORD, desc.refs, { dataDir })
  const store = StateStore.open({ dataDir })
  const records = store.environments.nodes(lab!.name)
  store.close()
  const controller = records.find((r) => r.roles.includes('primary-controller'))!
  assert.equal(controller.name, 'controller-1')
  assert.deepEqual(controller.data.glance, { url: endpoint().adminUrl })

  const access = nodeAccessFromRecords(records, { dataDir })
  try {
    const exec = await access.executor('controller-1')
    const lines: string[] = []
    const ctx = (nodeData: Record<string, unknown>) =>
      handlerContext('controller-1', 'xenserver-test-image', { exec, nodeData }, lines)
    const task = natives['xenserver.test-image']
    const first = await task.run!(ctx(controller.data))
    assert.equal(first?.[0].result, 'changed')
    const glance = new GlanceClient({ endpoint: endpoint().adminUrl })
    const [tvm, ...more] = await glance.listImages({ name: 'TestVM' })
    assert.equal(more.length, 0)
    assert.equal(tvm.vm_mode, 'xen')
    assert.equal(tvm.visibility, 'public')
    // OpenStack's own view on the controller: /root/openrc (here with a direct image URL) read over SSH
    await exec.put('/root/openrc', `export OS_IMAGE_URL=${endpoint().adminUrl}\n`, { mode: 0o600 })
    const { glance: _dropped, ...withoutGlance } = controller.data
    void _dropped
    const second = await task.run!(ctx(withoutGlance))
    assert.deepEqual(second, [{ resource: 'glance image TestVM', result: 'unchanged' }])
    assert.match(lines.join('\n'), /Glance from \/root\/openrc on controller-1: http:\/\/198\.18\./)
    assert.deepEqual(
      (await glance.listImages({ name: 'TestVM' })).map((i) => i.id),
      [tvm.id],
    )
  } finally {
    await access.close()
  }
})

test('a glance service with a bad option fails the lab start with the reason', async (t) => {
  if (!requirePrerequisite(t, missing ?? 'lab', () => missing === undefined)) return
  await assert.rejects(
    Lab.up({
      hosts: 1,
      storageNode: false,
      httpProbePort: false,
      services: [{ kind: 'glance', options: { port: 70000 } }],
    }),
    /glance service: options\.port must be a TCP port number \(1-65535\), got 70000/,
  )
})

test('glance-api stops with the lab', async (t) => {
  if (!ready(t)) return
  await lab!.down()
  assert.ok(!isAlive(glancePid))
})
