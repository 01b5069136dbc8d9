import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { requirePrerequisite } from '@xenstack/testkit'
import { Lab, preflight } from '../../../src/lab/index.js'
import { isAlive } from '../../../src/lab/sys.js'
import '../../../src/integration/lab-services.js'
import type { GlanceEndpoint } from '../../../src/lab/glance-service.js'
import { GlanceClient, glanceInstalled } from '../../../src/glance/index.js'

test('the lab runs a real Glance on its controller: reachable from lab hosts on the management address and from the machine, data in the host, gone with the lab', async (t) => {
  let missing: string | undefined
  try {
    await preflight()
  } catch (e) {
    missing = (e as Error).message
  }
  if (!requirePrerequisite(t, missing ?? 'lab', () => missing === undefined)) return
  if (!requirePrerequisite(t, 'python3-glance', glanceInstalled)) return
  // a /22 management network: the endpoint comes from the real address, not a /24 guess
  const lab = await Lab.up({
    hosts: 1,
    storageNode: false,
    httpProbePort: false,
    networks: { management: { cidr: '10.41.4.0/22' } },
    services: [{ kind: 'glance' }],
  })
  let pid = 0
  try {
    const g = lab.services.find((s) => s.kind === 'glance') as GlanceEndpoint
    assert.ok(g, 'the glance endpoint is listed in lab.services')
    assert.equal(g.host, 'controller-1')
    assert.equal(g.url, 'http://10.41.4.2:9292')
    assert.equal(g.adminUrl, `http://${lab.host('controller-1').ssh.host}:9292`)
    pid = g.pids![0]
    assert.ok(isAlive(pid))

    // the machine (xenstack) uses the admin address
    const client = new GlanceClient({ endpoint: g.adminUrl })
    const img = await client.createImage({ name: 'lab-probe', disk_format: 'raw', container_format: 'bare' })
    await client.uploadImage(img.id, Buffer.from('glance in the lab\n'))

    // a lab host (the compute VM) reaches it on the controller's management address, and sees the same image
    const r = await lab.execOk('compute-1', ['curl', '-sS', '-f', `${g.url}/v2/images?name=lab-probe`], {
      timeoutMs: 30_000,
    })
    const listed = JSON.parse(r.stdout) as { images: { id: string; status: string }[] }
    assert.deepEqual(
      listed.images.map((i) => [i.id, i.status]),
      [[img.id, 'active']],
    )
    const data = await lab.execOk('compute-1', ['curl', '-sS', '-f', `${g.url}/v2/images/${img.id}/file`])
    assert.equal(data.stdout, 'glance in the lab\n')

    // configuration, database and image file live in the controller host (its overlays), the log in the lab dir
    assert.match(
      readFileSync(lab.backingPath('controller-1', '/etc/glance/glance-api.conf'), 'utf8'),
      /bind_port = 9292/,
    )
    assert.ok(existsSync(lab.backingPath('controller-1', '/var/lib/glance/glance.sqlite')))
    assert.equal(
      readFileSync(lab.backingPath('controller-1', `/var/lib/glance/images/${img.id}`), 'utf8'),
      'glance in the lab\n',
    )
    assert.ok(!existsSync(`/var/lib/glance/images/${img.id}`), 'nothing lands on the machine')
    assert.equal(g.logFile, join(lab.hostDir('controller-1'), 'log', 'glance-api.log'))
    assert.match(readFileSync(g.logFile, 'utf8'), /PUT \/v2\/images\/[0-9a-f-]+\/file/)
  } finally {
    await lab.down()
  }
  assert.ok(!isAlive(pid), 'glance-api stopped with the lab')
})

test('a glance service that cannot start fails the lab start with the reason', async (t) => {
  let missing: string | undefined
  try {
    await preflight()
  } catch (e) {
    missing = (e as Error).message
  }
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
