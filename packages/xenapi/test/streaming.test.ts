/**
 * Disk streaming against the simulator's real `/import_raw_vdi` and `/export_raw_vdi` handlers: raw and VHD round
 * trips compared by SHA-256 (the VHD produced by qemu-img), an upload of unknown length (chunked raw), progress
 * reporting, and the task's error when the transfer fails.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { XenAPIError, connect, type Xapi } from '../src/index.js'

const PASSWORD = 'disk-Passw0rd'
const MiB = 1024 * 1024

let server: SimServer
let xapi: Xapi
let dir: string

before(async () => {
  server = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  xapi = await connect({ url: server.url, password: PASSWORD, transport: 'json-rpc' })
  dir = mkdtempSync(join(tmpdir(), 'xenapi-disk-'))
})
after(async () => {
  await xapi?.close()
  await server?.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Test data: random blocks with holes of zeros in between (what sparse handling must get right). */
function diskImage(size: number): Buffer {
  const b = Buffer.alloc(size)
  for (let off = 0; off < size; off += 2 * MiB) randomBytes(Math.min(MiB, size - off)).copy(b, off)
  b.write('xenstack disk image', size - 64)
  return b
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of r) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

async function newVdi(size: number, name: string): Promise<string> {
  const pool = Object.values(await xapi.pool.get_all_records())[0]!
  return xapi.VDI.create({
    name_label: name,
    name_description: '',
    SR: pool.default_SR,
    virtual_size: size,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  } as never)
}

describe('VDI import and export', () => {
  test('raw round trip from a file: same SHA-256, progress up to the full size, no task left behind', async () => {
    const size = 8 * MiB
    const data = diskImage(size)
    const file = join(dir, 'disk.raw')
    writeFileSync(file, data)
    const vdi = await newVdi(size, 'raw round trip')
    const progress: number[] = []
    await xapi.importVdi(vdi, createReadStream(file), { format: 'raw', onProgress: (sent) => progress.push(sent) })
    assert.equal(progress.at(-1), size)
    const out = await readAll(await xapi.exportVdi(vdi, { format: 'raw' }))
    assert.equal(out.length, size)
    assert.equal(sha256(out), sha256(data))
    const tasks = Object.values(await xapi.task.get_all_records())
    assert.ok(!tasks.some((t) => t.name_label.startsWith('xenstack importVdi')), 'import task destroyed')
  })

  test('raw upload of unknown length goes chunked', async () => {
    const size = 3 * MiB
    const data = diskImage(size)
    const vdi = await newVdi(size, 'chunked')
    const chunks = [data.subarray(0, MiB), data.subarray(MiB, 2 * MiB), data.subarray(2 * MiB)]
    await xapi.importVdi(vdi, Readable.from(chunks), { format: 'raw' })
    assert.equal(sha256(await readAll(await xapi.exportVdi(vdi))), sha256(data))
  })

  test('VHD made by qemu-img imports to the same contents, and exports as a VHD qemu-img reads back', async (t) => {
    if (!requirePrerequisite(t, 'qemu-img', () => hasExecutable('qemu-img'))) return
    const size = 8 * MiB
    const data = diskImage(size)
    const raw = join(dir, 'src.raw')
    const vhd = join(dir, 'src.vhd')
    writeFileSync(raw, data)
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic', raw, vhd])
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', vhd], { encoding: 'utf8' })) as {
      'virtual-size': number
    }
    const vsize = info['virtual-size']
    assert.ok(vsize >= size)
    const vdi = await newVdi(vsize, 'vhd round trip')
    await xapi.importVdi(vdi, createReadStream(vhd), { format: 'vhd' })
    const back = await readAll(await xapi.exportVdi(vdi, { format: 'raw' }))
    assert.equal(sha256(back.subarray(0, size)), sha256(data))
    assert.ok(back.subarray(size).every((x) => x === 0))

    const exported = join(dir, 'out.vhd')
    writeFileSync(exported, await readAll(await xapi.exportVdi(vdi, { format: 'vhd' })))
    const reread = join(dir, 'out.raw')
    execFileSync('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', exported, reread])
    const rr = execFileSync('sh', ['-c', `head -c ${size} ${JSON.stringify(reread)} | sha256sum`], { encoding: 'utf8' })
    assert.equal(rr.split(' ')[0], sha256(data))
  })

  test('an expired session is renewed before a transfer', async () => {
    const size = MiB
    const data = diskImage(size)
    const vdi = await newVdi(size, 'after expiry')
    const sim = server.pools[0]!.sim
    assert.ok((await sim.call('session.logout', [xapi.sessionId])).ok)
    await xapi.importVdi(vdi, data, { format: 'raw' })
    assert.ok((await sim.call('session.logout', [xapi.sessionId])).ok)
    assert.equal(sha256(await readAll(await xapi.exportVdi(vdi))), sha256(data))
  })

  test('a failed import rejects with the task error (XenAPIError), not a bare HTTP status', async () => {
    const vdi = await newVdi(MiB, 'too small')
    await assert.rejects(xapi.importVdi(vdi, diskImage(2 * MiB), { format: 'raw' }), (e: unknown) => {
      assert.ok(e instanceof XenAPIError, String(e))
      assert.equal(e.code, 'VDI_IO_ERROR')
      return true
    })
    await assert.rejects(xapi.importVdi(vdi, Buffer.from('not a vhd at all'), { format: 'vhd' }), XenAPIError)
    await assert.rejects(xapi.exportVdi('OpaqueRef:no-such-vdi'), (e: unknown) => {
      assert.ok(e instanceof XenAPIError, String(e))
      assert.equal(e.code, 'HANDLE_INVALID')
      return true
    })
  })
})

describe('VDI transfers redirected to another pool member', () => {
  test('import and export follow a 302 from the master to the member holding the disk', async () => {
    const two = await startSimServer({ hosts: 2, vms: 0, password: PASSWORD })
    const pool = two.pools[0]!
    const member = [...pool.addresses.values()].find((a) => a !== '127.0.0.1')!
    const port = new URL(two.url).port
    const redirected: string[] = []
    const served: string[] = []
    const remove = pool.sim.http.use((req, res, ctx) => {
      if (!/^\/(import|export)_raw_vdi/.test(ctx.url.pathname)) return false
      if (ctx.host === pool.sim.master) {
        redirected.push(`${req.method} ${ctx.url.pathname}`)
        res.writeHead(302, { location: `http://${member}:${port}${ctx.url.pathname}${ctx.url.search}` }).end()
        return true
      }
      served.push(`${req.method} ${ctx.url.pathname}`)
      return false
    })
    const x = await connect({ url: two.url, password: PASSWORD, transport: 'json-rpc' })
    try {
      const sr = Object.values(await x.pool.get_all_records())[0]!.default_SR
      const vdi = await x.VDI.create({
        name_label: 'moved',
        SR: sr,
        virtual_size: 2 * MiB,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      } as never)
      const data = diskImage(2 * MiB)
      await x.importVdi(vdi, Readable.from([data]), { format: 'raw', size: data.length })
      const back = await readAll(await x.exportVdi(vdi))
      assert.equal(sha256(back), sha256(data))
      assert.ok(
        redirected.includes('PUT /import_raw_vdi') && redirected.includes('GET /export_raw_vdi'),
        redirected.join(),
      )
      assert.ok(served.includes('PUT /import_raw_vdi') && served.includes('GET /export_raw_vdi'), served.join())
      assert.equal(x.url, two.url, 'RPC calls stay on the master')
    } finally {
      remove()
      await x.close()
      await two.close()
    }
  })
})
