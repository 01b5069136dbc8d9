import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { requirePrerequisite } from '@xenstack/testkit'
import { parseType, formatType, XapiTypeError } from '../src/index.js'
import { datamodelJson, hasDatamodelJson } from './reference.js'

interface J {
  fields: { type: string }[]
  messages: { params: { type: string }[]; result: string[] }[]
}

test('parseType/formatType round-trip every type string of the datamodel', (t) => {
  if (!requirePrerequisite(t, `reference datamodel ${datamodelJson}`, hasDatamodelJson)) return
  const json = JSON.parse(readFileSync(datamodelJson, 'utf8')) as J[]
  const fieldTypes = new Set<string>()
  const all = new Set<string>()
  for (const c of json) {
    for (const f of c.fields) {
      fieldTypes.add(f.type)
      all.add(f.type)
    }
    for (const m of c.messages) {
      for (const p of m.params) all.add(p.type)
      if (m.result[0] !== 'an event batch') all.add(m.result[0]!)
    }
  }
  assert.equal(fieldTypes.size, 164)
  for (const s of all) {
    const parsed = parseType(s)
    assert.equal(formatType(parsed), s, `formatType(parseType(${JSON.stringify(s)}))`)
    assert.equal(parseType(formatType(parsed)), parsed, 'interned: equal strings give the same object')
  }
  assert.ok(all.has('<class> record'))
})

test('parseType: structure of nested types', () => {
  assert.deepEqual(parseType('(VM ref -> (string -> string) map) map'), {
    kind: 'map',
    key: { kind: 'ref', class: 'VM' },
    value: { kind: 'map', key: { kind: 'string' }, value: { kind: 'string' } },
  })
  assert.deepEqual(parseType('string set set'), { kind: 'set', of: { kind: 'set', of: { kind: 'string' } } })
  assert.deepEqual(parseType('sr_stat record option'), { kind: 'option', of: { kind: 'record', class: 'sr_stat' } })
  assert.deepEqual(parseType('enum vm_power_state set'), { kind: 'set', of: { kind: 'enum', name: 'vm_power_state' } })
  assert.deepEqual(parseType('<class> record'), { kind: 'record', class: '<class>' })
  assert.deepEqual(parseType('(enum vm_operations -> string) map'), {
    kind: 'map',
    key: { kind: 'enum', name: 'vm_operations' },
    value: { kind: 'string' },
  })
  assert.equal(parseType('void').kind, 'void')
})

test('parseType rejects non-types, naming the string', () => {
  for (const bad of ['', 'VM', 'VM reff', '(string -> string)', '(string string) map', 'enum', 'int int', 'ref']) {
    assert.throws(
      () => parseType(bad),
      (e: unknown) => e instanceof XapiTypeError && e.message.includes(JSON.stringify(bad)),
      bad,
    )
  }
})
