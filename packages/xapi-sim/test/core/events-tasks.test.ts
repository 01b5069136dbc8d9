/** Events (§7), tasks (§6), pool_update/pool_patch and messages. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start } from './rpc.js'

interface Batch {
  events: {
    id: string
    timestamp: string
    class: string
    operation: string
    ref: string
    snapshot?: Record<string, unknown>
  }[]
  valid_ref_counts: Record<string, number>
  token: string
}

test('event.from: token format, add/mod/del coalescing, valid_ref_counts, blocking and timeout', async (t) => {
  const r = await start({ hosts: 1, vms: 1 })
  t.after(() => r.close())
  const all = await r.ok<Batch>('event.from', ['*'], '', 0.1)
  assert.match(all.token, /^\d{20},\d{20}$/)
  assert.ok(all.events.every((e) => e.operation === 'add' && e.snapshot))
  assert.equal(all.events.filter((e) => e.class === 'vm').length, r.sim.db.count('VM'))
  assert.ok(!all.events.some((e) => e.class === 'session'), 'sessions never produce events')
  assert.equal(Object.keys(all.valid_ref_counts).length, 67)
  assert.equal(all.valid_ref_counts.vm, r.sim.db.count('VM'))
  assert.equal(all.valid_ref_counts.task, 0)
  // coalescing: a VM created then modified → one add; an existing one modified twice → one mod; created+destroyed → nothing
  const tok = all.token
  const existing = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  await r.ok('VM.set_name_label', existing, 'a')
  await r.ok('VM.set_name_label', existing, 'b')
  const tpl = (await r.ok<string[]>('VM.get_by_name_label', 'CentOS 7'))[0]
  const fresh = await r.ok<string>('VM.clone', tpl, 'fresh')
  await r.ok('VM.set_name_description', fresh, 'changed')
  const gone = await r.ok<string>('VM.clone', tpl, 'gone')
  await r.ok('VM.destroy', gone)
  const b = await r.ok<Batch>('event.from', ['vm'], tok, 1)
  const byRef = new Map(b.events.map((e) => [e.ref, e]))
  assert.equal(b.events.filter((e) => e.ref === existing).length, 1)
  assert.equal(byRef.get(existing)!.operation, 'mod')
  assert.equal(byRef.get(existing)!.snapshot!.name_label, 'b')
  assert.equal(byRef.get(fresh)!.operation, 'add')
  assert.equal(byRef.get(fresh)!.snapshot!.name_description, 'changed')
  assert.equal(byRef.has(gone), false)
  assert.ok(b.events.every((e) => e.class === 'vm'))
  // deletion of an object that existed before the token: del without snapshot
  await r.ok('VM.destroy', fresh)
  const d = await r.ok<Batch>('event.from', ['vm'], b.token, 1)
  assert.deepEqual(
    d.events.map((e) => [e.operation, e.ref, 'snapshot' in e]),
    [['del', fresh, false]],
  )
  // blocking until a change, then returning it
  const waiting = r.ok<Batch>('event.from', ['vm/' + existing], d.token, 5)
  await new Promise((res) => setTimeout(res, 30))
  await r.ok('VM.add_to_xenstore_data', existing, 'vm-data/k', 'v')
  const w = await waiting
  assert.equal(w.events.length, 1)
  assert.deepEqual(w.events[0].snapshot!.xenstore_data, { 'vm-data/k': 'v' })
  // timeout: empty events and a fresh token, not before the time is up
  const t0 = Date.now()
  const empty = await r.ok<Batch>('event.from', ['vm'], w.token, 0.2)
  assert.deepEqual(empty.events, [])
  assert.ok(Date.now() - t0 >= 150)
  assert.deepEqual(await r.err('event.from', ['vm'], 'garbage', 0.1), ['EVENT_FROM_TOKEN_PARSE_FAILURE', 'garbage'])
  assert.deepEqual(await r.err('event.from', ['v m'], '', 0.1), ['EVENT_SUBSCRIPTION_PARSE_FAILURE', 'v m'])
})

test('event.from over XML-RPC: valid_ref_counts as <i4>, snapshot typed', async (t) => {
  const r = await start({ hosts: 1 })
  t.after(() => r.close())
  const s = await r.login()
  const res = await r.post(
    '/',
    `<methodCall><methodName>event.from</methodName><params><param><value>${s}</value></param><param><value><array><data><value>pool</value></data></array></value></param><param><value></value></param><param><value><double>1.0</double></value></param></params></methodCall>`,
  )
  assert.ok(res.body.includes('<member><name>pool</name><value><i4>1</i4></value></member>'))
  assert.ok(res.body.includes('<member><name>class</name><value>pool</value></member>'))
  assert.ok(res.body.includes('<member><name>operation</name><value>add</value></member>'))
  assert.ok(/<member><name>token<\/name><value>\d{20},\d{20}<\/value><\/member>/.test(res.body))
  assert.ok(res.body.includes('<name>ha_host_failures_to_tolerate</name><value>0</value>'), 'int untagged in snapshot')
})

test('event.inject returns a token that reports the object at once; barrier-style pool other_config mod', async (t) => {
  const r = await start({ hosts: 1 })
  t.after(() => r.close())
  const pool = r.sim.pool
  const tok = await r.ok<string>('event.inject', 'pool', pool)
  assert.match(tok, /^\d{20},\d{20}$/)
  const b = await r.ok<Batch>('event.from', ['pool'], tok, 1)
  assert.deepEqual(
    b.events.map((e) => [e.operation, e.ref]),
    [['mod', pool]],
  )
  assert.deepEqual(await r.err('event.inject', 'pool', 'OpaqueRef:x'), ['HANDLE_INVALID', 'pool', 'OpaqueRef:x'])
  const waiting = r.ok<Batch>('event.from', ['pool'], b.token, 5)
  await r.ok('pool.add_to_other_config', pool, 'xo:barrier:1', 'now')
  const w = await waiting
  assert.equal(w.events[0].operation, 'mod')
  assert.equal((w.events[0].snapshot!.other_config as Record<string, string>)['xo:barrier:1'], 'now')
})

test('task-only subscriptions; legacy register/next/unregister; get_current_id', async (t) => {
  const r = await start({ hosts: 1 }, { eventBatchMs: 50 })
  t.after(() => r.close())
  const s = await r.login()
  const first = await r.ok<Batch>('event.from', ['task'], '', 0.05)
  const task = await r.ok<string>('task.create', 'label', 'desc')
  const b = await r.ok<Batch>('event.from', ['task'], first.token, 1)
  assert.deepEqual(
    b.events.map((e) => [e.class, e.operation, e.ref]),
    [['task', 'add', task]],
  )
  assert.equal(b.valid_ref_counts.task, 1)
  assert.equal(typeof (await r.ok('event.get_current_id')), 'number')
  assert.deepEqual((await r.json('event.next', [s])).error, { code: 1, message: 'SESSION_NOT_REGISTERED', data: [s] })
  await r.ok('event.register', ['vm'])
  await r.json('event.register', [s, ['vm']])
  const next = r.json('event.next', [s])
  const tpl = r.sim.db.find('VM', (v) => v.is_a_template === true)!
  await r.ok('VM.set_name_description', tpl, 'x')
  const evs = (await next).result as Batch['events']
  assert.ok(evs.some((e) => e.ref === tpl && e.operation === 'mod'))
  await r.json('event.unregister', [s, ['vm']])
})

test('tasks: create, progress, cancel, destroy, GC of completed tasks', async (t) => {
  const r = await start({ hosts: 1 }, { tasks: { maxTasks: 5 } })
  t.after(() => r.close())
  const task = await r.ok<string>('task.create', 'l', 'd')
  const rec = await r.ok<Record<string, unknown>>('task.get_record', task)
  assert.equal(rec.status, 'pending')
  assert.deepEqual(rec.allowed_operations, ['cancel'])
  await r.ok('task.set_progress', task, 0.5)
  assert.equal(await r.ok('task.get_progress', task), 0.5)
  await r.ok('task.cancel', task)
  const c = await r.ok<Record<string, unknown>>('task.get_record', task)
  assert.equal(c.status, 'cancelled')
  assert.deepEqual(c.error_info, ['TASK_CANCELLED', task])
  assert.equal((await r.err('task.cancel', task))[0], 'OPERATION_NOT_ALLOWED')
  await r.ok('task.destroy', task)
  // GC: only the newest completed tasks survive beyond maxTasks
  const done: string[] = []
  for (let i = 0; i < 8; i++) {
    const tk = await r.ok<string>('task.create', `t${i}`, '')
    await r.ok('task.set_status', tk, 'success')
    done.push(tk)
  }
  assert.ok(r.sim.db.count('task') <= 5)
  assert.equal(r.sim.db.has('task', done[7]), true)
  assert.equal(r.sim.db.has('task', done[0]), false)
})

test('pool_update and pool_patch: precheck/apply, UPDATE_ALREADY_APPLIED, hotfix XS65ESP1013 on 6.5.0', async (t) => {
  const r = await start({
    hosts: [{ version: '6.5.0' }, { version: '6.5.0' }],
    patches: [{ name: 'XS65ESP1013', appliedOn: [0] }],
    updates: [{ name: 'XS71E001' }],
  })
  t.after(() => r.close())
  const [h1, h2] = r.sim.db.refs('host')
  const patchNames = async (h: string) => {
    const hps = await r.ok<string[]>('host.get_patches', h)
    return Promise.all(hps.map((hp) => r.ok<string>('host_patch.get_name_label', hp)))
  }
  assert.deepEqual(await patchNames(h1), ['XS65ESP1013'])
  assert.deepEqual(await patchNames(h2), [])
  const patch = (await r.ok<string[]>('pool_patch.get_by_name_label', 'XS65ESP1013'))[0]
  assert.deepEqual(await r.err('pool_patch.apply', patch, h1), ['PATCH_ALREADY_APPLIED', patch])
  await r.ok('pool_patch.apply', patch, h2)
  assert.deepEqual(await patchNames(h2), ['XS65ESP1013'])
  assert.equal(await r.ok('pool_patch.get_pool_applied', patch), true)
  const upd = (await r.ok<string[]>('pool_update.get_by_name_label', 'XS71E001'))[0]
  assert.equal(await r.ok('pool_update.precheck', upd, h1), 'ok')
  await r.ok('pool_update.apply', upd, h1)
  assert.deepEqual(await r.err('pool_update.apply', upd, h1), ['UPDATE_ALREADY_APPLIED', upd])
  assert.deepEqual(await r.err('pool_update.precheck', upd, h1), ['UPDATE_ALREADY_APPLIED', upd])
  assert.deepEqual(await r.ok('host.get_updates', h1), [upd])
  await r.ok('pool_update.pool_apply', upd)
  assert.deepEqual([...(await r.ok<string[]>('pool_update.get_hosts', upd))].sort(), [h1, h2].sort())
  // introduce from a VDI
  const sr = r.sim.db.find('SR', (s) => s.type === 'ext')!
  const vdi = await r.ok<string>('VDI.create', {
    name_label: 'XS71E002',
    SR: sr,
    virtual_size: 1024,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  })
  const u2 = await r.ok<string>('pool_update.introduce', vdi)
  assert.equal(await r.ok('pool_update.get_name_label', u2), 'XS71E002')
  assert.equal((await r.err('pool_update.introduce', vdi))[0], 'UPDATE_ALREADY_EXISTS')
})

test('messages: create, get_all_records, get_since, destroy; add/del events', async (t) => {
  const r = await start({ hosts: 1 })
  t.after(() => r.close())
  const hostUuid = r.sim.db.get(r.sim.master)!.uuid as string
  const tok = (await r.ok<Batch>('event.from', ['message'], '', 0.01)).token
  const before = '20000101T00:00:00Z'
  const m = await r.ok<string>('message.create', 'HA_POOL_OVERCOMMITTED', 3, 'Host', hostUuid, 'body')
  const recs = await r.ok<Record<string, Record<string, unknown>>>('message.get_all_records')
  assert.equal(recs[m].name, 'HA_POOL_OVERCOMMITTED')
  assert.equal(recs[m].priority, 3)
  assert.equal(Object.keys(await r.ok<object>('message.get_since', before)).length, 1)
  assert.equal(Object.keys(await r.ok<object>('message.get_since', '29990101T00:00:00Z')).length, 0)
  assert.deepEqual(await r.err('message.create', 'X', 1, 'VM', 'no-such-uuid', ''), [
    'UUID_INVALID',
    'VM',
    'no-such-uuid',
  ])
  const b = await r.ok<Batch>('event.from', ['message'], tok, 1)
  assert.deepEqual(
    b.events.map((e) => [e.class, e.operation]),
    [['message', 'add']],
  )
  await r.ok('message.destroy', m)
  const d = await r.ok<Batch>('event.from', ['message'], b.token, 1)
  assert.deepEqual(
    d.events.map((e) => [e.class, e.operation]),
    [['message', 'del']],
  )
})

test('close() releases blocked event.from calls', async () => {
  const r = await start({ hosts: 1 })
  const s = r.sim.login()
  const t0 = Date.now()
  const pending = r.sim.call('event.from', [s, ['vm'], '99999999999999999999,00000000000000000000', 60])
  await r.close()
  const o = await pending
  assert.ok(o.ok)
  assert.ok(Date.now() - t0 < 30_000)
})

test('cancelling an Async task before or while it runs: TASK_CANCELLED, the operation does not happen', async (t) => {
  const r = await start({ hosts: 1, vms: [{ name: 'v', powerState: 'Halted' }] })
  t.after(() => r.close())
  const s = r.sim.login()
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const started = await r.sim.call('Async.VM.start', [s, vm, false, false])
  assert.ok(started.ok)
  const task = started.value as string
  assert.ok((await r.sim.call('task.cancel', [s, task])).ok)
  // a task already running is `cancelling` until its operation reaches a cancellation point: wait for the end
  const deadline = Date.now() + 30_000
  while (['pending', 'cancelling'].includes(String(r.sim.db.get(task)!.status))) {
    assert.ok(Date.now() < deadline, `task ${task} still ${String(r.sim.db.get(task)!.status)} 30 s after cancel`)
    await new Promise((res) => setTimeout(res, 10))
  }
  const rec = r.sim.db.get(task)!
  assert.equal(rec.status, 'cancelled')
  assert.deepEqual(rec.error_info, ['TASK_CANCELLED', task])
  assert.equal(r.sim.db.get(vm)!.power_state, 'Halted')
  assert.deepEqual(r.sim.db.get(vm)!.current_operations, {})
})

test('event.from and get_all_records JSON built from cached rows equals JSON.stringify of the value', async (t) => {
  const r = await start({ hosts: 2, vms: 3 })
  t.after(() => r.close())
  const s = r.sim.login()
  for (const [method, params] of [
    ['event.from', [s, ['*'], '', 0.1]],
    ['VM.get_all_records', [s]],
    ['VM.get_record', [s, r.sim.db.refs('VM')[0]]],
  ] as const) {
    const o = await r.sim.call(method, [...params])
    assert.ok(o.ok && o.json, method)
    assert.equal(o.json(), JSON.stringify(o.value), method)
  }
})
