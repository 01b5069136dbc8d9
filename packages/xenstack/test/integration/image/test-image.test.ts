import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import {
  GlanceClient,
  glanceInstalled,
  startStandaloneGlance,
  type StandaloneGlance,
} from '../../../src/glance/index.js'
import { natives } from '../../../src/integration/image/index.js'
import { replaceTestImage, testImagePayload, testImageStatus } from '../../../src/integration/image/test-image.js'
import { parseOpenrc, targetFromOpenrc } from '../../../src/integration/image/glance-target.js'
import { buildTestVm } from '../../../src/integration/image/testvm.js'
import { LocalExecutor } from '../../../src/node/index.js'
import { Secret } from '../../../src/node/secret.js'
import { handlerContext } from '../task-context.js'

const tmp = scratchDirs()
let glance: StandaloneGlance | undefined
before(async () => {
  process.env.XENSTACK_HOME = tmp('xs-home-')
  if (glanceInstalled()) glance = await startStandaloneGlance(tmp('xs-glance-task-'))
})
after(async () => {
  await glance?.stop()
})

function ready(t: import('node:test').TestContext): boolean {
  if (!requirePrerequisite(t, 'python3-glance', glanceInstalled)) return false
  return requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))
}

async function runTask(lines: string[] = []) {
  const ctx = handlerContext(
    'controller-1',
    'xenserver-test-image',
    { exec: new LocalExecutor({ name: 'controller-1' }), nodeData: { glance: { url: glance!.url } } },
    lines,
  )
  return (await natives['xenserver.test-image'].run!(ctx)) ?? []
}

const client = () => new GlanceClient({ endpoint: glance!.url })

/** A TestVM as an older deployment left it: an OVF/VHD image of other content. */
async function oldTestVm(c: GlanceClient) {
  const img = await c.createImage({ name: 'TestVM', container_format: 'ovf', disk_format: 'vhd', vm_mode: 'hvm' })
  await c.uploadImage(img.id, Buffer.from('an old cirros'))
  return img
}

async function clear() {
  const c = client()
  for (const i of await c.listImages()) await c.deleteImage(i.id)
}

test('xenserver.test-image: creates TestVM (ovf/vhd, public, vm_mode=xen, our checksum); leaves other images alone; a second run changes nothing', async (t) => {
  if (!ready(t)) return
  await clear()
  const c = client()
  const other = await c.createImage({ name: 'TestVM2', disk_format: 'raw', container_format: 'bare' })
  const lower = await c.createImage({ name: 'testvm', disk_format: 'raw', container_format: 'bare' })
  const first = await runTask()
  assert.equal(first.length, 1)
  assert.equal(first[0].result, 'changed')
  const tvm = await c.listImages({ name: 'TestVM' })
  assert.equal(tvm.length, 1)
  const img = await buildTestVm(process.env.XENSTACK_HOME!)
  assert.equal(tvm[0].status, 'active')
  assert.equal(tvm[0].container_format, 'ovf')
  assert.equal(tvm[0].disk_format, 'vhd')
  assert.equal(tvm[0].visibility, 'public')
  assert.equal(tvm[0].vm_mode, 'xen')
  assert.equal(tvm[0].checksum, img.tgzMd5)
  // the bytes in Glance are xenstack's TestVM
  const chunks: Buffer[] = []
  for await (const ch of await c.downloadImage(tvm[0].id)) chunks.push(ch as Buffer)
  assert.ok(Buffer.concat(chunks).equals(readFileSync(img.tgzPath)))

  const lines: string[] = []
  const second = await runTask(lines)
  assert.deepEqual(second, [{ resource: 'glance image TestVM', result: 'unchanged' }])
  assert.match(lines.join('\n'), /TestVM [0-9a-f-]+ is up to date/)
  assert.deepEqual(
    (await c.listImages({ name: 'TestVM' })).map((i) => i.id),
    [tvm[0].id],
  )
  assert.deepEqual((await testImageStatus(c, await testImagePayload(img))).problems, [])
  assert.ok(await c.findImage(other.id), 'TestVM2 untouched')
  assert.ok(await c.findImage(lower.id), 'an image named testvm (other case) untouched')
})

test('xenserver.test-image: a wrong TestVM and a second one are replaced by exactly one right TestVM', async (t) => {
  if (!ready(t)) return
  await clear()
  const c = client()
  const a = await oldTestVm(c)
  const b = await c.createImage({ name: 'TestVM', container_format: 'bare', disk_format: 'raw' })
  const keep = await c.createImage({ name: 'TestVM2' })
  const payload = await testImagePayload(await buildTestVm(process.env.XENSTACK_HOME!))
  const before = await testImageStatus(c, payload)
  assert.equal(before.problems[0], `2 images are named TestVM: ${before.images.map((i) => i.id).join(', ')}`)
  assert.ok(before.problems.some((p) => p.startsWith(`TestVM ${a.id}: `) && p.includes('vm_mode "hvm" (want xen)')))
  const changes = await runTask()
  assert.equal(changes.filter((x) => x.result === 'changed').length, 3, JSON.stringify(changes)) // 1 created, 2 deleted
  const now = await c.listImages({ name: 'TestVM' })
  assert.equal(now.length, 1)
  assert.ok(![a.id, b.id].includes(now[0].id))
  assert.equal(now[0].vm_mode, 'xen')
  assert.ok(await c.findImage(keep.id))
  assert.deepEqual(await runTask(), [{ resource: 'glance image TestVM', result: 'unchanged' }])
})

test('xenserver.test-image: with a right TestVM and a stray second one, the right one is kept', async (t) => {
  if (!ready(t)) return
  await clear()
  await runTask()
  const c = client()
  const [right] = await c.listImages({ name: 'TestVM' })
  const stray = await c.createImage({ name: 'TestVM' })
  const changes = await runTask()
  assert.deepEqual(
    changes.map((x) => [x.resource, x.result]),
    [[`glance image TestVM ${stray.id}`, 'changed']],
  )
  assert.deepEqual(
    (await c.listImages({ name: 'TestVM' })).map((i) => i.id),
    [right.id],
  )
})

test('Glance target from /root/openrc: Keystone v3 credentials (password kept secret) or a direct image URL', async () => {
  const env = parseOpenrc(
    [
      '#!/bin/sh',
      "export OS_AUTH_URL='http://192.168.0.2:5000/v3'",
      'export OS_USERNAME=admin',
      'export OS_PASSWORD="s3cr3t-pw"',
      'export OS_TENANT_NAME=admin',
      'export OS_ENDPOINT_TYPE=internalURL',
      'export OS_REGION_NAME=RegionOne',
    ].join('\n'),
  )
  const k = await targetFromOpenrc(env, '/root/openrc on controller-1', () => Promise.reject(new Error('no')))
  assert.equal(k.options.keystone?.authUrl, 'http://192.168.0.2:5000/v3')
  assert.equal(k.options.keystone?.projectName, 'admin')
  assert.equal(k.options.interface, 'internal')
  assert.equal(k.options.region, 'RegionOne')
  assert.ok(k.options.keystone?.password instanceof Secret)
  assert.equal(k.options.keystone?.password.reveal(), 's3cr3t-pw')
  assert.doesNotMatch(JSON.stringify(k), /s3cr3t-pw/)
  const d = await targetFromOpenrc({ OS_IMAGE_URL: 'http://g:9292' }, 'x', () => Promise.reject(new Error('no')))
  assert.equal(d.options.endpoint, 'http://g:9292')
  await assert.rejects(
    targetFromOpenrc({ OS_AUTH_URL: 'http://k/v3', OS_USERNAME: 'a' }, '/root/openrc on c', () =>
      Promise.reject(new Error('x')),
    ),
    /\/root\/openrc on c: OS_AUTH_URL is set but OS_PASSWORD, OS_PROJECT_NAME \(or OS_TENANT_NAME\) is missing/,
  )
  await assert.rejects(
    targetFromOpenrc({ OS_IMAGE_URL: 'https://g', OS_CACERT: '/etc/ssl/ca.pem' }, 'rc', () =>
      Promise.reject(new Error('ENOENT')),
    ),
    /rc: cannot read OS_CACERT \/etc\/ssl\/ca\.pem: ENOENT/,
  )
})

test('replaceTestImage: a failed upload removes the half-made image and leaves the old TestVM in place', async (t) => {
  if (!ready(t)) return
  await clear()
  const c = client()
  const old = await oldTestVm(c)
  const img = await buildTestVm(process.env.XENSTACK_HOME!)
  const payload = await testImagePayload(img)
  // the file vanishes under the upload: the stream fails mid-request
  await assert.rejects(
    replaceTestImage(c, { ...payload, path: `${img.tgzPath}.gone` }),
    /ENOENT|socket hang up|aborted/,
  )
  // the bytes are not the ones announced: Glance's checksum differs, the image is refused
  await assert.rejects(
    replaceTestImage(c, { ...payload, checksum: '0'.repeat(32) }),
    /uploaded .*testvm\.vhd\.tgz with md5 [0-9a-f]{32}, expected 0{32}: the file changed/,
  )
  assert.deepEqual(
    (await c.listImages({ name: 'TestVM' })).map((i) => i.id),
    [old.id],
    'only the old TestVM: both new images were deleted',
  )
})
