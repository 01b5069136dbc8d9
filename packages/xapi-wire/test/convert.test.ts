import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  decodeJsonRpcResponse,
  decodeTypedResponse,
  encodeFailureResponse,
  encodeFault,
  encodeMethodResponse,
  EnvelopeError,
  XmlRpcFault,
  decodeMethodResponse,
  encodeJsonRpcSuccess,
  encodeSuccessResponse,
  formatXapiDate,
  fromWire,
  getClass,
  getEnum,
  getMessage,
  parseType,
  parseXapiDate,
  toJsonWire,
  unwrapEnvelope,
  WireValueError,
  type XapiType,
} from '../src/index.js'

/** A VM record with every field set to a sample of its type. */
function sampleVm(i: number): Record<string, unknown> {
  const sample = (t: XapiType, name: string): unknown => {
    switch (t.kind) {
      case 'string':
        return `${name} ${i} ✓ <&>`
      case 'int':
        return name.startsWith('memory') ? 2 ** 40 + i : i
      case 'float':
        return 0.5 + i
      case 'bool':
        return i % 2 === 0
      case 'datetime':
        return new Date(Date.UTC(2025, 2, 19, 4, 16, 24 + i))
      case 'ref':
        return i === 0 ? 'OpaqueRef:NULL' : `OpaqueRef:${i}-${name}`
      case 'enum':
        return getEnum(t.name)!.values[i % getEnum(t.name)!.values.length]
      case 'set':
        return [sample(t.of, name)]
      case 'map':
        return { key: sample(t.value, name) }
      case 'option':
        return null
      default:
        return {}
    }
  }
  const r: Record<string, unknown> = {}
  for (const f of getClass('VM')!.fields) r[f.name] = sample(f.type, f.name)
  return r
}

test('fromWire gives identical JS values for records from both transports', () => {
  const records = { 'OpaqueRef:a': sampleVm(0), 'OpaqueRef:b': sampleVm(1), 'OpaqueRef:c': sampleVm(2) }
  const type = getMessage('VM.get_all_records')!.message.result
  const xml = unwrapEnvelope(decodeMethodResponse(encodeSuccessResponse(records, type)))
  const json = decodeJsonRpcResponse(encodeJsonRpcSuccess('2.0', 1, records, type))
  assert.ok(xml.ok && json.ok)
  // On the wire they differ: XML-RPC ints are strings, JSON-RPC ints numbers; datetimes strings on both.
  const xmlVm = (xml.value as Record<string, Record<string, unknown>>)['OpaqueRef:b']!
  const jsonVm = (json.result as Record<string, Record<string, unknown>>)['OpaqueRef:b']!
  assert.equal(xmlVm.memory_static_max, String(2 ** 40 + 1))
  assert.equal(jsonVm.memory_static_max, 2 ** 40 + 1)
  const fromXml = fromWire(xml.value, type)
  const fromJson = fromWire(json.result, type)
  assert.deepEqual(fromXml, fromJson)
  assert.deepEqual(fromXml, records)
  const vm = (fromXml as Record<string, Record<string, unknown>>)['OpaqueRef:c']!
  assert.equal(typeof vm.memory_static_max, 'number')
  assert.ok(vm.start_time === undefined || vm.start_time instanceof Date)
  assert.ok(getClass('VM')!.fields.some((f) => f.type.kind === 'datetime'))
})

test('fromWire: scalars from either form, options, unknown fields, errors naming the field', () => {
  const T = parseType
  assert.equal(fromWire('42', T('int')), 42)
  assert.equal(fromWire(42, T('int')), 42)
  assert.equal(fromWire('-9223372036854775808', T('int')), -(2n ** 63n))
  assert.equal(fromWire(' 7 ', T('int')), 7)
  assert.equal(fromWire('1.5', T('float')), 1.5)
  assert.equal(fromWire(3, T('float')), 3)
  assert.equal(fromWire(true, T('bool')), true)
  assert.equal(fromWire('false', T('bool')), false)
  assert.equal(fromWire('', T('void')), undefined)
  assert.deepEqual(fromWire('20250319T04:16:24Z', T('datetime')), new Date(Date.UTC(2025, 2, 19, 4, 16, 24)))
  assert.deepEqual(fromWire([], T('string option')), null)
  assert.deepEqual(fromWire(['x'], T('string option')), 'x')
  assert.deepEqual(fromWire({ a: '1' }, T('(string -> int) map')), { a: 1 })
  assert.deepEqual(fromWire({ vendor_field: 'kept', VCPUs_max: '2' }, T('VM record')), {
    vendor_field: 'kept',
    VCPUs_max: 2,
  })
  assert.throws(
    () => fromWire('x', T('int')),
    (e: unknown) => e instanceof WireValueError && /expected an integer, got "x"/.test(e.message),
  )
  assert.throws(() => fromWire({ VCPUs_max: 'lots' }, T('VM record')), /VM\.VCPUs_max: expected an integer, got "lots"/)
  assert.throws(() => fromWire('yes', T('bool')), /expected a boolean/)
  assert.throws(() => fromWire('x', T('int set')), /expected an array/)
  assert.throws(() => fromWire('2025-13', T('datetime')), /not a XAPI datetime: "2025-13"/)
  assert.deepEqual(fromWire('1.5', T('datetime')), new Date(1500), 'event.from timestamps: epoch seconds')
})

test('XAPI datetimes: formats accepted and produced', () => {
  const d = new Date(Date.UTC(2025, 2, 19, 4, 16, 24))
  assert.equal(formatXapiDate(d), '20250319T04:16:24Z')
  assert.equal(formatXapiDate(new Date(0)), '19700101T00:00:00Z')
  for (const s of [
    '20250319T04:16:24Z',
    '20250319T04:16:24',
    '2025-03-19T04:16:24Z',
    '2025-03-19T04:16:24.000Z',
    '2025-03-19T05:16:24+01:00',
    '2025-03-19T03:16:24-0100',
  ]) {
    assert.deepEqual(parseXapiDate(s), d, s)
  }
  assert.equal(parseXapiDate('2025-03-19T04:16:24.250Z').getTime(), d.getTime() + 250)
  assert.throws(() => parseXapiDate('yesterday'), /not a XAPI datetime/)
  assert.throws(() => formatXapiDate(new Date(NaN)), /invalid Date/)
})

test('toJsonWire converts Dates and bigints without copying what needs no conversion', () => {
  const plain = { a: ['x', 1, { b: true }], c: null }
  assert.equal(toJsonWire(plain), plain)
  const withDate = { a: 'x', d: new Date(0), nested: [{ n: 5n }] }
  assert.deepEqual(toJsonWire(withDate), { a: 'x', d: '19700101T00:00:00Z', nested: [{ n: 5 }] })
  assert.ok(withDate.d instanceof Date, 'the input is not modified')
})

test('decodeTypedResponse = unwrapEnvelope + decodeMethodResponse + fromWire', () => {
  const records = { 'OpaqueRef:a': sampleVm(0), 'OpaqueRef:b': sampleVm(3) }
  const type = getMessage('VM.get_all_records')!.message.result
  const xml = encodeSuccessResponse(records, type)
  assert.deepEqual(decodeTypedResponse(xml, type), { ok: true, value: records })
  assert.deepEqual(decodeTypedResponse(Buffer.from(xml), type), { ok: true, value: records })
  // Not compact (whitespace between tags, <string>): same result through the tolerant path.
  const loose = xml.replace(/></g, '>\n  <').replace(/<value>([^<]*)<\/value>/g, '<value><string>$1</string></value>')
  assert.deepEqual(decodeTypedResponse(loose, type), { ok: true, value: records })
  const sets = encodeSuccessResponse([['a'], []], parseType('string set set'))
  assert.deepEqual(decodeTypedResponse(sets, parseType('string set set')), { ok: true, value: [['a'], []] })
  assert.deepEqual(decodeTypedResponse(encodeFailureResponse(['HANDLE_INVALID', 'VM', 'OpaqueRef:x']), type), {
    ok: false,
    errorDescription: ['HANDLE_INVALID', 'VM', 'OpaqueRef:x'],
  })
  const bad = encodeSuccessResponse(
    { 'OpaqueRef:a': { VCPUs_max: 'lots' } },
    parseType('(VM ref -> (string -> string) map) map'),
  )
  assert.throws(() => decodeTypedResponse(bad, type), /VM\.VCPUs_max: expected an integer, got "lots"/)
  assert.throws(() => decodeTypedResponse(encodeFault(1, 'x'), type), XmlRpcFault)
  assert.throws(() => decodeTypedResponse(encodeMethodResponse(['VM.start']), type), EnvelopeError)
})
