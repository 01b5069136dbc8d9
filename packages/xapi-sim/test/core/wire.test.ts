/** Wire protocol (§1–§4): transports, envelopes, encoding, dispatch errors, as raw bytes over HTTP. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start, xmlCall, PASSWORD } from './rpc.js'

test('XML-RPC on any POST path: compact envelope, untagged ints, text/xml, CORS', async (t) => {
  const r = await start()
  t.after(() => r.close())
  for (const path of ['/', '/xmlrpc', '/RPC2', '/anything']) {
    const res = await r.post(path, xmlCall('session.login_with_password', ['root', PASSWORD]))
    assert.equal(res.status, 200)
    assert.equal(res.type, 'text/xml')
    assert.equal(res.headers.get('access-control-allow-origin'), '*')
    assert.match(
      res.body,
      /^<\?xml version="1.0"\?><methodResponse><params><param><value><struct><member><name>Status<\/name><value>Success<\/value><\/member><member><name>Value<\/name><value>OpaqueRef:[0-9a-f-]{36}<\/value><\/member><\/struct><\/value><\/param><\/params><\/methodResponse>$/,
    )
  }
  const session = await r.login()
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  const res = await r.post('/', xmlCall('VM.get_memory_static_max', [session, vm]))
  assert.ok(res.body.includes('<name>Value</name><value>1073741824</value>'), res.body)
  const rec = await r.post('/', xmlCall('VM.get_record', [session, vm]))
  assert.ok(rec.body.includes('<member><name>VCPUs_max</name><value>1</value></member>'), 'int field untagged')
  assert.ok(rec.body.includes('<member><name>is_a_template</name><value><boolean>0</boolean></value></member>'))
  assert.ok(rec.body.includes('<member><name>name_description</name><value></value></member>'), 'empty string')
  assert.ok(/<name>snapshot_time<\/name><value><dateTime.iso8601>19700101T00:00:00Z<\/dateTime.iso8601>/.test(rec.body))
  assert.ok(!/>\s+</.test(rec.body), 'compact XML')
  assert.ok(!rec.body.includes('<i8>') && !rec.body.includes('<string>'))
})

test('XML-RPC failure envelope and HTTP 500 for malformed bodies', async (t) => {
  const r = await start()
  t.after(() => r.close())
  const res = await r.post('/', xmlCall('session.login_with_password', ['root', 'wrong']))
  assert.equal(
    res.body,
    '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>SESSION_AUTHENTICATION_FAILED</value><value>root</value><value>Authentication failure</value></data></array></value></member></struct></value></param></params></methodResponse>',
  )
  const bad = await r.post('/', '<methodCall><methodName>x</methodName><params><param>')
  assert.equal(bad.status, 500)
  const badJson = await r.post('/jsonrpc', '{not json')
  assert.equal(badJson.status, 500)
  const noId = await r.post('/jsonrpc', JSON.stringify({ jsonrpc: '2.0', method: 'system.listMethods', params: [] }))
  assert.equal(noId.status, 500)
  const nullId = await r.post('/jsonrpc', JSON.stringify({ method: 'system.listMethods', params: [], id: null }))
  assert.equal(nullId.status, 500)
})

test('JSON-RPC 1.0 and 2.0 envelopes, ids, numbers', async (t) => {
  const r = await start()
  t.after(() => r.close())
  const v1 = await r.post(
    '/jsonrpc',
    JSON.stringify({ method: 'session.login_with_password', params: ['root', PASSWORD], id: 'a' }),
  )
  assert.equal(v1.type, 'application/json')
  assert.match(v1.body, /^\{"result":"OpaqueRef:[0-9a-f-]{36}","error":null,"id":"a"\}$/)
  const f1 = await r.post(
    '/jsonrpc',
    JSON.stringify({ method: 'session.login_with_password', params: ['root', 'x'], id: 3 }),
  )
  assert.equal(
    f1.body,
    '{"result":null,"error":["SESSION_AUTHENTICATION_FAILED","root","Authentication failure"],"id":3}',
  )
  const f2 = await r.post(
    '/jsonrpc',
    JSON.stringify({ jsonrpc: '2.0', method: 'session.login_with_password', params: ['root', 'x'], id: 0 }),
  )
  assert.equal(
    f2.body,
    '{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_AUTHENTICATION_FAILED","data":["root","Authentication failure"]},"id":0}',
  )
  const s = JSON.parse(v1.body).result as string
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  const rec = await r.json('VM.get_record', [s, vm])
  assert.equal(rec.jsonrpc, '2.0')
  assert.equal(Object.keys(rec).join(','), 'jsonrpc,result,id')
  const vmRec = rec.result as Record<string, unknown>
  assert.equal(vmRec.memory_static_max, 1073741824)
  assert.equal(vmRec.VCPUs_max, 1)
  assert.equal(vmRec.snapshot_time, '19700101T00:00:00Z')
  // A session from XML-RPC works over JSON-RPC.
  const xs = await r.post('/', xmlCall('session.login_with_password', ['root', PASSWORD]))
  const xref = /OpaqueRef:[0-9a-f-]{36}/.exec(xs.body)![0]
  assert.ok(!(await r.json('pool.get_all', [xref])).error)
  // 2.0 without params
  const lm = await r.post('/jsonrpc', JSON.stringify({ jsonrpc: '2.0', method: 'system.listMethods', id: 1 }))
  assert.ok((JSON.parse(lm.body).result as string[]).includes('VM.get_all_records'))
})

test('system.listMethods raw without a session; system.isAlive', async (t) => {
  const r = await start()
  t.after(() => r.close())
  const res = await r.post('/', '<methodCall><methodName>system.listMethods</methodName><params></params></methodCall>')
  assert.ok(res.body.startsWith('<?xml version="1.0"?><methodResponse><params><param><value><array><data><value>'))
  assert.ok(res.body.includes('<value>VM.get_all_records</value>'))
  assert.ok(!res.body.includes('Async.'))
  assert.ok(!res.body.includes('<name>Status</name>'))
  const alive = await r.json('system.isAlive', ['ping'])
  assert.equal(alive.result, 'ping')
})

test('dispatch errors: unknown method, parameter counts, defaults, aliases, Async', async (t) => {
  const r = await start()
  t.after(() => r.close())
  const s = await r.login()
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  assert.deepEqual(await r.err('VM.no_such_thing'), ['MESSAGE_METHOD_UNKNOWN', 'VM.no_such_thing'])
  assert.deepEqual(await r.err('VM.start', vm), ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.start', '3', '1'])
  assert.deepEqual((await r.json('VM.get_record', [])).error, {
    code: 1,
    message: 'MESSAGE_PARAMETER_COUNT_MISMATCH',
    data: ['VM.get_record', '1', '-1'],
  })
  // login with 2, 3 and 4 parameters; 5 is too many (expected counts only non-defaulted params)
  for (const ps of [
    ['root', PASSWORD],
    ['root', PASSWORD, '2.1'],
    ['root', PASSWORD, '1.1', 'test'],
  ]) {
    assert.ok(!(await r.json('session.login_with_password', ps)).error)
  }
  const five = await r.json('session.login_with_password', ['root', PASSWORD, '1.1', 'x', 'y'])
  assert.deepEqual(five.error, {
    code: 1,
    message: 'MESSAGE_PARAMETER_COUNT_MISMATCH',
    data: ['session.login_with_password', '2', '5'],
  })
  // VM.snapshot's ignore_vdis may be omitted
  const snap = await r.ok<string>('VM.snapshot', vm, 'snap')
  assert.match(snap, /^OpaqueRef:/)
  // Class_message alias; not with Async.
  assert.equal((await r.json('VM_get_name_label', [s, vm])).result, 'vm-1')
  assert.deepEqual(await r.err('Async.VM_clone', vm, 'x'), ['MESSAGE_METHOD_UNKNOWN', 'Async.VM_clone'])
  // no async getters / session / event / task
  assert.deepEqual(await r.err('Async.VM.get_name_label', vm), ['INTERNAL_ERROR', 'No async mode for this operation'])
  assert.deepEqual(await r.err('Async.task.create', 'a', 'b'), ['INTERNAL_ERROR', 'No async mode for this operation'])
  // SESSION_INVALID
  const bogus = 'OpaqueRef:00000000-0000-0000-0000-000000000000'
  assert.deepEqual((await r.json('VM.get_all', [bogus])).error, { code: 1, message: 'SESSION_INVALID', data: [bogus] })
  // ints accepted as strings (XML-RPC style) and numbers
  const vdi = r.sim.db.refs('VDI')[0]
  const res = await r.post('/', xmlCall('VDI.resize', [s, vdi, '21474836480']))
  assert.ok(res.body.includes('Success'), res.body)
  assert.equal(r.sim.db.get(vdi)!.virtual_size, 21474836480)
})

test('record encoding agrees byte for byte with @xenstack/xapi-wire for every class', async () => {
  const { encodeValue } = await import('@xenstack/xapi-wire')
  const { createSimulator } = await import('../../src/index.js')
  const sim = createSimulator({ pool: { hosts: 2, vms: 2 } })
  for (const c of sim.model.classes) {
    if (sim.db.count(c.name) === 0) sim.db.create(c.name)
    for (const [, rec] of sim.db.all(c.name)) {
      const type = { kind: 'record' as const, class: c.name }
      assert.equal(sim.encoders.encode(rec, type), encodeValue(rec, type), c.name)
    }
  }
})

test('doubles go out as XAPI formats them (%.16g: 1e-05, 1e+16, 0.1)', async () => {
  const { formatDouble } = await import('../../src/xml.js')
  assert.equal(formatDouble(1e-5), '1e-05')
  assert.equal(formatDouble(1e16), '1e+16')
  assert.equal(formatDouble(0.1), '0.1')
  assert.equal(formatDouble(0.1 + 0.2), '0.3')
  assert.equal(formatDouble(-2.5e-7), '-2.5e-07')
})
