import { before, after, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import {
  GlanceClient,
  OpenStackHttpError,
  endpointFromCatalog,
  glanceInstalled,
  serviceMessageOf,
  startStandaloneGlance,
  tokensUrl,
  type StandaloneGlance,
} from '../../src/glance/index.js'

// one real Glance (python3-glance, keystone-less) for the file, on a kernel-chosen port
const tmp = scratchDirs()
let glance: StandaloneGlance | undefined
before(async () => {
  if (glanceInstalled()) glance = await startStandaloneGlance(tmp('xs-glance-'))
})
after(async () => {
  await glance?.stop()
})

function need(t: import('node:test').TestContext): GlanceClient | undefined {
  if (!requirePrerequisite(t, 'python3-glance', glanceInstalled)) return undefined
  return new GlanceClient({ endpoint: glance!.url })
}

test('create with properties, streamed upload from a file: size, md5 checksum and sha512 os_hash_value are what Glance computed', async (t) => {
  const c = need(t)
  if (!c) return
  const data = Buffer.alloc(3 * 1024 * 1024 + 17)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff
  const file = join(tmp('xs-img-'), 'disk.vhd')
  writeFileSync(file, data)
  const img = await c.createImage({
    name: 'client-upload',
    container_format: 'ovf',
    disk_format: 'vhd',
    visibility: 'public',
    vm_mode: 'xen',
  })
  assert.equal(img.status, 'queued')
  const seen: number[] = []
  const r = await c.uploadImage(img.id, file, { onProgress: (n) => seen.push(n) })
  assert.equal(r.size, data.length)
  assert.equal(r.checksum, createHash('md5').update(data).digest('hex'))
  assert.equal(r.osHashValue, createHash('sha512').update(data).digest('hex'))
  assert.equal(seen.at(-1), data.length)
  const got = await c.getImage(img.id)
  assert.equal(got.status, 'active')
  assert.equal(got.visibility, 'public')
  assert.equal(got.container_format, 'ovf')
  assert.equal(got.disk_format, 'vhd')
  assert.equal(got.vm_mode, 'xen')
  assert.equal(got.checksum, r.checksum)
  assert.equal(got.os_hash_algo, 'sha512')
  assert.equal(got.os_hash_value, r.osHashValue)
  // the bytes come back unchanged
  const chunks: Buffer[] = []
  for await (const ch of await c.downloadImage(img.id)) chunks.push(ch as Buffer)
  assert.ok(Buffer.concat(chunks).equals(data))
})

test('list: filters by name and property, follows pagination links without duplicates', async (t) => {
  const c = need(t)
  if (!c) return
  const ids: string[] = []
  for (let i = 0; i < 5; i++)
    ids.push((await c.createImage({ name: 'paged', disk_format: 'raw', container_format: 'bare', batch: 'p1' })).id)
  await c.createImage({ name: 'other', disk_format: 'raw', container_format: 'bare', batch: 'p1' })
  const firstPage = await c.listPage({ name: 'paged' }, { limit: 2 })
  assert.equal(firstPage.images.length, 2)
  assert.ok(firstPage.next, 'Glance gives a next link when more images match')
  const all = await c.listImages({ name: 'paged' }, 2)
  assert.deepEqual(all.map((i) => i.id).sort(), ids.sort())
  assert.equal((await c.listImages({ batch: 'p1' }, 4)).length, 6)
})

test('update sets, replaces and removes properties; delete removes the image', async (t) => {
  const c = need(t)
  if (!c) return
  const img = await c.createImage({ name: 'patched', vm_mode: 'xen' })
  const u = await c.updateImage(img.id, { set: { vm_mode: 'hvm', os_distro: 'cirros' } })
  assert.equal(u.vm_mode, 'hvm')
  assert.equal(u.os_distro, 'cirros')
  const r = await c.updateImage(img.id, { remove: ['os_distro'] })
  assert.ok(!('os_distro' in r))
  await c.deleteImage(img.id)
  assert.equal(await c.findImage(img.id), undefined)
})

test('errors name the method, the URL and what Glance said', async (t) => {
  const c = need(t)
  if (!c) return
  await assert.rejects(c.getImage('00000000-0000-4000-8000-000000000000'), (e: Error) => {
    assert.ok(e instanceof OpenStackHttpError)
    assert.equal(e.status, 404)
    assert.equal(
      e.message,
      `GET ${glance!.url}/v2/images/00000000-0000-4000-8000-000000000000 answered HTTP 404: No image found with ID 00000000-0000-4000-8000-000000000000`,
    )
    return true
  })
  // a schema error: the reason, without webob's schema dump
  await assert.rejects(
    c.createImage({ name: 'bad', disk_format: 'floppy' }),
    /^OpenStackHttpError: POST http:\/\/127\.0\.0\.1:\d+\/v2\/images answered HTTP 400: Provided object does not match schema 'image': 'floppy' is not one of \[.*'vhd'.*\]$/,
  )
  // nothing listening
  const dead = new GlanceClient({ endpoint: 'http://127.0.0.1:9' })
  await assert.rejects(
    dead.listImages(),
    /^OpenStackHttpError: GET http:\/\/127\.0\.0\.1:9\/v2\/images: connect ECONNREFUSED/,
  )
})

test('a start not ready by its deadline fails naming what did not answer and the log tail, and leaves no glance-api', async (t) => {
  if (!requirePrerequisite(t, 'python3-glance', glanceInstalled)) return
  const dir = tmp('xs-glance-late-')
  await assert.rejects(startStandaloneGlance(dir, { readyTimeoutMs: 0 }), /readyTimeoutMs must be a positive number/)
  // 1 ms: the deadline passes while the launcher binds or the API imports (either step may be the one named)
  await assert.rejects(startStandaloneGlance(dir, { readyTimeoutMs: 1 }), (e: Error) => {
    const where = dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    assert.match(
      e.message,
      new RegExp(
        `^glance (launcher in ${where} bound no port within 1 ms|-api in ${where}: http://127\\.0\\.0\\.1:\\d+/healthcheck not ready after 1 ms \\(last status )`,
      ),
    )
    assert.match(e.message, new RegExp(`end of ${where}/glance-api\\.log:\\n`))
    return true
  })
  // the failed start stopped its server: no process runs with this directory's configuration
  const running = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dir}/glance-api.conf`)
      } catch {
        return false
      }
    })
  assert.deepEqual(running, [], `glance-api processes left running for ${dir}`)
})

test('Keystone v3: tokens URL from the auth URL; the image endpoint from the catalog by interface and region', () => {
  assert.equal(tokensUrl('http://k:5000/v3'), 'http://k:5000/v3/auth/tokens')
  assert.equal(tokensUrl('http://k:5000/'), 'http://k:5000/v3/auth/tokens')
  assert.throws(() => tokensUrl('http://k:5000/v2.0'), /Keystone v2\.0; xenstack speaks Keystone v3/)
  const catalog = [
    { type: 'identity', endpoints: [{ interface: 'public', region_id: 'RegionOne', url: 'http://k:5000/v3' }] },
    {
      type: 'image',
      endpoints: [
        { interface: 'public', region_id: 'RegionOne', url: 'https://pub:9292' },
        { interface: 'internal', region_id: 'RegionOne', url: 'http://int:9292' },
        { interface: 'public', region_id: 'RegionTwo', url: 'https://pub2:9292' },
      ],
    },
  ]
  assert.equal(endpointFromCatalog(catalog, 'image'), 'https://pub:9292')
  assert.equal(endpointFromCatalog(catalog, 'image', 'internal'), 'http://int:9292')
  assert.equal(endpointFromCatalog(catalog, 'image', 'public', 'RegionTwo'), 'https://pub2:9292')
  assert.throws(
    () => endpointFromCatalog(catalog, 'image', 'admin'),
    /no admin "image" endpoint \(catalog: identity\(public@RegionOne\) image\(public@RegionOne,internal@RegionOne,public@RegionTwo\)\)/,
  )
  assert.throws(() => new GlanceClient({}), /give an endpoint URL or Keystone credentials/)
  assert.equal(
    serviceMessageOf('{"error":{"message":"The request you have made requires authentication.","code":401}}'),
    'The request you have made requires authentication.',
  )
  assert.equal(
    serviceMessageOf(
      '<html><head><title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1>Bad token</body></html>',
    ),
    '401 Unauthorized Bad token',
  )
})
