/**
 * XML-RPC for the simulator's hot path: a type-directed encoder that writes exactly what XAPI writes (compact, ints
 * as untagged decimal strings, `<boolean>1</boolean>`, `<double>` with %.16g, `<dateTime.iso8601>`, empty strings as
 * `<value></value>`), with record encoders compiled once per class, and a tolerant <methodCall> decoder (whitespace
 * between tags, every scalar tag, entities).
 */
import type { Model, XapiType } from './model.js'

const ESC_RE = /[&<>"\r]/
export function escapeXml(s: string): string {
  if (!ESC_RE.test(s)) return s
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\r/g, '&#13;')
}

/** %.16g as OCaml's Printf formats floats. */
export function formatDouble(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return String(n)
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : n < 0 ? '-inf' : 'nan'
  const s = String(Number(n.toPrecision(16)))
  return s.replace('e+', 'e+').replace(/e([+-])(\d)$/, 'e$10$2')
}

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
      case 'option':
        return (v) => (v === undefined || v === null ? '<value></value>' : this.encoder(t.of)(v))
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

// ---------------------------------------------------------------------------------------------------------------
// Decoding

export type WireValue = string | number | boolean | null | WireValue[] | { [key: string]: WireValue }

export class XmlParseError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`XML-RPC parse error at offset ${offset}: ${message}`)
    this.name = 'XmlParseError'
  }
}

function unescapeXml(s: string): string {
  if (s.indexOf('&') < 0) return s
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    switch (e) {
      case 'lt':
        return '<'
      case 'gt':
        return '>'
      case 'amp':
        return '&'
      case 'quot':
        return '"'
      case 'apos':
        return "'"
    }
    return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10))
  })
}

class Parser {
  pos = 0
  constructor(readonly s: string) {}

  fail(msg: string): never {
    throw new XmlParseError(msg, this.pos)
  }

  ws(): void {
    const s = this.s
    let p = this.pos
    for (;;) {
      const c = s.charCodeAt(p)
      if (c === 32 || c === 10 || c === 13 || c === 9) p++
      else break
    }
    this.pos = p
  }

  /** Skips the XML declaration and comments. */
  prolog(): void {
    for (;;) {
      this.ws()
      if (this.s.startsWith('<?', this.pos)) {
        const e = this.s.indexOf('?>', this.pos)
        if (e < 0) this.fail('unterminated XML declaration')
        this.pos = e + 2
      } else if (this.s.startsWith('<!--', this.pos)) {
        const e = this.s.indexOf('-->', this.pos)
        if (e < 0) this.fail('unterminated comment')
        this.pos = e + 3
      } else return
    }
  }

  tryOpen(name: string): boolean {
    this.ws()
    const t = `<${name}>`
    if (this.s.startsWith(t, this.pos)) {
      this.pos += t.length
      return true
    }
    return false
  }

  open(name: string): void {
    if (!this.tryOpen(name)) this.fail(`expected <${name}>`)
  }

  close(name: string): void {
    this.ws()
    const t = `</${name}>`
    if (!this.s.startsWith(t, this.pos)) this.fail(`expected </${name}>`)
    this.pos += t.length
  }

  text(name: string): string {
    const e = this.s.indexOf(`</${name}>`, this.pos)
    if (e < 0) this.fail(`unterminated <${name}>`)
    const t = this.s.slice(this.pos, e)
    if (t.includes('<')) this.fail(`unexpected markup inside <${name}>`)
    this.pos = e + name.length + 3
    return unescapeXml(t)
  }

  value(): WireValue {
    this.ws()
    const selfClosed = /^<value\s*\/>/.exec(this.s.slice(this.pos, this.pos + 16)) // `<value/>`, `<value />`
    if (selfClosed) {
      this.pos += selfClosed[0].length
      return ''
    }
    this.open('value')
    const start = this.pos
    // untagged string: text directly up to </value>
    this.ws()
    if (!this.s.startsWith('<', this.pos) || this.s.startsWith('</value>', this.pos)) {
      this.pos = start
      return this.text('value')
    }
    const m = /^<([a-zA-Z0-9.]+)\s*(\/?)>/.exec(this.s.slice(this.pos, this.pos + 40))
    if (!m) this.fail('expected a value type tag')
    const tag = m[1]
    this.pos += m[0].length
    let v: WireValue
    if (m[2] === '/') {
      if (tag === 'nil') v = null
      else if (tag === 'string') v = ''
      else if (tag === 'struct') v = {}
      else this.fail(`unexpected empty <${tag}/>`)
      this.close('value')
      return v
    }
    switch (tag) {
      case 'string':
        v = this.text('string')
        break
      case 'i4':
      case 'int':
      case 'i8': {
        const t = this.text(tag).trim()
        if (!/^[-+]?\d+$/.test(t)) this.fail(`bad integer ${JSON.stringify(t)}`)
        const n = Number(t)
        v = Number.isSafeInteger(n) ? n : t
        break
      }
      case 'double': {
        const t = this.text('double').trim()
        const n = Number(t)
        if (Number.isNaN(n) && t !== 'nan') this.fail(`bad double ${JSON.stringify(t)}`)
        v = n
        break
      }
      case 'boolean': {
        const t = this.text('boolean').trim()
        if (t !== '0' && t !== '1') this.fail(`bad boolean ${JSON.stringify(t)}`)
        v = t === '1'
        break
      }
      case 'dateTime.iso8601':
        v = this.text('dateTime.iso8601').trim()
        break
      case 'base64':
        v = Buffer.from(this.text('base64'), 'base64').toString('utf8')
        break
      case 'nil':
        this.close('nil')
        v = null
        break
      case 'array': {
        const a: WireValue[] = []
        if (this.tryOpen('data')) {
          for (;;) {
            this.ws()
            if (this.s.startsWith('</data>', this.pos)) break
            a.push(this.value())
          }
          this.close('data')
        } else {
          this.ws()
          const d = /^<data\s*\/>/.exec(this.s.slice(this.pos, this.pos + 16)) // `<data/>`, `<data />`
          if (!d) this.fail('expected <data>')
          this.pos += d[0].length
        }
        this.close('array')
        v = a
        break
      }
      case 'struct': {
        const o: Record<string, WireValue> = {}
        for (;;) {
          if (!this.tryOpen('member')) break
          this.open('name')
          const k = this.text('name')
          o[k] = this.value()
          this.close('member')
        }
        this.close('struct')
        v = o
        break
      }
      default:
        this.fail(`unknown value type <${tag}>`)
    }
    this.close('value')
    return v
  }
}

export interface DecodedCall {
  method: string
  params: WireValue[]
}

/** Parses a <methodCall>; throws XmlParseError naming the offset on malformed input. */
export function decodeMethodCall(xml: string): DecodedCall {
  const p = new Parser(xml)
  p.prolog()
  p.open('methodCall')
  p.open('methodName')
  const method = p.text('methodName').trim()
  const params: WireValue[] = []
  p.ws()
  const empty = /^<params\s*\/>/.exec(p.s.slice(p.pos, p.pos + 16)) // `<params/>` or `<params />` (@vates/xml-rpc)
  if (empty) p.pos += empty[0].length
  else if (p.tryOpen('params')) {
    while (p.tryOpen('param')) {
      params.push(p.value())
      p.close('param')
    }
    p.close('params')
  }
  p.close('methodCall')
  p.ws()
  if (p.pos !== xml.length) p.fail('trailing content after </methodCall>')
  return { method, params }
}

/** Parses a <methodResponse> (used by the plugin runner and tests); returns the single value. */
export function decodeMethodResponse(xml: string): WireValue {
  const p = new Parser(xml)
  p.prolog()
  p.open('methodResponse')
  if (p.tryOpen('fault')) {
    const v = p.value()
    p.close('fault')
    p.close('methodResponse')
    const f = v as Record<string, WireValue>
    const err = new Error(`XML-RPC fault ${String(f?.faultCode)}: ${String(f?.faultString)}`) as Error & {
      faultCode?: WireValue
      faultString?: WireValue
    }
    err.faultCode = f?.faultCode
    err.faultString = f?.faultString
    throw err
  }
  p.open('params')
  p.open('param')
  const v = p.value()
  p.close('param')
  p.close('params')
  p.close('methodResponse')
  return v
}

/** `<methodResponse><params><param>VALUE</param></params></methodResponse>` around an encoded <value>. */
export function methodResponse(encodedValue: string): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${encodedValue}</param></params></methodResponse>`
}
