/**
 * XML-RPC encoding for the simulator's hot path: type-directed, writing exactly what XAPI writes (compact, ints as
 * untagged decimal strings, `<boolean>1</boolean>`, `<double>` with %.16g, `<dateTime.iso8601>`, empty strings as
 * `<value></value>`), with record encoders compiled once per class. Its output is byte-identical to
 * @xenstack/xapi-wire's encodeValue for every class (test/core/wire.test.ts checks it); it exists for speed only.
 */
import { formatDouble } from '@xenstack/xapi-wire'
import type { Model, XapiType } from './model.js'

const ESC_RE = /[&<>\r]/
/** Escapes text content as @xenstack/xapi-wire does (quotes need no escaping in text nodes). */
export function escapeXml(s: string): string {
  if (!ESC_RE.test(s)) return s
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r/g, '&#13;')
}

/** %.16g as XAPI formats floats (1e-05, 1e+16): xapi-wire's, so client and simulator cannot differ. */
export { formatDouble }

type Enc = (v: unknown) => string

function encString(v: unknown): string {
  if (v === undefined || v === null || v === '') return '<value></value>'
  return `<value>${escapeXml(String(v))}</value>`
}
function encInt(v: unknown): string {
  return `<value>${typeof v === 'bigint' ? v.toString() : String(Math.trunc(Number(v)))}</value>`
}
function encFloat(v: unknown): string {
  return `<value><double>${formatDouble(Number(v))}</double></value>`
}
function encBool(v: unknown): string {
  return v ? '<value><boolean>1</boolean></value>' : '<value><boolean>0</boolean></value>'
}
function encDate(v: unknown): string {
  const s = v instanceof Date ? formatXapiDateLocal(v) : String(v)
  return `<value><dateTime.iso8601>${s}</dateTime.iso8601></value>`
}

export function formatXapiDateLocal(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/-/g, '')
}

/** Encodes a value without a type, the way XAPI encodes dynamic values: 32-bit ints as <i4>, others untagged. */
export function encodeUntyped(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return encString(v)
    case 'number':
      if (Number.isInteger(v)) return v >= -2147483648 && v <= 2147483647 ? `<value><i4>${v}</i4></value>` : encInt(v)
      return encFloat(v)
    case 'bigint':
      return encInt(v)
    case 'boolean':
      return encBool(v)
    case 'undefined':
      return '<value></value>'
    case 'object': {
      if (v === null) return '<value></value>'
      if (v instanceof Date) return encDate(v)
      if (Array.isArray(v)) {
        let s = '<value><array><data>'
        for (const x of v) s += encodeUntyped(x)
        return s + '</data></array></value>'
      }
      let s = '<value><struct>'
      for (const k in v as Record<string, unknown>)
        s += `<member><name>${escapeXml(k)}</name>${encodeUntyped((v as Record<string, unknown>)[k])}</member>`
      return s + '</struct></value>'
    }
    default:
      return encString(String(v))
  }
}

/** Compiles and caches type-directed encoders. */
export class XmlEncoders {
  private readonly cache = new Map<string, Enc>()
  constructor(private readonly model: Model) {}

  private key(t: XapiType): string {
    switch (t.kind) {
      case 'ref':
      case 'record':
        return `${t.kind}:${t.class}`
      case 'enum':
        return 'string'
      case 'set':
      case 'option':
        return `${t.kind}(${this.key(t.of)})`
      case 'map':
        return `map(${this.key(t.key)},${this.key(t.value)})`
      default:
        return t.kind
    }
  }

  encoder(t: XapiType): Enc {
    const k = this.key(t)
    let e = this.cache.get(k)
    if (e) return e
    e = this.build(t)
    this.cache.set(k, e)
    return e
  }

  encode(v: unknown, t: XapiType | undefined): string {
    return t ? this.encoder(t)(v) : encodeUntyped(v)
  }

  private build(t: XapiType): Enc {
    switch (t.kind) {
      case 'string':
      case 'ref':
      case 'enum':
        return encString
      case 'int':
        return encInt
      case 'float':
        return encFloat
      case 'bool':
        return encBool
      case 'datetime':
        return encDate
      case 'void':
        return () => '<value></value>'
      case 'option': {
        // ocaml-rpc puts `Some x` on the wire as [x] and `None` as []; stored as x or null (as @xenstack/xapi-wire).
        let inner: Enc | undefined
        return (v) => {
          inner ??= this.encoder(t.of)
          if (v === undefined || v === null) return '<value><array><data></data></array></value>'
          return `<value><array><data>${inner(v)}</data></array></value>`
        }
      }
      case 'set': {
        let inner: Enc | undefined
        return (v) => {
          inner ??= this.encoder(t.of)
          const a = v as unknown[]
          if (!Array.isArray(a) || a.length === 0) return '<value><array><data></data></array></value>'
          let s = '<value><array><data>'
          for (let i = 0; i < a.length; i++) s += inner(a[i])
          return s + '</data></array></value>'
        }
      }
      case 'map': {
        let inner: Enc | undefined
        return (v) => {
          inner ??= this.encoder(t.value)
          const o = v as Record<string, unknown>
          let s = '<value><struct>'
          for (const k in o) s += `<member><name>${escapeXml(k)}</name>${inner(o[k])}</member>`
          return s + '</struct></value>'
        }
      }
      case 'record': {
        const c = this.model.cls(t.class)
        if (!c) return encodeUntyped
        let encs: [string, string, Enc][] | undefined
        return (v) => {
          encs ??= c.fields.map((f) => [f.name, `<member><name>${escapeXml(f.name)}</name>`, this.encoder(f.type)])
          const o = v as Record<string, unknown>
          let s = '<value><struct>'
          for (let i = 0; i < encs.length; i++) {
            const [name, open, enc] = encs[i]
            s += open + enc(o[name]) + '</member>'
          }
          return s + '</struct></value>'
        }
      }
    }
  }
}

// Decoding is @xenstack/xapi-wire's (one parser for client and simulator); re-exported for convenience.
export { decodeMethodCall, decodeMethodResponse } from '@xenstack/xapi-wire'
export type { WireValue, DecodedCall } from '@xenstack/xapi-wire'

/** `<methodResponse><params><param>VALUE</param></params></methodResponse>` around an encoded <value>. */
export function methodResponse(encodedValue: string): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${encodedValue}</param></params></methodResponse>`
}
