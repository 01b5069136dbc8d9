#!/usr/bin/env node
// XML-RPC codec benchmark: a 1,000-VM `VM.get_all_records` response (every VM field, XAPI's wire forms), encoded
// and decoded by @xenstack/xapi-wire and by library peers measured in the same run:
//   - @vates/xml + @vates/xml-rpc (sax-based; what Xen Orchestra's xen-api uses),
//   - fast-xml-parser (XMLParser/XMLBuilder) with a small XML-RPC value mapping,
//   - JSON.parse/JSON.stringify of the JSON-RPC form, for scale.
// Prints MB/s and values/s per codec and the ratios. Benchmarks are not tests: nothing here asserts.
// Usage: npx tsc -b packages/xapi-wire && node bench/codec.mjs [--vms 1000] [--seconds 2]
import { createRequire } from 'node:module'
import * as wire from '../packages/xapi-wire/dist/src/index.js'

const require = createRequire(import.meta.url)
const { parseXml } = require('@vates/xml/parse')
const { formatXml } = require('@vates/xml/format')
const { xmlRpcParser } = require('@vates/xml-rpc/parser')
const { xmlRpcFormatter } = require('@vates/xml-rpc/formatter')
const { XMLParser, XMLBuilder } = require('fast-xml-parser')

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? def : Number(process.argv[i + 1])
}
const VMS = arg('vms', 1000)
const SECONDS = arg('seconds', 2)

// ---------------------------------------------------------------------------------------------- the payload
const vmClass = wire.getClass('VM')
let seq = 0
const uuid = () => {
  const h = (++seq).toString(16).padStart(12, '0')
  return `3f2a1b4c-5d6e-4f70-8a9b-${h}`
}
function sample(type, name, i) {
  switch (type.kind) {
    case 'string':
      return name === 'uuid' ? uuid() : name === 'name_label' ? `vm-${i} «test» & <co>` : `${name}-${i}`
    case 'int':
      return name.startsWith('memory') ? 4294967296 + i : i % 64
    case 'float':
      return 0.25 + i / 1000
    case 'bool':
      return i % 2 === 0
    case 'datetime':
      return new Date(Date.UTC(2025, 2, 19, 4, 16, i % 60))
    case 'ref':
      return i % 3 === 0 ? 'OpaqueRef:NULL' : `OpaqueRef:${uuid()}`
    case 'enum': {
      const e = wire.getEnum(type.name)
      return e ? e.values[i % e.values.length] : 'x'
    }
    case 'set':
      return [sample(type.of, name, i), sample(type.of, name, i + 1)]
    case 'map':
      return { [`k${i % 5}`]: sample(type.value, name, i), key2: sample(type.value, name, i + 7) }
    case 'option':
      return null
    case 'record':
      return {}
    default:
      return ''
  }
}
const records = {}
for (let i = 0; i < VMS; i++) {
  const r = {}
  for (const f of vmClass.fields) r[f.name] = sample(f.type, f.name, i)
  records[`OpaqueRef:${uuid()}`] = r
}
const resultType = wire.getMessage('VM.get_all_records').message.result
// XAPI's wire forms: the XML-RPC response as XAPI emits it, and the JSON-RPC response.
const xml = wire.encodeSuccessResponse(records, resultType)
const json = wire.encodeJsonRpcSuccess('2.0', 1, records, resultType)
const xmlBytes = Buffer.byteLength(xml)
const jsonBytes = Buffer.byteLength(json)
let values = 0
;(function count(v) {
  if (Array.isArray(v)) v.forEach(count)
  else if (v !== null && typeof v === 'object' && !(v instanceof Date)) Object.values(v).forEach(count)
  else values++
})(records)

// ---------------------------------------------------------------------------------------------- peers
// xen-api's path: sax → tree → xml-rpc values (its transport then unwraps the envelope).
const vatesDecode = (s) => xmlRpcParser.parse(parseXml(s))
// Formatting the same JS value generically (peers have no XAPI types: ints go out as <int>/<double>).
const wireGeneric = wire.fromWire(wire.unwrapEnvelope(wire.decodeMethodResponse(xml)).value, {
  kind: 'map',
  key: { kind: 'string' },
  value: { kind: 'record', class: 'VM' },
})
const envelopeJs = { Status: 'Success', Value: toPlain(wireGeneric) }
function toPlain(v) {
  if (v instanceof Date) return v
  if (typeof v === 'bigint') return Number(v)
  if (Array.isArray(v)) return v.map(toPlain)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]))
  return v
}
const vatesEncode = (v) => formatXml(xmlRpcFormatter.format_methodResponse({ params: [v] }), { indent: '' })

const fxpParser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  preserveOrder: true,
  processEntities: true,
  ignoreDeclaration: true,
})
function fxpValue(node) {
  // node: the children array of <value>
  if (node.length === 0) return ''
  const first = node[0]
  if ('#text' in first && node.length === 1) return first['#text']
  const tag = Object.keys(first).find((k) => k !== ':@')
  const kids = first[tag]
  const text = () => (kids.length ? kids[0]['#text'] : '')
  switch (tag) {
    case 'string':
    case 'dateTime.iso8601':
      return String(text() ?? '')
    case 'int':
    case 'i4':
    case 'i8':
      return Number(text())
    case 'double':
      return Number(text())
    case 'boolean':
      return text() === '1'
    case 'nil':
      return null
    case 'array': {
      const data = kids.find((k) => 'data' in k)?.data ?? []
      return data.filter((k) => 'value' in k).map((k) => fxpValue(k.value))
    }
    case 'struct': {
      const o = {}
      for (const m of kids) {
        if (!('member' in m)) continue
        let name = ''
        let value = ''
        for (const c of m.member) {
          if ('name' in c) name = c.name.length ? String(c.name[0]['#text']) : ''
          else if ('value' in c) value = fxpValue(c.value)
        }
        o[name] = value
      }
      return o
    }
    default:
      return text()
  }
}
const fxpDecode = (s) => {
  const doc = fxpParser.parse(s)
  const mr = doc.find((n) => 'methodResponse' in n).methodResponse
  const param = mr.find((n) => 'params' in n).params.find((n) => 'param' in n).param
  return fxpValue(param.find((n) => 'value' in n).value)
}
const fxpBuilder = new XMLBuilder({ ignoreAttributes: true, format: false, suppressEmptyNode: false })
function fxpTree(v) {
  if (v === null || v === undefined) return { nil: '' }
  if (typeof v === 'string') return v === '' ? '' : { string: v }
  if (typeof v === 'number') return Number.isInteger(v) ? { int: v } : { double: v }
  if (typeof v === 'boolean') return { boolean: v ? 1 : 0 }
  if (v instanceof Date) return { 'dateTime.iso8601': wire.formatXapiDate(v) }
  if (Array.isArray(v)) return { array: { data: { value: v.map(fxpTree) } } }
  return { struct: { member: Object.entries(v).map(([name, x]) => ({ name, value: fxpTree(x) })) } }
}
const fxpEncode = (v) => fxpBuilder.build({ methodResponse: { params: { param: { value: fxpTree(v) } } } })

// ---------------------------------------------------------------------------------------------- runner
// The machine is shared: per-op CPU time of this process (process.cpuUsage), median of the runs, is far steadier
// than wall time under other load. Single-threaded work, so CPU time ≈ wall time on an idle machine.
function measure(fn) {
  fn() // warm-up
  fn()
  const times = []
  const deadline = performance.now() + SECONDS * 1e3
  while (performance.now() < deadline || times.length < 5) {
    const t0 = process.cpuUsage()
    fn()
    const d = process.cpuUsage(t0)
    times.push((d.user + d.system) / 1e6)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] // seconds per op (median)
}

const rows = []
function row(name, what, secondsPerOp, bytes) {
  rows.push({ name, what, ms: secondsPerOp * 1e3, mbs: bytes / 1e6 / secondsPerOp, vps: values / secondsPerOp })
}

const decodeType = resultType
console.log(
  `payload: ${VMS} VM records, ${vmClass.fields.length} fields each, ${values} scalar values; ` +
    `XML-RPC ${(xmlBytes / 1e6).toFixed(2)} MB, JSON-RPC ${(jsonBytes / 1e6).toFixed(2)} MB; node ${process.version}`,
)
const out = { sink: 0 }
row(
  'xapi-wire',
  'decode XML → JS values',
  measure(() => (out.sink = wire.decodeMethodResponse(xml))),
  xmlBytes,
)
row(
  'xapi-wire',
  'decode XML + fromWire (typed)',
  measure(() => {
    const env = wire.unwrapEnvelope(wire.decodeMethodResponse(xml))
    out.sink = wire.fromWire(env.value, decodeType)
  }),
  xmlBytes,
)
row(
  '@vates/xml-rpc',
  'decode XML → JS values (sax)',
  measure(() => (out.sink = vatesDecode(xml))),
  xmlBytes,
)
row(
  'fast-xml-parser',
  'decode XML → JS values',
  measure(() => (out.sink = fxpDecode(xml))),
  xmlBytes,
)
row(
  'JSON',
  'JSON.parse (JSON-RPC form)',
  measure(() => (out.sink = JSON.parse(json))),
  jsonBytes,
)
row(
  'xapi-wire',
  'JSON.parse + fromWire (typed)',
  measure(() => (out.sink = wire.fromWire(wire.decodeJsonRpcResponse(json).result, decodeType))),
  jsonBytes,
)
row(
  'xapi-wire',
  'encode typed (as XAPI)',
  measure(() => (out.sink = wire.encodeSuccessResponse(records, resultType))),
  xmlBytes,
)
row(
  'xapi-wire',
  'encode generic',
  measure(() => (out.sink = wire.encodeMethodResponse(envelopeJs))),
  xmlBytes,
)
row(
  '@vates/xml-rpc',
  'encode generic',
  measure(() => (out.sink = vatesEncode(envelopeJs))),
  xmlBytes,
)
row(
  'fast-xml-parser',
  'encode generic (XMLBuilder)',
  measure(() => (out.sink = fxpEncode(envelopeJs))),
  xmlBytes,
)
row(
  'xapi-wire',
  'encode JSON-RPC (toJsonWire+stringify)',
  measure(() => (out.sink = wire.encodeJsonRpcSuccess('2.0', 1, records, resultType))),
  jsonBytes,
)

console.log('')
console.log('codec            operation                                 ms/op     MB/s   Mvalues/s')
for (const r of rows) {
  console.log(
    `${r.name.padEnd(16)} ${r.what.padEnd(40)} ${r.ms.toFixed(1).padStart(7)} ${r.mbs.toFixed(1).padStart(8)} ${(r.vps / 1e6).toFixed(2).padStart(10)}`,
  )
}
const get = (name, what) => rows.find((r) => r.name === name && r.what.startsWith(what))
const ratio = (a, b) => (b.ms / a.ms).toFixed(1)
console.log('')
console.log(
  `decode: xapi-wire is ${ratio(get('xapi-wire', 'decode XML →'), get('@vates/xml-rpc', 'decode'))}× @vates/xml-rpc, ` +
    `${ratio(get('xapi-wire', 'decode XML →'), get('fast-xml-parser', 'decode'))}× fast-xml-parser`,
)
console.log(
  `encode: xapi-wire (typed) is ${ratio(get('xapi-wire', 'encode typed'), get('@vates/xml-rpc', 'encode'))}× @vates/xml-rpc, ` +
    `${ratio(get('xapi-wire', 'encode typed'), get('fast-xml-parser', 'encode'))}× fast-xml-parser; ` +
    `generic ${ratio(get('xapi-wire', 'encode generic'), get('@vates/xml-rpc', 'encode'))}× / ${ratio(get('xapi-wire', 'encode generic'), get('fast-xml-parser', 'encode'))}×`,
)
void out
