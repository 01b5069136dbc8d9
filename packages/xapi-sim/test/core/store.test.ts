/** The datamodel-driven store and implicit messages (§4.3, §4.4), through JSON-RPC and in-process. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Database, model, parseQuery, evalQuery } from '../../src/index.js'
import { start } from './rpc.js'

test('every class has its full field set with defaults; refs and uuids', () => {
  const db = new Database()
  const m = model()
  assert.equal(m.classes.length, 67)
  for (const c of m.classes) {
    const ref = db.create(c.name)
    const rec = db.get(ref)!
    assert.match(ref, /^OpaqueRef:[0-9a-f-]{36}$/)
    assert.deepEqual(Object.keys(rec).sort(), c.fields.map((f) => f.name).sort(), c.name)
  }
  const vm = db.get(db.create('VM'))!
  assert.equal(vm.power_state, 'Halted')
  assert.equal(vm.snapshot_of, 'OpaqueRef:NULL')
  assert.equal(vm.snapshot_time, '19700101T00:00:00Z')
  assert.deepEqual(vm.other_config, {})
  const uuids = new Set<string>()
  let n = 0
  for (const c of m.classes)
    for (const [ref, r] of db.all(c.name)) {
      n++
      uuids.add(db.row(ref)!.uuid)
      if (c.fieldByName.has('uuid')) assert.equal(r.uuid, db.row(ref)!.uuid)
    }
  assert.equal(uuids.size, n, 'uuids unique across classes')
})

test('query language of get_all_records_where', () => {
  const rec = { name_label: 'x', IP: '10.0.0.1', VLAN: -1, management: true }
  const q = (s: string) => evalQuery(parseQuery(s), rec, 'OpaqueRef:a')
  assert.ok(q('field "name__label"="x"'))
  assert.ok(q('field "IP" = "10.0.0.1" and field "management"="true"'))
  assert.ok(!q('field "IP"="10.0.0.2"'))
  assert.ok(q('field "IP"="10.0.0.2" or field "VLAN"="-1"'))
  assert.ok(q('not (field "IP"="10.0.0.2") and true'))
  assert.throws(() => parseQuery('field "x" = '), /INVALID_VALUE/)
})

test('implicit messages over the wire', async (t) => {
  const r = await start({ hosts: 2, vms: 2 })
  t.after(() => r.close())
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
  const uuid = r.sim.db.get(vm)!.uuid as string
  assert.equal(await r.ok('VM.get_by_uuid', uuid), vm)
  assert.deepEqual(await r.err('VM.get_by_uuid', 'nope'), ['UUID_INVALID', 'VM', 'nope'])
  assert.deepEqual(await r.ok('VM.get_by_name_label', 'vm-1'), [vm])
  assert.deepEqual(await r.err('VM.get_record', 'OpaqueRef:bad'), ['HANDLE_INVALID', 'VM', 'OpaqueRef:bad'])
  // a ref of another class is invalid too
  const host = r.sim.master
  assert.deepEqual(await r.err('VM.get_name_label', host), ['HANDLE_INVALID', 'VM', host])
  const all = await r.ok<Record<string, Record<string, unknown>>>('VM.get_all_records')
  assert.equal(Object.keys(all).length, r.sim.db.count('VM'))
  assert.deepEqual(Object.keys(all[vm]), Object.keys(all[Object.keys(all)[0]]), 'uniform records')
  assert.deepEqual(
    Object.keys(await r.ok('VM.get_all_records_where', 'field "name__label"="vm-2" or field "name__label"="vm-1"'))
      .length,
    2,
  )
  const pifs = await r.ok<Record<string, { host: string }>>('PIF.get_all_records_where', 'field "IP"="127.0.0.2"')
  assert.equal(Object.keys(pifs).length, 1)
  assert.equal(
    Object.values(pifs)[0].host,
    r.sim.db.find('host', (h) => h.address === '127.0.0.2'),
  )
  // setters, map and set modifiers
  await r.ok('VM.set_name_label', vm, 'renamed')
  assert.equal(await r.ok('VM.get_name_label', vm), 'renamed')
  assert.deepEqual(await r.err('VM.set_power_state', vm, 'Running'), ['MESSAGE_METHOD_UNKNOWN', 'VM.set_power_state'])
  await r.ok('VM.add_to_other_config', vm, 'k', 'v')
  assert.deepEqual(await r.err('VM.add_to_other_config', vm, 'k', 'w'), [
    'MAP_DUPLICATE_KEY',
    'VM',
    'other_config',
    uuid,
    'k',
  ])
  await r.ok('VM.remove_from_other_config', vm, 'k')
  await r.ok('VM.remove_from_other_config', vm, 'absent')
  assert.deepEqual(await r.ok('VM.get_other_config', vm), {})
  await r.ok('VM.add_tags', vm, 'a')
  await r.ok('VM.add_tags', vm, 'b')
  await r.ok('VM.add_tags', vm, 'a')
  await r.ok('VM.remove_tags', vm, 'b')
  assert.deepEqual(await r.ok('VM.get_tags', vm), ['a'])
  assert.deepEqual(await r.err('VM.set_actions_after_crash', vm, 'explode'), [
    'INVALID_VALUE',
    'actions_after_crash',
    'explode',
  ])
  // session has no get_all_records
  assert.deepEqual(await r.err('session.get_all_records'), ['MESSAGE_METHOD_UNKNOWN', 'session.get_all_records'])
})

test('constructors take a record, reject missing required fields; destroy keeps references consistent', async (t) => {
  const r = await start({ hosts: 1, vms: [{ name: 'v', powerState: 'Halted' }] })
  t.after(() => r.close())
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const net = r.sim.db.find('network', (n) => n.bridge === 'xenbr0')!
  const err = await r.err('VIF.create', { device: '1', network: net, VM: vm, MAC: '' })
  assert.equal(err[0], 'FIELD_TYPE_ERROR')
  const vif = await r.ok<string>('VIF.create', {
    device: '1',
    network: net,
    VM: vm,
    MAC: '',
    MTU: '1500',
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  const rec = await r.ok<Record<string, unknown>>('VIF.get_record', vif)
  assert.match(rec.MAC as string, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
  assert.equal(rec.MAC_autogenerated, true)
  assert.equal(rec.MTU, 1500)
  assert.ok((await r.ok<string[]>('VM.get_VIFs', vm)).includes(vif))
  assert.ok((await r.ok<string[]>('network.get_VIFs', net)).includes(vif))
  await r.ok('VIF.destroy', vif)
  assert.ok(!(await r.ok<string[]>('VM.get_VIFs', vm)).includes(vif))
  assert.ok(!(await r.ok<string[]>('network.get_VIFs', net)).includes(vif))
  assert.deepEqual(await r.err('VIF.get_record', vif), ['HANDLE_INVALID', 'VIF', vif])
  // a generated constructor of another class
  const n = await r.ok<string>('network.create', { name_label: 'n1', other_config: {} })
  assert.match((await r.ok<string>('network.get_bridge', n)) as string, /^xapi\d+$/)
})

test('change hooks report adds, field-level mods and deletes', () => {
  const db = new Database()
  const seen: string[] = []
  db.on('change', (c) => seen.push(`${c.op} ${c.cls} ${(c.fields ?? []).join(',')}`))
  const vm = db.create('VM')
  const vif = db.create('VIF', { VM: vm })
  db.update(vif, { currently_attached: true })
  db.update(vm, { xenstore_data: { a: 'b' } })
  db.destroy(vif)
  assert.deepEqual(seen, [
    'add VM ',
    'add VIF ',
    'mod VM VIFs',
    'mod VIF currently_attached',
    'mod VM xenstore_data',
    'mod VM VIFs',
    'del VIF ',
  ])
})

test('batch(): changes made in a bulk load are still reported to tokens taken before it', () => {
  const db = new Database()
  const before = db.generation
  const a = db.create('VM')
  db.batch(() => {
    db.update(a, { name_label: 'changed' })
    for (let i = 0; i < 10; i++) db.create('VM', { name_label: `b${i}` })
  })
  const ch = db.changesSince(before, () => true)!
  assert.equal(ch.length, 11)
  assert.equal(ch.filter((c) => c.op === 'add').length, 11)
  const mid = db.changesSince(db.row(a)!.born, () => true)!
  assert.deepEqual(
    mid.map((c) => c.op),
    ['mod', ...Array(10).fill('add')],
  )
})

test('restoring rows parent-first does not list a child twice', () => {
  const src = new Database()
  const vm = src.create('VM')
  const vifs = Array.from({ length: 40 }, () => src.create('VIF', { VM: vm }))
  const rows = [vm, ...vifs].map((ref) => ({ ref, cls: src.row(ref)!.cls.name, rec: { ...src.get(ref)! } }))
  const dst = new Database()
  for (const r of rows) dst.create(r.cls, r.rec, { ref: r.ref })
  assert.deepEqual(dst.get(vm)!.VIFs, vifs)
  const again = new Database()
  again.batch(() => {
    for (const r of rows) again.create(r.cls, r.rec, { ref: r.ref, restore: true })
  })
  assert.deepEqual(again.get(vm)!.VIFs, vifs)
})

test('a generated pool: full records, unique v4-shaped uuids, VMs spread over hosts, per-VM maps stay per-VM', async (t) => {
  // The builder shares frozen map values (platform, HVM_boot_params, guest metrics' os_version) between VMs and
  // builds uuids from cached pieces; this checks what a client sees is unchanged by that.
  const r = await start({ hosts: 7, vms: 30 })
  t.after(() => r.close())
  const db = r.sim.db
  const uuids = new Set<string>()
  let rows = 0
  for (const c of db.model.classes)
    for (const [ref, rec] of db.all(c.name)) {
      rows++
      const uuid = db.row(ref)!.uuid
      assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `${c.name} ${ref}`)
      assert.match(ref, /^OpaqueRef:[0-9a-f-]{36}$/)
      uuids.add(uuid)
      assert.equal(Object.keys(rec).length, c.fields.length, `${c.name} ${ref} has every field`)
    }
  assert.equal(uuids.size, rows, 'uuids unique')
  const vms = db.where('VM', (v) => !v.is_a_template && !v.is_control_domain)
  assert.equal(vms.length, 30)
  // Round-robin: VM i runs on host i % 7, with its own metrics and guest metrics.
  const hosts = db.refs('host')
  const perHost = new Map<string, number>()
  for (const vm of vms) {
    const rec = db.get(vm)!
    perHost.set(rec.resident_on as string, (perHost.get(rec.resident_on as string) ?? 0) + 1)
    assert.equal(rec.affinity, rec.resident_on)
    assert.ok(db.has('VM_metrics', rec.metrics), `${rec.name_label as string} metrics`)
    assert.ok(db.has('VM_guest_metrics', rec.guest_metrics), `${rec.name_label as string} guest metrics`)
    assert.ok((db.get(rec.resident_on as string)!.resident_VMs as string[]).includes(vm))
  }
  assert.deepEqual([...perHost.values()].sort(), [4, 4, 4, 4, 4, 5, 5])
  assert.equal(new Set([...perHost.keys()].filter((h) => hosts.includes(h))).size, 7)
  // A map change on one VM (over the wire) leaves the others' maps as built.
  const [a, b] = vms
  await r.ok('VM.add_to_platform', a, 'cores-per-socket', '2')
  await r.ok('VM.remove_from_HVM_boot_params', a, 'order')
  assert.equal((await r.ok<Record<string, string>>('VM.get_platform', a))['cores-per-socket'], '2')
  assert.deepEqual(await r.ok('VM.get_platform', b), { acpi: '1', apic: 'true', pae: 'true', nx: 'true' })
  assert.deepEqual(await r.ok('VM.get_HVM_boot_params', a), {})
  assert.deepEqual(await r.ok('VM.get_HVM_boot_params', b), { order: 'dc' })
})
