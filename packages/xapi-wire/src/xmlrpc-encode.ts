/** Type-directed XML-RPC encoders, compiled once per type (and per class for records) and cached. */
import type { XapiType } from './types.js'
import { getClass, EVENT_BATCH_CLASS } from './datamodel.js'
import { formatXapiDate } from './convert.js'

type Encoder = (v: unknown) => string

const NEEDS_ESCAPE = /[&<>\r]/
const ESCAPE_ALL = /[&<>\r]/g
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;' }

/** Escapes character data: & < > and CR (kept as a reference so it survives XML line-end normalisation). */
export function escapeXml(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPE_ALL, (c) => ESCAPES[c]!) : s
}

/** C's `%.16g`, as XAPI formats doubles. */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan'
  if (x === Infinity) return 'inf'
  if (x === -Infinity) return '-inf'
  if (x === 0) return Object.is(x, -0) ? '-0' : '0'
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return String(x)
  const ep = x.toExponential(15)
  const k = ep.indexOf('e')
  const e = Number(ep.slice(k + 1))
  if (e < -4 || e >= 16)
    return `${stripZeros(ep.slice(0, k))}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`
  return stripZeros(x.toFixed(15 - e))
}

function stripZeros(m: string): string {
  if (m.indexOf('.') === -1) return m
  let end = m.length
  while (m.charCodeAt(end - 1) === 48) end--
  if (m.charCodeAt(end - 1) === 46) end--
  return m.slice(0, end)
}

function encodeString(v: unknown): string {
  if (typeof v === 'string') return '<value>' + escapeXml(v) + '</value>'
  if (v === null || v === undefined) return '<value></value>'
  return '<value>' + escapeXml(String(v)) + '</value>'
}

function encodeInt(v: unknown): string {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError(`expected an integer for an int value, got ${v}`)
    return '<value>' + String(v) + '</value>'
  }
  if (typeof v === 'bigint') return '<value>' + v.toString() + '</value>'
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return '<value>' + v.trim() + '</value>'
  throw new TypeError(`expected an integer for an int value, got ${describe(v)}`)
}

function encodeInt32(v: unknown): string {
  const n = typeof v === 'number' ? v : Number(v)
  if (!Number.isInteger(n)) throw new TypeError(`expected an integer, got ${describe(v)}`)
  return '<value><i4>' + String(n) + '</i4></value>'
}

function encodeFloat(v: unknown): string {
  const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number(String(v))
  if (typeof v !== 'number' && typeof v !== 'bigint' && Number.isNaN(n)) {
    throw new TypeError(`expected a number for a float value, got ${describe(v)}`)
  }
  return '<value><double>' + formatDouble(n) + '</double></value>'
}

function encodeBool(v: unknown): string {
  if (v === true || v === 'true' || v === 1) return '<value><boolean>1</boolean></value>'
  if (v === false || v === 'false' || v === 0) return '<value><boolean>0</boolean></value>'
  throw new TypeError(`expected a boolean, got ${describe(v)}`)
}

function encodeDate(v: unknown): string {
  if (v instanceof Date) return '<value><dateTime.iso8601>' + formatXapiDate(v) + '</dateTime.iso8601></value>'
  if (typeof v === 'string') return '<value><dateTime.iso8601>' + escapeXml(v) + '</dateTime.iso8601></value>'
  if (typeof v === 'number') {
    return '<value><dateTime.iso8601>' + formatXapiDate(new Date(v * 1000)) + '</dateTime.iso8601></value>'
  }
  throw new TypeError(`expected a Date or XAPI datetime string, got ${describe(v)}`)
}

function encodeVoid(): string {
  return '<value></value>'
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  return typeof v
}

/** Untyped encoding (unknown methods, unknown record fields). */
export function encodeGeneric(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return '<value>' + escapeXml(v) + '</value>'
    case 'number':
      if (Number.isInteger(v)) {
        return v >= -2147483648 && v <= 2147483647
          ? '<value><int>' + String(v) + '</int></value>'
          : '<value>' + String(v) + '</value>'
      }
      return '<value><double>' + formatDouble(v) + '</double></value>'
    case 'bigint':
      return '<value>' + v.toString() + '</value>'
    case 'boolean':
      return v ? '<value><boolean>1</boolean></value>' : '<value><boolean>0</boolean></value>'
    case 'undefined':
      return '<value><nil/></value>'
    case 'object': {
      if (v === null) return '<value><nil/></value>'
      if (v instanceof Date) return encodeDate(v)
      if (Array.isArray(v)) {
        let out = '<value><array><data>'
        for (const x of v) out += encodeGeneric(x)
        return out + '</data></array></value>'
      }
      if (Buffer.isBuffer(v)) return '<value><base64>' + v.toString('base64') + '</base64></value>'
      let out = '<value><struct>'
      for (const k in v) {
        if (!Object.prototype.hasOwnProperty.call(v, k)) continue
        const x = (v as Record<string, unknown>)[k]
        if (x === undefined) continue
        out += '<member><name>' + escapeXml(k) + '</name>' + encodeGeneric(x) + '</member>'
      }
      return out + '</struct></value>'
    }
    default:
      throw new TypeError(`cannot encode a ${typeof v} as XML-RPC`)
  }
}

const cache = new WeakMap<XapiType, Encoder>()

/** The encoder for a type (cached per type object; parseType and the tables share type objects). */
export function encoderFor(t: XapiType): Encoder {
  let e = cache.get(t)
  if (e === undefined) {
    e = build(t)
    cache.set(t, e)
  }
  return e
}

function build(t: XapiType): Encoder {
  switch (t.kind) {
    case 'string':
    case 'ref':
    case 'enum':
      return encodeString
    case 'int':
      return encodeInt
    case 'float':
      return encodeFloat
    case 'bool':
      return encodeBool
    case 'datetime':
      return encodeDate
    case 'void':
      return encodeVoid
    case 'set': {
      const inner = encoderFor(t.of)
      return (v) => {
        if (!Array.isArray(v)) {
          if (v instanceof Set) v = [...v]
          else throw new TypeError(`expected an array for a ${t.of.kind} set, got ${describe(v)}`)
        }
        let out = '<value><array><data>'
        for (const x of v as unknown[]) out += inner(x)
        return out + '</data></array></value>'
      }
    }
    case 'option': {
      // XAPI (ocaml-rpc) sends an option as an array of zero or one element.
      const inner = encoderFor(t.of)
      return (v) =>
        v === null || v === undefined
          ? '<value><array><data></data></array></value>'
          : '<value><array><data>' + inner(v) + '</data></array></value>'
    }
    case 'map': {
      const inner = encoderFor(t.value)
      return (v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) {
          throw new TypeError(`expected an object for a map, got ${describe(v)}`)
        }
        let out = '<value><struct>'
        if (v instanceof Map) {
          for (const [k, x] of v) out += '<member><name>' + escapeXml(String(k)) + '</name>' + inner(x) + '</member>'
        } else {
          for (const k in v) {
            if (!Object.prototype.hasOwnProperty.call(v, k)) continue
            out += '<member><name>' + escapeXml(k) + '</name>' + inner((v as Record<string, unknown>)[k]) + '</member>'
          }
        }
        return out + '</struct></value>'
      }
    }
    case 'record':
      return recordEncoder(t.class)
  }
}

function recordEncoder(className: string): Encoder {
  // Per field: the member's opening bytes (`<member><name>uuid</name>`) and the value's encoder.
  let fieldEncoders: Map<string, readonly [string, Encoder]> | undefined
  const fields = (): Map<string, readonly [string, Encoder]> => {
    if (fieldEncoders !== undefined) return fieldEncoders
    const m = new Map<string, readonly [string, Encoder]>()
    const add = (name: string, e: Encoder): void => {
      m.set(name, ['<member><name>' + escapeXml(name) + '</name>', e])
    }
    if (className === EVENT_BATCH_CLASS) {
      add('events', encoderFor({ kind: 'set', of: { kind: 'record', class: 'event' } }))
      add('token', encodeString)
      // valid_ref_counts is the one place XAPI sends 32-bit <i4> ints (§7.1).
      add('valid_ref_counts', (v) => {
        let out = '<value><struct>'
        for (const k in v as Record<string, unknown>) {
          out +=
            '<member><name>' + escapeXml(k) + '</name>' + encodeInt32((v as Record<string, unknown>)[k]) + '</member>'
        }
        return out + '</struct></value>'
      })
    } else {
      const cls = getClass(className)
      if (cls) for (const f of cls.fields) add(f.name, encoderFor(f.type))
    }
    fieldEncoders = m
    return m
  }
  const isEvent = className === 'event'
  const generic: Encoder = (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new TypeError(`expected an object for a ${className} record, got ${describe(v)}`)
    }
    const fe = fields()
    const rec = v as Record<string, unknown>
    let out = '<value><struct>'
    for (const k in rec) {
      const x = rec[k]
      if (x === undefined || !Object.prototype.hasOwnProperty.call(rec, k)) continue
      const f = fe.get(k)
      if (isEvent && k === 'snapshot' && typeof rec.class === 'string') {
        const enc = recordEncoderByName(rec.class) ?? encodeGeneric
        out += '<member><name>snapshot</name>' + enc(x) + '</member>'
      } else if (f === undefined) out += '<member><name>' + escapeXml(k) + '</name>' + encodeGeneric(x) + '</member>'
      else out += f[0] + f[1](x) + '</member>'
    }
    return out + '</struct></value>'
  }
  const cls = getClass(className)
  if (isEvent || cls === undefined || cls.name !== className) return generic
  let compiled: Encoder | undefined
  return (v) => {
    if (compiled === undefined) compiled = compileRecordEncoder(cls.fields, generic)
    return compiled(v)
  }
}

/**
 * A record encoder compiled for a class: straight-line code with constant property names and member prefixes;
 * strings, ints and bools written inline. Fields come out in datamodel order (XAPI's order too); fields the class
 * does not know are appended, encoded generically.
 */
function compileRecordEncoder(fields: readonly { name: string; type: XapiType }[], generic: Encoder): Encoder {
  const encs: Encoder[] = []
  const known: Record<string, true> = Object.create(null) as Record<string, true>
  let body = ''
  for (const [i, f] of fields.entries()) {
    known[f.name] = true
    encs.push(encoderFor(f.type))
    const key = JSON.stringify(f.name)
    const open = JSON.stringify('<member><name>' + escapeXml(f.name) + '</name>')
    let expr: string
    switch (f.type.kind) {
      case 'string':
      case 'ref':
      case 'enum':
        expr = `(typeof x === 'string' ? '<value>' + (NEEDS.test(x) ? esc(x) : x) + '</value>' : e[${i}](x))`
        break
      case 'int':
        expr = `(typeof x === 'number' && Number.isInteger(x) ? '<value>' + x + '</value>' : e[${i}](x))`
        break
      case 'bool':
        expr = `(x === true ? '<value><boolean>1</boolean></value>' : x === false ? '<value><boolean>0</boolean></value>' : e[${i}](x))`
        break
      default:
        expr = `e[${i}](x)`
    }
    body += `x = r[${key}]; if (x !== undefined) { out += ${open} + ${expr} + '</member>' }\n`
  }
  const make = new Function(
    'e',
    'known',
    'generic',
    'NEEDS',
    'esc',
    'encodeGeneric',
    `return function encodeRecord(r) {
      if (r === null || typeof r !== 'object' || Array.isArray(r)) return generic(r)
      let out = '<value><struct>'
      let x
      ${body}
      for (const k in r) {
        if (known[k] !== true && Object.prototype.hasOwnProperty.call(r, k) && r[k] !== undefined) {
          out += '<member><name>' + esc(k) + '</name>' + encodeGeneric(r[k]) + '</member>'
        }
      }
      return out + '</struct></value>'
    }`,
  ) as (
    e: Encoder[],
    known: Record<string, true>,
    generic: Encoder,
    needs: RegExp,
    esc: (s: string) => string,
    encodeGeneric: Encoder,
  ) => Encoder
  return make(encs, known, generic, NEEDS_ESCAPE, escapeXml, encodeGeneric)
}

const byName = new Map<string, Encoder>()
function recordEncoderByName(name: string): Encoder | undefined {
  const cls = getClass(name)
  if (!cls) return undefined
  let e = byName.get(cls.name)
  if (e === undefined) {
    e = recordEncoder(cls.name)
    byName.set(cls.name, e)
  }
  return e
}
