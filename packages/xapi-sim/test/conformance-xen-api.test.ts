/**
 * Conformance: Xen Orchestra's `xen-api` client (4.7.6, unmodified) against the simulator, over JSON-RPC and XML-RPC.
 * What it must be able to do is what Xen Orchestra does on connect and in daily use (xapi-protocol.md §13.1).
 */
import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { openSync, readFileSync, writeSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { createClient, type Xapi } from 'xen-api'
import { requirePrerequisite, hasExecutable } from '@xenstack/testkit'
import { startSimServer, type SimServer } from '../src/server.js'
import { withTempDir } from './helpers.js'

const PASSWORD = 'conformance-' + randomBytes(4).toString('hex')
const MiB = 1024 * 1024
let server: SimServer
const clients: Xapi[] = []

before(async () => {
  server = await startSimServer({ password: PASSWORD })
})
after(async () => {
  for (const c of clients) await c.disconnect().catch(() => undefined)
  await server.close()
})

function client(transport: 'json-rpc' | 'xml-rpc', url = server.url, watchEvents: boolean | string[] = true): Xapi {
  const x = createClient({ url, auth: { user: 'root', password: PASSWORD }, transport, watchEvents, debounce: 20 })
  clients.push(x)
  return x
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')
async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
/** Waits until `pred(id, object)` holds for an object event of `kind`, failing after a generous bound. */
function waitFor(
  x: Xapi,
  kind: 'add' | 'update' | 'remove',
  pred: (id: string, o: Record<string, any> | undefined) => boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${kind} event seen`)), 20_000)
    const on = (items: Record<string, any>) => {
      for (const [id, o] of Object.entries(items))
        if (pred(id, o ?? undefined)) {
          clearTimeout(timer)
          x.objects.removeListener(kind, on)
          return resolve()
        }
    }
    x.objects.on(kind, on)
  })
}

for (const transport of ['json-rpc', 'xml-rpc'] as const) {
  test(`xen-api over ${transport}: connects and fetches every type`, async () => {
    const x = client(transport)
    await x.connect()
    assert.equal(x.status, 'connected')
    await x.objectsFetched
    const byType = new Map<string, number>()
    for (const o of Object.values(x.objects.all)) byType.set(o.$type, (byType.get(o.$type) ?? 0) + 1)
    const sim = server.pools[0].sim
    // Every class the simulator lists with get_all_records is fetched, with every live object of it.
    const listed = sim.messages.listMethods().filter((m) => m.endsWith('.get_all_records'))
    assert.ok(listed.length > 50, `expected most of the 67 classes to list get_all_records, got ${listed.length}`)
    for (const m of listed) {
      const cls = m.slice(0, -'.get_all_records'.length)
      if (cls === 'task' || cls === 'session') continue // tasks come and go with the client's own calls
      assert.equal(byType.get(cls) ?? 0, sim.db.count(cls), `${cls}: cached objects vs live rows`)
    }
    assert.ok((byType.get('VM') ?? 0) >= 4, 'VMs (templates, control domains, compute VMs) are fetched')
    assert.equal(x.pool.$type, 'pool')
    assert.ok(typeof x.pool.master === 'string' && x.pool.master.startsWith('OpaqueRef:'))
  })

  test(`xen-api over ${transport}: sees add, mod and del made by another session`, async () => {
    const x = client(transport)
    await x.connect()
    await x.objectsFetched
    const other = client(transport, server.url, false)
    await other.connect()
    const label = `net-${transport}-${randomBytes(3).toString('hex')}`
    const added = waitFor(x, 'add', (_, o) => o?.$type === 'network' && o.name_label === label)
    const ref: string = await other.call('network.create', {
      name_label: label,
      name_description: '',
      MTU: 1500,
      other_config: {},
    })
    await added
    const uuid = (await other.call('network.get_uuid', ref)) as string
    assert.equal(x.getObject(ref).$id, uuid, 'the watcher caches the new network under its uuid')
    const modified = waitFor(x, 'update', (_, o) => o?.$ref === ref && o.name_description === 'changed')
    await other.call('network.set_name_description', ref, 'changed')
    await modified
    const removed = waitFor(x, 'remove', (id) => id === uuid)
    await other.call('network.destroy', ref)
    await removed
    assert.equal(
      Object.values(x.objects.all).some((o) => o.$ref === ref),
      false,
    )
  })

  test(`xen-api over ${transport}: callAsync VM.clone, VM.start, VM.clean_shutdown with task watching`, async () => {
    const x = client(transport)
    await x.connect()
    await x.objectsFetched
    const template = Object.values(x.objects.all).find((o) => o.$type === 'VM' && o.is_default_template === true)
    assert.ok(template, 'a default template')
    const clone: string = await x.callAsync('VM.clone', template.$ref, `clone-${transport}`)
    assert.match(clone, /^OpaqueRef:/)
    await x.call('VM.set_is_a_template', clone, false)
    assert.equal(await x.callAsync('VM.start', clone, false, false), '')
    assert.equal(await x.call('VM.get_power_state', clone), 'Running')
    await x.callAsync('VM.clean_shutdown', clone)
    assert.equal(await x.call('VM.get_power_state', clone), 'Halted')
    // A failing async call rejects with XAPI's error vector.
    await assert.rejects(x.callAsync('VM.clean_shutdown', clone), (e: any) => {
      assert.equal(e.code, 'VM_BAD_POWER_STATE')
      assert.equal(e.params[0], clone)
      return true
    })
    await x.call('VM.destroy', clone)
  })

  test(`xen-api over ${transport}: barrier() returns once its pool change is seen`, async () => {
    const x = client(transport)
    await x.connect()
    await x.objectsFetched
    await x.barrier()
    await x.barrier(x.pool.$ref)
    const oc = (await x.call('pool.get_other_config', x.pool.$ref)) as Record<string, string>
    assert.equal(
      Object.keys(oc).some((k) => k.startsWith('xo:barrier:')),
      false,
      'barrier keys are removed',
    )
  })

  test(`xen-api over ${transport}: pointed at a member, follows HOST_IS_SLAVE to the master`, async () => {
    const member = [...server.pools[0].addresses].find(([, a]) => a !== '127.0.0.1')
    assert.ok(member, 'the default pool has a member on its own loopback address')
    const port = new URL(server.url).port
    const x = client(transport, `http://${member[1]}:${port}`)
    await x.connect()
    assert.equal(x._url.hostname, '127.0.0.1')
    await x.objectsFetched
    assert.equal(x.status, 'connected')
  })
}

test('xen-api survives injected faults: SESSION_INVALID (re-login and retry) and a reset read-only call (retried)', async () => {
  const x = client('json-rpc', server.url, false)
  await x.connect()
  const faults = server.pools[0].faults
  const vm = server.pools[0].sim.db.refs('VM')[0]
  const si = faults.add({ kind: 'SESSION_INVALID', method: 'VM.get_name_label', count: 1 })
  const before = x.sessionId
  assert.equal(typeof (await x.call('VM.get_name_label', vm)), 'string')
  assert.notEqual(x.sessionId, before, 'xen-api logged in again after SESSION_INVALID')
  const rst = faults.add({ kind: 'reset', method: 'VM.get_uuid', count: 1 })
  assert.equal(await x.call('VM.get_uuid', vm), server.pools[0].sim.db.get(vm)!.uuid)
  const counters = Object.fromEntries(faults.counters().map((c) => [c.id, c.injected]))
  assert.deepEqual([counters[si], counters[rst]], [1, 1])
  faults.remove(si)
  faults.remove(rst)
})

test('xen-api: putResource to /import_raw_vdi and getResource from /export_raw_vdi round-trip (raw and vhd)', async (t) => {
  const x = client('json-rpc')
  await x.connect()
  await x.objectsFetched
  const sr = Object.values(x.objects.all).find((o) => o.$type === 'SR' && o.type === 'ext')!
  const size = 6 * MiB
  const newVdi = (name: string): Promise<string> =>
    x.call('VDI.create', {
      name_label: name,
      name_description: '',
      SR: sr.$ref,
      virtual_size: size,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
    })
  const data = Buffer.alloc(size)
  randomBytes(MiB).copy(data, 0)
  randomBytes(4096).copy(data, 5 * MiB)

  const vdi = await newVdi('raw round trip')
  await x.putResource(data, '/import_raw_vdi/', { query: { format: 'raw', vdi } })
  assert.ok(Number(await x.call('VDI.get_physical_utilisation', vdi)) < size, 'stored sparse')
  const res = await x.getResource('/export_raw_vdi/', { query: { format: 'raw', vdi } })
  assert.equal(res.statusCode, 200)
  const back = await collect(res.body)
  await res.task
  assert.equal(sha256(back), sha256(data))
  // A stream of known length: xen-api first sends its empty redirect-probe PUT (no task), then the real one. Its
  // zeros overwrite the data imported above.
  const ones = Buffer.alloc(size, 0)
  ones.fill(1, 2 * MiB, 3 * MiB)
  await x.putResource(Object.assign(Readable.from([ones]), { length: size }), '/import_raw_vdi/', {
    query: { format: 'raw', vdi },
  })
  const again = await x.getResource('/export_raw_vdi/', { query: { format: 'raw', vdi } })
  assert.equal(sha256(await collect(again.body)), sha256(ones))
  await again.task

  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  await withTempDir('xsim-xoapi-', async (dir) => {
    // A dynamic VHD written by qemu-img goes in; the raw export equals the original disk.
    const raw = join(dir, 'disk.raw')
    writeFileSync(raw, data)
    const vhd = join(dir, 'disk.vhd')
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'force_size=on', raw, vhd])
    const vdi2 = await newVdi('vhd round trip')
    await x.putResource(readFileSync(vhd), '/import_raw_vdi/', { query: { format: 'vhd', vdi: vdi2 } })
    const r2 = await x.getResource('/export_raw_vdi/', { query: { format: 'raw', vdi: vdi2 } })
    assert.equal(sha256(await collect(r2.body)), sha256(data))
    await r2.task
    // And the VHD export is a disk qemu-img reads as the same contents.
    const r3 = await x.getResource('/export_raw_vdi/', { query: { format: 'vhd', vdi: vdi2 } })
    assert.equal(r3.headers['content-type'], 'application/vhd')
    const out = join(dir, 'export.vhd')
    const fd = openSync(out, 'w')
    writeSync(fd, await collect(r3.body))
    closeSync(fd)
    await r3.task
    execFileSync('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', out, raw])
  })
})
