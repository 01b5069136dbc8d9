/**
 * Normalising decoded wire values to their JS form, per XenAPI type, for either transport: XML-RPC sends record
 * ints as strings, JSON-RPC as numbers; both send datetimes as `20250319T04:16:24Z` strings. Converters are
 * compiled once per type (records: once per class) and cached.
 */
import type { XapiType } from './types.js'
import { getClass, EVENT_BATCH_CLASS } from './datamodel.js'

type Converter = (v: unknown) => unknown

export class WireValueError extends Error {
  override name = 'WireValueError'
}

/**
 * Normalises a decoded wire value (either transport) to its JS form by type: int → number (string → number;
 * a 64-bit value beyond 2^53 stays exact as a bigint), float → number, bool → boolean, datetime → Date,
 * refs/strings/enums → string, sets → arrays, maps → objects with converted values, records → objects with every
 * field converted per the class's field types (unknown fields passed through), options → the value or null,
 * void → undefined. Throws WireValueError naming the value and the expected type when it cannot be converted.
 */
export function fromWire(value: unknown, type: XapiType): unknown {
  return converterFor(type)(value)
}

const cache = new WeakMap<XapiType, Converter>()

/** The compiled converter for a type (for callers converting many values of one type). */
export function converterFor(t: XapiType): Converter {
  let c = cache.get(t)
  if (c === undefined) {
    c = build(t)
    cache.set(t, c)
  }
  return c
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}

function toStringValue(v: unknown): unknown {
  if (typeof v === 'string') return v
  if (v === null || v === undefined) return ''
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v)
  throw new WireValueError(`expected a string, got ${describe(v)}`)
}

function toInt(v: unknown): unknown {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v
    throw new WireValueError(`expected an integer, got ${v}`)
  }
  if (typeof v === 'string') {
    const n = Number(v)
    if (Number.isSafeInteger(n) && v.trim() !== '') return n
    const t = v.trim()
    if (/^[-+]?\d+$/.test(t)) return Number.isSafeInteger(Number(t)) ? Number(t) : BigInt(t)
    throw new WireValueError(`expected an integer, got ${describe(v)}`)
  }
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v
  throw new WireValueError(`expected an integer, got ${describe(v)}`)
}

function toFloat(v: unknown): unknown {
  if (typeof v === 'number') return v
  if (typeof v === 'string') {
    const t = v.trim().toLowerCase()
    if (t === 'nan' || t === '-nan') return NaN
    if (t === 'inf' || t === 'infinity' || t === '+inf') return Infinity
    if (t === '-inf' || t === '-infinity') return -Infinity
    const n = Number(t)
    if (t !== '' && !Number.isNaN(n)) return n
  }
  if (typeof v === 'bigint') return Number(v)
  throw new WireValueError(`expected a float, got ${describe(v)}`)
}

function toBool(v: unknown): unknown {
  if (typeof v === 'boolean') return v
  if (v === 'true' || v === '1' || v === 1) return true
  if (v === 'false' || v === '0' || v === 0) return false
  throw new WireValueError(`expected a boolean, got ${describe(v)}`)
}

const SECONDS_RE = /^\d+(?:\.\d*)?$/

function toDate(v: unknown): unknown {
  if (v instanceof Date) return v
  // event.from's records carry `timestamp` as seconds since the epoch ("1732192385.123"), not as a datetime.
  if (typeof v === 'string') return SECONDS_RE.test(v) ? new Date(Number(v) * 1000) : parseXapiDate(v)
  if (typeof v === 'number') return new Date(v * 1000)
  throw new WireValueError(`expected a datetime, got ${describe(v)}`)
}

const identity: Converter = (v) => v

function build(t: XapiType): Converter {
  switch (t.kind) {
    case 'string':
    case 'ref':
    case 'enum':
      return toStringValue
    case 'int':
      return toInt
    case 'float':
      return toFloat
    case 'bool':
      return toBool
    case 'datetime':
      return toDate
    case 'void':
      return () => undefined
    case 'set': {
      const inner = converterFor(t.of)
      return (v) => {
        if (!Array.isArray(v)) throw new WireValueError(`expected an array, got ${describe(v)}`)
        const out = new Array<unknown>(v.length)
        for (let i = 0; i < v.length; i++) out[i] = inner(v[i])
        return out
      }
    }
    case 'map': {
      const inner = converterFor(t.value)
      return (v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) {
          throw new WireValueError(`expected a struct/object, got ${describe(v)}`)
        }
        const out: Record<string, unknown> = {}
        for (const k in v) {
          if (Object.prototype.hasOwnProperty.call(v, k)) setOwn(out, k, inner((v as Record<string, unknown>)[k]))
        }
        return out
      }
    }
    case 'option': {
      const inner = converterFor(t.of)
      return (v) => {
        if (v === null || v === undefined) return null
        if (Array.isArray(v)) return v.length === 0 ? null : inner(v[0])
        return inner(v)
      }
    }
    case 'record':
      return recordConverter(t.class)
  }
}

function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true })
  else o[k] = v
}

function recordConverter(className: string): Converter {
  let fields: Map<string, Converter> | undefined
  const resolve = (): Map<string, Converter> => {
    if (fields !== undefined) return fields
    fields = new Map()
    if (className === EVENT_BATCH_CLASS) {
      fields.set('events', converterFor({ kind: 'set', of: { kind: 'record', class: 'event' } }))
      fields.set('valid_ref_counts', converterFor({ kind: 'map', key: { kind: 'string' }, value: { kind: 'int' } }))
      fields.set('token', toStringValue)
    } else {
      const cls = getClass(className)
      if (cls) for (const f of cls.fields) fields.set(f.name, converterFor(f.type))
    }
    return fields
  }
  const isEvent = className === 'event'
  /** Field by field with the error naming the field; also the fallback of the compiled converter. */
  const generic: Converter = (v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new WireValueError(`expected a ${className} record (a struct), got ${describe(v)}`)
    }
    const fc = resolve()
    const rec = v as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const k in rec) {
      if (!Object.prototype.hasOwnProperty.call(rec, k)) continue
      let conv = fc.get(k)
      if (isEvent && k === 'snapshot' && typeof rec.class === 'string') conv = snapshotConverter(rec.class)
      const x = rec[k]
      if (conv === undefined) {
        setOwn(out, k, x)
        continue
      }
      try {
        setOwn(out, k, conv === identity ? x : conv(x))
      } catch (e) {
        if (e instanceof WireValueError) throw new WireValueError(`${className}.${k}: ${e.message}`)
        throw e
      }
    }
    return out
  }
  const cls = getClass(className)
  if (isEvent || cls === undefined || cls.name !== className) return generic
  // A converter compiled for the class: straight-line code with constant property names (inline caches instead of
  // a lookup per field), scalars that are already in JS form passed through without a call.
  let compiled: Converter | undefined
  return (v) => {
    if (compiled === undefined) compiled = compileRecordConverter(cls.fields, generic)
    return compiled(v)
  }
}

function compileRecordConverter(fields: readonly { name: string; type: XapiType }[], generic: Converter): Converter {
  const convs: Converter[] = []
  const known: Record<string, true> = Object.create(null) as Record<string, true>
  let body = ''
  for (const [i, f] of fields.entries()) {
    known[f.name] = true
    convs.push(converterFor(f.type))
    const key = JSON.stringify(f.name)
    let expr: string
    switch (f.type.kind) {
      case 'string':
      case 'ref':
      case 'enum':
        expr = `typeof x === 'string' ? x : c[${i}](x)`
        break
      case 'int':
        expr = `typeof x === 'number' && Number.isSafeInteger(x) ? x : c[${i}](x)`
        break
      case 'float':
        expr = `typeof x === 'number' ? x : c[${i}](x)`
        break
      case 'bool':
        expr = `typeof x === 'boolean' ? x : c[${i}](x)`
        break
      default:
        expr = `c[${i}](x)`
    }
    body += `x = r[${key}]; if (x !== undefined) { n++; o[${key}] = ${expr} }\n`
  }
  const make = new Function(
    'c',
    'known',
    'generic',
    `return function convertRecord(r) {
      if (r === null || typeof r !== 'object' || Array.isArray(r)) return generic(r)
      try {
        const o = {}
        let x, n = 0
        ${body}
        let total = 0
        for (const k in r) total++
        if (total !== n) {
          // Fields this datamodel does not know (newer XAPI, vendor fields): passed through as they came.
          for (const k in r) {
            if (known[k] !== true && Object.prototype.hasOwnProperty.call(r, k)) {
              if (k === '__proto__') Object.defineProperty(o, k, { value: r[k], enumerable: true, writable: true, configurable: true })
              else o[k] = r[k]
            }
          }
        }
        return o
      } catch (e) {
        return generic(r) // names the field that failed
      }
    }`,
  ) as (c: Converter[], known: Record<string, true>, generic: Converter) => Converter
  return make(convs, known, generic)
}

function snapshotConverter(name: string): Converter | undefined {
  const cls = getClass(name)
  return cls ? converterFor(recordType(cls.name)) : undefined
}

const recordTypes = new Map<string, XapiType>()
function recordType(name: string): XapiType {
  let t = recordTypes.get(name)
  if (t === undefined) {
    t = { kind: 'record', class: name }
    recordTypes.set(name, t)
  }
  return t
}

/**
 * The inverse for JSON-RPC: Date → `YYYYMMDDTHH:MM:SSZ`, bigint → number, undefined members dropped, and with a
 * type, options → [] or [value] (as XAPI's rpc library sends them). Returns the input itself when nothing needs
 * converting, so JSON-encoding large results costs one walk and no copies.
 */
export function toJsonWire(value: unknown, type?: XapiType): unknown {
  if (type !== undefined && type.kind === 'option') {
    return value === null || value === undefined ? [] : [toJsonWire(value, type.of)]
  }
  return walk(value)
}

function walk(v: unknown): unknown {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'bigint') return Number(v)
    return v
  }
  if (v instanceof Date) return formatXapiDate(v)
  if (Array.isArray(v)) {
    let out: unknown[] | undefined
    for (let i = 0; i < v.length; i++) {
      const x = v[i]
      const y = x === null || (typeof x !== 'object' && typeof x !== 'bigint') ? x : walk(x)
      if (y !== x && out === undefined) out = v.slice(0, i)
      if (out !== undefined) out.push(y)
    }
    return out ?? v
  }
  let out: Record<string, unknown> | undefined
  const o = v as Record<string, unknown>
  for (const k in o) {
    if (!Object.prototype.hasOwnProperty.call(o, k)) continue
    const x = o[k]
    const y = x === null || (typeof x !== 'object' && typeof x !== 'bigint' && x !== undefined) ? x : walk(x)
    if (y !== x && out === undefined) {
      out = {}
      for (const k2 in o) {
        if (k2 === k) break
        if (Object.prototype.hasOwnProperty.call(o, k2)) setOwn(out, k2, o[k2])
      }
    }
    if (out !== undefined && y !== undefined) setOwn(out, k, y)
  }
  return out ?? v
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0')
}

/** Formats a Date the way XAPI does: `20250319T04:16:24Z`. */
export function formatXapiDate(d: Date): string {
  const t = d.getTime()
  if (Number.isNaN(t)) throw new WireValueError('cannot format an invalid Date as a XAPI datetime')
  const iso = d.toISOString() // 2025-03-19T04:16:24.000Z (years 0–9999)
  if (iso.length !== 24) {
    return (
      pad(d.getUTCFullYear(), 4) +
      pad(d.getUTCMonth() + 1) +
      pad(d.getUTCDate()) +
      'T' +
      pad(d.getUTCHours()) +
      ':' +
      pad(d.getUTCMinutes()) +
      ':' +
      pad(d.getUTCSeconds()) +
      'Z'
    )
  }
  return iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(10, 19) + 'Z'
}

const DATE_RE = /^(\d{4})-?(\d\d)-?(\d\d)T(\d\d):?(\d\d):?(\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)?$/

/**
 * Parses `20250319T04:16:24Z` (also with dashes, fractional seconds or offsets; no zone means UTC, as XAPI
 * means it) to a Date. Throws WireValueError naming the string otherwise.
 */
export function parseXapiDate(s: string): Date {
  const m = DATE_RE.exec(s.trim())
  if (m === null) {
    throw new WireValueError(`not a XAPI datetime: ${JSON.stringify(s)} (expected e.g. "20250319T04:16:24Z")`)
  }
  const ms = m[7] ? Math.round(Number(m[7]) * 1000) : 0
  let t = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, ms)
  const z = m[8]
  if (z !== undefined && z !== 'Z') {
    const sign = z[0] === '-' ? -1 : 1
    const digits = z.slice(1).replace(':', '')
    const off = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')
    t -= sign * off * 60_000
  }
  return new Date(t)
}
