/**
 * The record caches (Row.json/jsonBytes, Row.xml/xmlBytes): a get_record answer written from cached bytes, and
 * event.from/get_all_records built from cached text, must be exactly what a fresh serialisation of the record gives —
 * for every class, over both transports and both HTTP paths, before and after changes (set, add_to, remove_from,
 * create, destroy), whichever form the cache held before.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeSuccessResponse, type XapiType } from '@xenstack/xapi-wire'
import { start, xmlCall, type Running } from './rpc.js'

/** The exact JSON-RPC 2.0 answer a fresh serialisation gives. */
function expectedJson(rec: unknown, id: number): string {
  return JSON.stringify({ jsonrpc: '2.0', result: rec, id })
}

/** Calls get_record over JSON-RPC 2.0 and 1.0 and XML-RPC; asserts each answer equals a fresh serialisation. */
async function assertRecord(r: Running, session: string, cls: string, ref: string, what: string): Promise<void> {
  const rec = r.sim.db.get(ref)
  assert.ok(rec, `${what}: ${cls} ${ref} exists`)
  const method = `${cls}.get_record`
  const v2 = await r.post('/jsonrpc', JSON.stringify({ jsonrpc: '2.0', method, params: [session, ref], id: 41 }))
  assert.equal(v2.body, expectedJson(rec, 41), `${what}: ${method} JSON-RPC 2.0`)
  assert.equal(v2.headers.get('content-length'), String(Buffer.byteLength(v2.body)), `${what}: content-length`)
  const v1 = await r.post('/jsonrpc', JSON.stringify({ method, params: [session, ref], id: 'x-ü' }))
  assert.equal(v1.body, JSON.stringify({ result: rec, error: null, id: 'x-ü' }), `${what}: ${method} JSON-RPC 1.0`)
  const xml = await r.post('/', xmlCall(method, [session, ref]))
  const type = { kind: 'record', class: r.sim.db.row(ref)!.cls.name } as XapiType
  // The simulator starts its answers with an XML declaration, as XAPI does; xapi-wire's encoder leaves it out.
  assert.equal(xml.body, '<?xml version="1.0"?>' + encodeSuccessResponse(rec, type), `${what}: ${method} XML-RPC`)
  assert.equal(xml.type, 'text/xml')
}

/** A name with characters of 1 to 4 UTF-8 bytes and XML/JSON specials, different each time. */
function randomName(i: number): string {
  const pieces = ['a', 'é', '☃', '𝄞', '<&>', '"\\', '\t', 'Z']
  let s = `n${i}-`
  for (let k = 0; k < 12; k++) s += pieces[(i * 7 + k * 13 + Math.floor(Math.random() * 8)) % pieces.length]
  return s
}

test('get_record from the record caches equals a fresh serialisation for every class, before and after changes', async (t) => {
  const r = await start({ hosts: 2, vms: 3 })
  t.after(() => r.close())
  const s = await r.login()
  let classes = 0
  for (const c of r.sim.model.classes) {
    if (!r.sim.messages.message(`${c.name}.get_record`)) continue
    const refs = r.sim.db.refs(c.name)
    if (refs.length === 0) continue
    classes++
    // Twice: the first answer fills the cache, the second is written from it.
    for (const ref of refs.slice(0, 3)) {
      await assertRecord(r, s, c.name, ref, 'cold')
      await assertRecord(r, s, c.name, ref, 'warm')
    }
  }
  assert.ok(classes >= 15, `records of ${classes} classes checked`)

  const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  await assertRecord(r, s, 'VM', vm, 'before changes')
  for (let i = 0; i < 5; i++) {
    await r.ok('VM.set_name_label', vm, randomName(i))
    await assertRecord(r, s, 'VM', vm, `after set_name_label ${i}`)
    await r.ok('VM.add_to_other_config', vm, `k${i}`, randomName(i + 100))
    await assertRecord(r, s, 'VM', vm, `after add_to_other_config ${i}`)
  }
  await r.ok('VM.remove_from_other_config', vm, 'k2')
  await assertRecord(r, s, 'VM', vm, 'after remove_from_other_config')

  // The cache in text form (event.from, get_all_records) and in bytes (get_record) give the same, in either order.
  const ev = (await r.ok('event.from', ['vm'], '', 0.1)) as { events: { ref: string; snapshot: unknown }[] }
  assert.deepEqual(ev.events.find((e) => e.ref === vm)?.snapshot, JSON.parse(JSON.stringify(r.sim.db.get(vm))))
  const all = await r.post(
    '/jsonrpc',
    JSON.stringify({ jsonrpc: '2.0', method: 'VM.get_all_records', params: [s], id: 1 }),
  )
  const allRecords: Record<string, unknown> = {}
  for (const ref of r.sim.db.refs('VM')) allRecords[ref] = r.sim.db.get(ref)
  assert.equal(all.body, expectedJson(allRecords, 1), 'get_all_records after get_record')
  await assertRecord(r, s, 'VM', vm, 'after event.from and get_all_records')
  const o = await r.sim.call('event.from', [s, ['vm'], '', 0.1])
  assert.ok(o.ok && o.json)
  assert.equal(o.json(), JSON.stringify(o.value), 'event.from text built from rows cached as bytes')

  // A new VIF changes its VM's VIFs (the parent's cache is renewed); destroying it changes it back.
  const network = r.sim.db.refs('network')[0]
  const vif = await r.ok<string>('VIF.create', {
    device: '7',
    network,
    VM: vm,
    MAC: '',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  await assertRecord(r, s, 'VIF', vif, 'new VIF')
  await assertRecord(r, s, 'VM', vm, 'VM with a new VIF')
  assert.ok((r.sim.db.get(vm)!.VIFs as string[]).includes(vif))
  await r.ok('VIF.destroy', vif)
  await assertRecord(r, s, 'VM', vm, 'VM after its VIF was destroyed')
  assert.ok(!(r.sim.db.get(vm)!.VIFs as string[]).includes(vif))
  assert.deepEqual(await r.err('VIF.get_record', vif), ['HANDLE_INVALID', 'VIF', vif])

  // node:http's path writes the same bytes.
  r.sim.http.leanRpc = false
  try {
    await r.ok('VM.set_name_description', vm, randomName(99))
    await assertRecord(r, s, 'VM', vm, 'through node:http, cold')
    await assertRecord(r, s, 'VM', vm, 'through node:http, warm')
  } finally {
    r.sim.http.leanRpc = true
  }
})
