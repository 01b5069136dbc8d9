import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { requirePrerequisite } from '@xenstack/testkit'
import {
  classes,
  datamodelCounts,
  getClass,
  getMessage,
  getEnum,
  getField,
  constructorFields,
  requiredParamCount,
  freshDefault,
  formatType,
  wireMethodNames,
} from '../src/index.js'
import { buildModel, loadModel, type JsonClass } from '../src/codegen/model.js'
import { renderDatamodel } from '../src/codegen/generate-datamodel.js'
import { datamodelJson, hasDatamodelJson, repoRoot } from './reference.js'

const sig = (wireName: string): string => {
  const m = getMessage(wireName)!.message
  return `${m.params.map((p) => `${formatType(p.type)} ${p.name}${p.hasDefault ? '?' : ''}`).join(', ')} -> ${formatType(m.result)}`
}

test('tables: 67 classes, 845 fields, every message, 66 enums', () => {
  assert.equal(classes.length, 67)
  assert.equal(
    classes.reduce((n, c) => n + c.fields.length, 0),
    845,
  )
  // 1,828 messages in the JSON plus the hidden get_all_records_where of the 57 classes with get_all_records.
  const messages = classes.reduce((n, c) => n + c.messages.length, 0)
  assert.equal(messages, 1828 + 57)
  assert.equal(
    classes.reduce((n, c) => n + c.messages.filter((m) => m.implicit).length, 0),
    1349 + 57,
  )
  assert.equal(
    classes.reduce((n, c) => n + c.enums.length, 0),
    66,
  )
  assert.deepEqual(datamodelCounts, { classes: 67, fields: 845, messages: 1885, enums: 66 })
  assert.equal(classes[0]!.name, 'session')
  assert.equal(classes.at(-1)!.name, 'Observer')
  // Every record of a class has the same fields: each field has a type and qualifier.
  for (const c of classes) {
    for (const f of c.fields)
      assert.ok(['RW', 'RO/constructor', 'RO/runtime'].includes(f.qualifier), `${c.name}.${f.name}`)
  }
})

test('lookups: case-insensitive classes, Class.message and Class_message, enums, fields', () => {
  assert.equal(getClass('vm')!.name, 'VM')
  assert.equal(getClass('VM_GUEST_METRICS')!.name, 'VM_guest_metrics')
  assert.equal(getClass('nope'), undefined)
  assert.equal(getMessage('VM.start')!.message.wireName, 'VM.start')
  assert.equal(getMessage('VM_start')!.message.wireName, 'VM.start')
  assert.equal(getMessage('VM_metrics_get_record')!.message.wireName, 'VM_metrics.get_record')
  assert.equal(getMessage('pool_patch_apply')!.message.wireName, 'pool_patch.apply')
  assert.equal(getMessage('VM.nope'), undefined)
  assert.equal(getMessage('Async.VM.start'), undefined, 'Async. is the dispatcher’s business, not a message name')
  assert.deepEqual(getEnum('vm_power_state')!.values, ['Halted', 'Paused', 'Running', 'Suspended'])
  assert.equal(formatType(getField('VM', 'memory_static_max')!.type), 'int')
})

test('known signatures: VM.start, session.login_with_password (2–4 params), event.from, VM.snapshot', () => {
  assert.equal(sig('VM.start'), 'session ref session_id, VM ref vm, bool start_paused, bool force -> void')
  const start = getMessage('VM.start')!.message
  assert.equal(start.takesSession, true)
  assert.equal(start.hasAsync, true)
  assert.equal(start.implicit, false)
  assert.ok(start.errors.includes('VM_BAD_POWER_STATE'))
  assert.ok(start.roles.includes('vm-operator'))
  assert.equal(requiredParamCount(start), 3)

  const login = getMessage('session.login_with_password')!.message
  assert.equal(
    sig('session.login_with_password'),
    'string uname, string pwd, string version?, string originator? -> session ref',
  )
  assert.equal(login.takesSession, false)
  assert.equal(login.hasAsync, false)
  assert.equal(requiredParamCount(login), 2)
  assert.equal(login.params.length, 4)
  assert.deepEqual(
    login.params.map((p) => p.default),
    [undefined, undefined, '1.1', ''],
  )

  assert.equal(
    sig('event.from'),
    'session ref session_id, string set classes, string token, float timeout -> event_batch record',
  )
  assert.equal(getMessage('event.from')!.message.hasAsync, false)
  assert.equal(
    sig('VM.snapshot'),
    'session ref session_id, VM ref vm, string new_name, VDI ref set ignore_vdis? -> VM ref',
  )
  assert.equal(requiredParamCount(getMessage('host.evacuate')!.message), 1)
  assert.equal(sig('VM.get_all_records_where'), 'session ref session_id, string expr -> (VM ref -> VM record) map')
  assert.equal(getMessage('VM.get_all_records_where')!.message.hidden, true)
})

test('hasAsync: none for session/event/task/data_source/blob, getters and setters; constructors have it', () => {
  for (const c of classes) {
    for (const m of c.messages) {
      if (['session', 'event', 'task', 'data_source', 'blob'].includes(c.name)) {
        assert.equal(m.hasAsync, false, m.wireName)
      } else if (m.implicit && m.name !== 'create' && m.name !== 'destroy') {
        assert.equal(m.hasAsync, false, m.wireName)
      }
    }
  }
  assert.equal(getMessage('VM.get_power_state')!.message.hasAsync, false)
  assert.equal(getMessage('VM.set_name_label')!.message.hasAsync, false)
  assert.equal(getMessage('VM.add_to_other_config')!.message.hasAsync, false)
  assert.equal(getMessage('VM.get_all_records')!.message.hasAsync, false)
  assert.equal(getMessage('VM.clone')!.message.hasAsync, true)
  assert.equal(getMessage('VIF.create')!.message.hasAsync, true)
  assert.equal(getMessage('VDI.destroy')!.message.hasAsync, true)
  assert.equal(getMessage('task.cancel')!.message.hasAsync, false)
})

test('hasGetAllRecords and emitsEvents per §4.4 and §7.1', () => {
  for (const name of ['session', 'user', 'event']) assert.equal(getClass(name)!.hasGetAllRecords, false, name)
  for (const name of ['VM', 'host', 'task', 'message', 'pool', 'SR', 'VTPM', 'Observer']) {
    assert.equal(getClass(name)!.hasGetAllRecords, true, name)
  }
  for (const c of classes) {
    if (c.hasGetAllRecords)
      assert.ok(
        c.messages.some((m) => m.name === 'get_all_records'),
        c.name,
      )
  }
  for (const name of [
    'session',
    'user',
    'secret',
    'auth',
    'data_source',
    'sr_stat',
    'probe_result',
    'vdi_nbd_server_info',
  ]) {
    assert.equal(getClass(name)!.emitsEvents, false, name)
  }
  for (const name of ['VM', 'task', 'VM_metrics', 'host_metrics', 'message'])
    assert.equal(getClass(name)!.emitsEvents, true)
})

test('implicit messages are complete per §4.4: getters, setters, map/set modifiers, get_by_name_label', () => {
  for (const c of classes) {
    const names = new Set(c.messages.map((m) => m.name))
    if (!names.has('get_record')) continue // classes not stored in XAPI's database (event, auth, data_source, …)
    if (c.name === 'message') continue // message declares its own accessors
    for (const f of c.fields) {
      assert.ok(names.has(`get_${f.name}`), `${c.name}.get_${f.name}`)
      if (f.qualifier !== 'RW') continue
      assert.ok(names.has(`set_${f.name}`), `${c.name}.set_${f.name}`)
      if (f.type.kind === 'map') {
        const add = c.messages.find((m) => m.name === `add_to_${f.name}`)!
        assert.ok(add && add.implicit, `${c.name}.add_to_${f.name}`)
        assert.deepEqual(
          add.params.map((p) => p.name),
          ['session_id', 'self', 'key', 'value'],
        )
        assert.ok(names.has(`remove_from_${f.name}`), `${c.name}.remove_from_${f.name}`)
      }
      if (f.type.kind === 'set') {
        assert.ok(names.has(`add_${f.name}`), `${c.name}.add_${f.name}`)
        assert.ok(names.has(`remove_${f.name}`), `${c.name}.remove_${f.name}`)
      }
    }
  }
  assert.equal(getMessage('VM.get_by_name_label')!.message.implicit, true)
  assert.equal(formatType(getMessage('VM.get_by_name_label')!.message.result), 'VM ref set')
  assert.equal(formatType(getMessage('network.get_by_uuid')!.message.result), 'network ref')
})

test('constructors: VIF/VBD/VDI/network.create fields, required as in §4.3', () => {
  const ctor = (name: string): string =>
    constructorFields(getClass(name)!)
      .map((f) => f.field.name + (f.required ? '*' : ''))
      .join(', ')
  assert.equal(
    ctor('VIF'),
    'device*, network*, VM*, MAC*, MTU*, other_config*, currently_attached, qos_algorithm_type*, qos_algorithm_params*, locking_mode, ipv4_allowed, ipv6_allowed',
  )
  assert.equal(
    ctor('VBD'),
    'VM*, VDI*, device, userdevice*, bootable*, mode*, type*, unpluggable, empty*, other_config*, currently_attached, qos_algorithm_type*, qos_algorithm_params*',
  )
  assert.equal(
    ctor('VDI'),
    'name_label, name_description, SR*, virtual_size*, type*, sharable*, read_only*, other_config*, xenstore_data, sm_config, tags',
  )
  assert.equal(ctor('network'), 'name_label, name_description, MTU, other_config*, bridge, managed, tags')
  const create = getMessage('VIF.create')!.message
  assert.equal(create.implicit, true)
  assert.equal(sig('VIF.create'), 'session ref session_id, VIF record args -> VIF ref')
  assert.equal(sig('task.create'), 'session ref session_id, string label, string description -> task ref')
})

test('defaults are converted by type and frozen; freshDefault gives a mutable copy', () => {
  const f = (c: string, n: string): unknown => getField(c, n)!.default
  assert.equal(getField('VM', 'other_config')!.hasDefault, false)
  assert.deepEqual(f('VM', 'blocked_operations'), {})
  assert.deepEqual(f('VM', 'tags'), [])
  assert.equal(f('VM', 'power_state'), 'Halted')
  assert.equal(f('VIF', 'locking_mode'), 'network_default')
  assert.equal(f('VM', 'suspend_VDI'), 'OpaqueRef:NULL')
  assert.equal(f('network', 'MTU'), 1500)
  assert.equal(f('network', 'bridge'), '')
  assert.equal(f('VBD', 'currently_attached'), false)
  assert.deepEqual(f('VM', 'start_delay'), 0)
  assert.equal(f('VM', 'last_booted_record'), '')
  const dt = classes.flatMap((c) => c.fields).find((x) => x.type.kind === 'datetime' && x.hasDefault)!
  assert.ok(dt.default instanceof Date)
  assert.equal((dt.default as Date).getTime(), 0)
  const floats = classes.flatMap((c) => c.fields).filter((x) => x.type.kind === 'float' && x.hasDefault)
  assert.ok(floats.every((x) => typeof x.default === 'number'))
  assert.ok(Object.isFrozen(f('VM', 'blocked_operations')))
  const fresh = freshDefault(getField('VM', 'blocked_operations')!) as Record<string, string>
  fresh.a = 'b'
  assert.deepEqual(f('VM', 'blocked_operations'), {})
  assert.deepEqual(getField('host', 'license_server')!.default, { address: 'localhost', port: '27000' })
})

test('the generator reproduces the committed tables from the reference JSON', (t) => {
  if (!requirePrerequisite(t, `reference datamodel ${datamodelJson}`, hasDatamodelJson)) return
  const committed = readFileSync(join(repoRoot, 'packages', 'xapi-wire', 'src', 'generated', 'datamodel.ts'), 'utf8')
  const fresh = renderDatamodel(loadModel(datamodelJson), 'xenapi-datamodel.json')
  assert.ok(fresh === committed, 'src/generated/datamodel.ts is stale: run `npm run generate -w packages/xapi-wire`')
  assert.match(committed, /GENERATED FILE/)
  assert.match(committed, /xapi-project\/xen-api/)
  assert.match(committed, /LGPL-2\.1/)
})

test('the model builder names the file, class and field of bad input', () => {
  const lc = { state: 'Published_s', transitions: [] }
  const cls = (field: object): JsonClass => ({
    name: 'X',
    description: '',
    fields: [field as JsonClass['fields'][number]],
    messages: [],
    enums: [],
    lifecycle: lc,
    tag: '',
  })
  const field = { name: 'f', description: '', qualifier: 'RW', lifecycle: lc, tag: '' }
  assert.throws(
    () => buildModel([cls({ ...field, type: 'bogus thing' })], 'dm.json'),
    /dm\.json: classes\[0\] \(X\)\.fields\[0\] \(f\): not a XenAPI type: "bogus thing"/,
  )
  assert.throws(
    () => buildModel([cls({ ...field, type: 'int', default: 'zero' })], 'dm.json'),
    /dm\.json: classes\[0\] \(X\)\.fields\[0\] \(f\): default "zero" is not a valid/,
  )
  assert.throws(
    () => buildModel([cls({ ...field, type: 'int', qualifier: 'WO' })], 'dm.json'),
    /qualifier "WO", expected RW/,
  )
  assert.throws(
    () => loadModel('/nonexistent/xenapi.json'),
    (e: unknown) => e instanceof Error && e.message.includes('/nonexistent/xenapi.json'),
  )
})

test('wireMethodNames: the synchronous names system.listMethods lists', () => {
  const names = wireMethodNames()
  assert.ok(names.includes('VM.start'))
  assert.ok(names.includes('VM.get_all_records'))
  assert.ok(names.includes('session.login_with_password'))
  assert.ok(!names.includes('VM.get_all_records_where'), 'hidden')
  assert.ok(!names.some((n) => n.startsWith('Async.')))
  assert.equal(new Set(names).size, names.length)
  const removed = classes.flatMap((c) => c.messages).filter((m) => m.state === 'Removed_s')
  assert.ok(removed.length > 0 && removed.every((m) => !names.includes(m.wireName)))
})

test('the generator CLI writes the tables to the path given, and refuses a missing argument or file', (t) => {
  if (!requirePrerequisite(t, `reference datamodel ${datamodelJson}`, hasDatamodelJson)) return
  const cli = join(repoRoot, 'packages', 'xapi-wire', 'dist', 'src', 'codegen', 'generate-datamodel.js')
  const dir = mkdtempSync(join(tmpdir(), 'xapi-wire-gen-'))
  try {
    const out = join(dir, 'datamodel.ts')
    const stdout = execFileSync(process.execPath, [cli, datamodelJson, out]).toString()
    assert.match(stdout, /67 classes/)
    assert.equal(
      readFileSync(out, 'utf8'),
      readFileSync(join(repoRoot, 'packages', 'xapi-wire', 'src', 'generated', 'datamodel.ts'), 'utf8'),
    )
    const usage = spawnSync(process.execPath, [cli])
    assert.equal(usage.status, 2)
    assert.match(usage.stderr.toString(), /usage: generate-datamodel/)
    const missing = spawnSync(process.execPath, [cli, join(dir, 'nope.json'), out])
    assert.notEqual(missing.status, 0)
    assert.equal(missing.status, 1)
    assert.match(missing.stderr.toString(), /^generate-datamodel: .*nope\.json: cannot read the datamodel/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
