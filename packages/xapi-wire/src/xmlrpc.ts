/**
 * XML-RPC as XAPI speaks it (../shared/reference/xapi-protocol.md §2–§3.1). A hand-written encoder and scanner:
 * this is on the hot path of both the client and the simulator (bench/codec.mjs measures it against libraries).
 */
import type { XapiType } from './types.js'
import { getMessage } from './datamodel.js'
import { converterFor } from './convert.js'
import { unwrapEnvelope } from './envelope.js'
import { encoderFor, escapeXml, encodeGeneric } from './xmlrpc-encode.js'

/** C's `%.16g`, as XAPI formats doubles: one implementation for client and simulator. */
export { formatDouble } from './xmlrpc-encode.js'
import { decodeUtf8 } from './utf8.js'

/**
 * Decoded XML-RPC values, generic form: untagged and <string> → string; <i4>/<int>/<i8> → number (or string
 * when beyond Number.MAX_SAFE_INTEGER); <double> → number; <boolean> → boolean; <dateTime.iso8601> → string
 * as sent (`20250319T04:16:24Z`); <array> → array; <struct> → object; <nil/> → null; <base64> → the decoded
 * bytes as a UTF-8 string.
 */
export type WireValue = string | number | boolean | null | WireValue[] | { [key: string]: WireValue }

/**
 * Encodes a JS value as an XML-RPC <value>. With a type, as XAPI emits it: int → untagged decimal string,
 * float → <double> (%.16g), bool → <boolean>1/0, datetime (Date or string) → <dateTime.iso8601>, maps → struct with
 * string keys, sets → array, records → struct with every field by its type. Without a type: string → untagged,
 * integer number → <int> when 32-bit else untagged string, other number → <double>, bigint → untagged string,
 * boolean, Date, array, object, null/undefined → <nil/>.
 */
export function encodeValue(v: unknown, type?: XapiType): string {
  return type === undefined ? encodeGeneric(v) : encoderFor(type)(v)
}

/**
 * A <methodCall>. Without `types`, the parameter types come from the datamodel when the method is known
 * (`VM.start`, `Async.VM.start`, `VM_start`), so ints go out as XAPI expects them; unknown methods are encoded
 * generically.
 */
export function encodeMethodCall(method: string, params: unknown[], types?: (XapiType | undefined)[]): string {
  let ts: readonly (XapiType | undefined)[] | undefined = types
  if (ts === undefined) ts = paramTypesOf(method)
  let out = '<?xml version="1.0"?><methodCall><methodName>' + escapeXml(method) + '</methodName><params>'
  for (let i = 0; i < params.length; i++) {
    const t = ts?.[i]
    out += '<param>' + (t === undefined ? encodeGeneric(params[i]) : encoderFor(t)(params[i])) + '</param>'
  }
  return out + '</params></methodCall>'
}

const paramTypeCache = new Map<string, readonly XapiType[] | undefined>()
function paramTypesOf(method: string): readonly XapiType[] | undefined {
  if (paramTypeCache.has(method)) return paramTypeCache.get(method)
  const name = method.startsWith('Async.')
    ? method.slice(6)
    : method.startsWith('InternalAsync.')
      ? method.slice(14)
      : method
  const found = getMessage(name)
  const types = found?.message.params.map((p) => p.type)
  if (paramTypeCache.size < 10_000) paramTypeCache.set(method, types)
  return types
}

/** A successful <methodResponse> wrapping one value (XAPI puts its {Status, Value} struct in it). */
export function encodeMethodResponse(value: unknown, type?: XapiType): string {
  return '<methodResponse><params><param>' + encodeValue(value, type) + '</param></params></methodResponse>'
}

/**
 * XAPI's success envelope, encoded directly: `{Status: Success, Value: <value by type>}` in a <methodResponse>.
 * Equivalent to encodeMethodResponse(success(value)) with the Value typed.
 */
export function encodeSuccessResponse(value: unknown, type?: XapiType): string {
  return (
    '<methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member>' +
    '<member><name>Value</name>' +
    encodeValue(value, type) +
    '</member></struct></value></param></params></methodResponse>'
  )
}

/** XAPI's failure envelope: `{Status: Failure, ErrorDescription: [code, ...params]}`, every element a string. */
export function encodeFailureResponse(errorDescription: readonly unknown[]): string {
  let out =
    '<methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member>' +
    '<member><name>ErrorDescription</name><value><array><data>'
  for (const e of errorDescription) out += '<value>' + escapeXml(String(e)) + '</value>'
  return out + '</data></array></value></member></struct></value></param></params></methodResponse>'
}

/** A <methodResponse><fault> (used only by plugins; XAPI's API errors are Failure envelopes). */
export function encodeFault(code: number, message: string): string {
  return (
    '<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>' +
    String(Math.trunc(code)) +
    '</int></value></member><member><name>faultString</name><value>' +
    escapeXml(message) +
    '</value></member></struct></value></fault></methodResponse>'
  )
}

export interface DecodedCall {
  method: string
  params: WireValue[]
}

export class XmlRpcParseError extends Error {
  override name = 'XmlRpcParseError'
  constructor(
    message: string,
    readonly offset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(message)
  }
}

export class XmlRpcFault extends Error {
  override name = 'XmlRpcFault'
  constructor(
    readonly faultCode: number,
    readonly faultString: string,
  ) {
    super(`XML-RPC fault ${faultCode}: ${faultString}`)
  }
}

/**
 * Parses a <methodCall>. Throws XmlRpcParseError naming the position on malformed input, InvalidUtf8Error for a
 * Buffer that is not UTF-8 (XAPI answers INVALID_VALUE).
 */
export function decodeMethodCall(xml: string | Buffer): DecodedCall {
  const p = new Scanner(decodeUtf8(xml, 'XML-RPC request'))
  p.prolog()
  p.open('methodCall')
  p.open('methodName')
  const method = p.text().trim()
  p.close('methodName')
  const params: WireValue[] = []
  const tag = p.peekTag()
  if (tag === 'params') {
    if (p.openMaybeEmpty('params')) {
      while (p.peekTag() === 'param') {
        if (!p.openMaybeEmpty('param')) {
          params.push('')
          continue
        }
        params.push(p.value())
        p.close('param')
      }
      p.close('params')
    }
  }
  p.close('methodCall')
  p.end()
  if (method === '') p.fail('a method name in <methodName>', p.pos)
  return { method, params }
}

/** Parses a <methodResponse>: returns the value, or throws XmlRpcFault for a <fault>. */
export function decodeMethodResponse(xml: string | Buffer): WireValue {
  const p = new Scanner(decodeUtf8(xml, 'XML-RPC response'))
  p.prolog()
  p.open('methodResponse')
  const tag = p.peekTag()
  if (tag === 'fault') {
    p.open('fault')
    const v = p.value()
    p.close('fault')
    p.close('methodResponse')
    p.end()
    const s = v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {}
    const code = Number(s.faultCode ?? 0)
    throw new XmlRpcFault(Number.isFinite(code) ? code : 0, String(s.faultString ?? ''))
  }
  p.open('params')
  p.open('param')
  const v = p.value()
  p.close('param')
  p.close('params')
  p.close('methodResponse')
  p.end()
  return v
}

/**
 * XAPI's response envelope with its Value converted by type: `unwrapEnvelope(decodeMethodResponse(xml))` then
 * `fromWire(value, type)`. (A one-pass typed scanner was measured slower than this: the per-class compiled
 * converters build objects with constant shapes.) Throws XmlRpcParseError, XmlRpcFault, EnvelopeError or
 * WireValueError naming the field.
 */
export function decodeTypedResponse(
  xml: string | Buffer,
  type: XapiType,
): { ok: true; value: unknown } | { ok: false; errorDescription: string[] } {
  const env = unwrapEnvelope(decodeMethodResponse(xml))
  return env.ok ? { ok: true, value: converterFor(type)(env.value) } : env
}

/** Parses a bare <value>…</value> (as stored in XAPI's `task.result`; `""` and `<value></value>` give ''). */
export function decodeValue(xml: string | Buffer): WireValue {
  const s = decodeUtf8(xml, 'XML-RPC value')
  const p = new Scanner(s)
  p.skipMisc()
  if (p.pos >= s.length) return ''
  const v = p.value()
  p.end()
  return v
}

const LT = 60 // <
const GT = 62 // >
const SLASH = 47

const C_V = 118 // v
const C_M = 109 // m
const C_N = 110 // n

/** `lit` at `p` in `s`. String.prototype.startsWith(lit, p) is several times slower in V8 on this hot path. */
function has(s: string, p: number, lit: string): boolean {
  const n = lit.length
  for (let i = 0; i < n; i++) if (s.charCodeAt(p + i) !== lit.charCodeAt(i)) return false
  return true
}
/** `<value>` at p (the compact opening tag). */
function isValueOpen(s: string, p: number): boolean {
  return (
    s.charCodeAt(p) === LT &&
    s.charCodeAt(p + 1) === C_V &&
    s.charCodeAt(p + 6) === GT &&
    s.charCodeAt(p + 2) === 97 /* a */ &&
    s.charCodeAt(p + 3) === 108 /* l */ &&
    s.charCodeAt(p + 4) === 117 /* u */ &&
    s.charCodeAt(p + 5) === 101 /* e */
  )
}
/** `</value>` at p. */
function isValueClose(s: string, p: number): boolean {
  return (
    s.charCodeAt(p) === LT &&
    s.charCodeAt(p + 1) === SLASH &&
    s.charCodeAt(p + 2) === C_V &&
    s.charCodeAt(p + 7) === GT &&
    s.charCodeAt(p + 3) === 97 /* a */ &&
    s.charCodeAt(p + 6) === 101 /* e */
  )
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9
}

/** Decodes entity and character references and normalises line ends, for a text run with `&` or `\r`. */
function decodeText(raw: string, base: number, scanner: Scanner): string {
  let s = raw
  if (s.indexOf('\r') !== -1) s = s.replace(/\r\n?/g, '\n')
  if (s.indexOf('&') === -1) return s
  return s.replace(/&([^;&<\s]*);?/g, (m, name: string, idx: number) => {
    if (!m.endsWith(';')) scanner.fail('";" ending the entity reference', base + idx)
    if (name.charCodeAt(0) === 35 /* # */) {
      const hex = name[1] === 'x' || name[1] === 'X'
      const digits = hex ? name.slice(2) : name.slice(1)
      const cp =
        digits !== '' && (hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits) ? parseInt(digits, hex ? 16 : 10) : NaN
      if (!(cp >= 0 && cp <= 0x10ffff)) scanner.fail('a valid character reference', base + idx)
      return String.fromCodePoint(cp)
    }
    const e = ENTITIES[name]
    if (e === undefined) scanner.fail('one of &lt; &gt; &amp; &quot; &apos; or a character reference', base + idx)
    return e
  })
}

class Scanner {
  pos = 0
  /** Member names of the last struct per first member name (see structBody). */
  private readonly shapes = new Map<string, string[]>()
  constructor(readonly s: string) {}

  fail(expected: string, at = this.pos): never {
    const s = this.s
    let line = 1
    let lineStart = 0
    for (let i = 0; i < at && i < s.length; i++) {
      if (s.charCodeAt(i) === 10) {
        line++
        lineStart = i + 1
      }
    }
    const found = at >= s.length ? 'end of input' : JSON.stringify(s.slice(at, at + 24))
    throw new XmlRpcParseError(
      `malformed XML-RPC at offset ${at} (line ${line}, column ${at - lineStart + 1}): expected ${expected}, found ${found}`,
      at,
      line,
      at - lineStart + 1,
    )
  }

  /** Skips whitespace, comments and processing instructions. */
  skipMisc(): void {
    const s = this.s
    for (;;) {
      while (this.pos < s.length && isSpace(s.charCodeAt(this.pos))) this.pos++
      if (s.charCodeAt(this.pos) !== LT) return
      const c = s.charCodeAt(this.pos + 1)
      if (c === 63 /* ? */) {
        const end = s.indexOf('?>', this.pos + 2)
        if (end === -1) this.fail('"?>" closing the processing instruction')
        this.pos = end + 2
      } else if (c === 33 /* ! */ && s.startsWith('<!--', this.pos)) {
        const end = s.indexOf('-->', this.pos + 4)
        if (end === -1) this.fail('"-->" closing the comment')
        this.pos = end + 3
      } else return
    }
  }

  prolog(): void {
    if (this.s.charCodeAt(0) === 0xfeff) this.pos = 1
    this.skipMisc()
    if (this.s.startsWith('<!DOCTYPE', this.pos)) {
      const end = this.s.indexOf('>', this.pos)
      if (end === -1) this.fail('">" closing the DOCTYPE')
      this.pos = end + 1
      this.skipMisc()
    }
  }

  end(): void {
    this.skipMisc()
    if (this.pos !== this.s.length) this.fail('end of document')
  }

  /** The name of the next tag (after whitespace) without consuming it; '' when not at an opening tag. */
  peekTag(): string {
    this.skipMisc()
    const s = this.s
    if (s.charCodeAt(this.pos) !== LT) return ''
    let i = this.pos + 1
    const start = i
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c === GT || c === SLASH || isSpace(c)) break
    }
    return s.slice(start, i)
  }

  /** Consumes `<name>` (attributes tolerated). */
  open(name: string): void {
    if (!this.openMaybeEmpty(name)) this.fail(`content in <${name}>`, this.pos)
  }

  /** Consumes `<name>` and returns true, or `<name/>` and returns false. */
  openMaybeEmpty(name: string): boolean {
    this.skipMisc()
    const s = this.s
    const at = this.pos
    if (s.charCodeAt(at) !== LT || !s.startsWith(name, at + 1)) this.fail(`<${name}>`, at)
    let i = at + 1 + name.length
    const c = s.charCodeAt(i)
    if (c === GT) {
      this.pos = i + 1
      return true
    }
    if (!(c === SLASH || isSpace(c))) this.fail(`<${name}>`, at)
    i = s.indexOf('>', i)
    if (i === -1) this.fail(`">" closing <${name}`, at)
    this.pos = i + 1
    return s.charCodeAt(i - 1) !== SLASH
  }

  close(name: string): void {
    this.skipMisc()
    const s = this.s
    const at = this.pos
    if (s.charCodeAt(at) !== LT || s.charCodeAt(at + 1) !== SLASH || !s.startsWith(name, at + 2)) {
      this.fail(`</${name}>`, at)
    }
    let i = at + 2 + name.length
    while (isSpace(s.charCodeAt(i))) i++
    if (s.charCodeAt(i) !== GT) this.fail(`</${name}>`, at)
    this.pos = i + 1
  }

  /** Character data up to the next markup (entities decoded, CDATA sections included, comments skipped). */
  text(): string {
    const s = this.s
    let out = ''
    for (;;) {
      const start = this.pos
      let lt = s.indexOf('<', start)
      if (lt === -1) lt = s.length
      if (lt > start) {
        const raw = s.slice(start, lt)
        out += raw.indexOf('&') === -1 && raw.indexOf('\r') === -1 ? raw : decodeText(raw, start, this)
      }
      this.pos = lt
      if (s.startsWith('<![CDATA[', lt)) {
        const end = s.indexOf(']]>', lt + 9)
        if (end === -1) this.fail('"]]>" closing the CDATA section', lt)
        out += s.slice(lt + 9, end).replace(/\r\n?/g, '\n')
        this.pos = end + 3
        continue
      }
      if (s.startsWith('<!--', lt)) {
        const end = s.indexOf('-->', lt + 4)
        if (end === -1) this.fail('"-->" closing the comment', lt)
        this.pos = end + 3
        continue
      }
      if (lt >= s.length) this.fail('markup', lt)
      return out
    }
  }

  /** Text content of a scalar element whose opening tag was consumed, then its closing tag. */
  scalar(name: string): string {
    const t = this.text()
    this.close(name)
    return t
  }

  /** Consumes `</value>`: the compact form directly, anything else through close(). */
  private closeValue(): void {
    if (isValueClose(this.s, this.pos)) this.pos += 8
    else this.close('value')
  }

  value(): WireValue {
    const s = this.s
    // Compact input (what XAPI and our encoder send) takes the fast paths; anything else the tolerant ones.
    if (isValueOpen(s, this.pos)) this.pos += 7
    else if (!this.openMaybeEmpty('value')) return ''
    let start = this.pos
    const c0 = s.charCodeAt(start)
    if (c0 !== LT) {
      // Untagged string, XAPI's most common value.
      const lt = s.indexOf('<', start)
      if (lt !== -1 && isValueClose(s, lt)) {
        const raw = s.slice(start, lt)
        this.pos = lt + 8
        return raw.indexOf('&') === -1 && raw.indexOf('\r') === -1 ? raw : decodeText(raw, start, this)
      }
    }
    if (c0 !== LT || has(s, start, '<![CDATA[')) {
      const t = this.text()
      if (s.charCodeAt(this.pos + 1) === SLASH) {
        this.closeValue()
        return t
      }
      // Whitespace before a typed element.
      if (t.trim() !== '') this.fail('</value> after a string value', this.pos)
      start = this.pos
    } else if (s.charCodeAt(start + 1) === SLASH) {
      this.closeValue()
      return ''
    }
    let v: WireValue
    // Fast paths for compact typed values.
    if (has(s, start, '<struct>')) {
      this.pos = start + 8
      v = this.structBody()
      this.closeValue()
      return v
    }
    if (has(s, start, '<array><data>')) {
      this.pos = start + 13
      v = this.arrayBody()
      this.closeValue()
      return v
    }
    if (has(s, start, '<boolean>')) {
      const c = s.charCodeAt(start + 9)
      if ((c === 49 || c === 48) && has(s, start + 10, '</boolean>')) {
        this.pos = start + 20
        this.closeValue()
        return c === 49
      }
    }
    const tag = this.peekTag()
    switch (tag) {
      case 'string':
        v = this.openMaybeEmpty('string') ? this.scalar('string') : ''
        break
      case 'i4':
      case 'int':
      case 'i8':
      case 'ex:i8':
      case 'i2':
      case 'i1': {
        const at = this.pos
        const raw = this.openMaybeEmpty(tag) ? this.scalar(tag).trim() : ''
        if (!/^[-+]?\d+$/.test(raw)) this.fail(`an integer in <${tag}>`, at)
        const n = Number(raw)
        v = Number.isSafeInteger(n) ? n : raw.replace(/^\+/, '')
        break
      }
      case 'double': {
        const at = this.pos
        const raw = this.openMaybeEmpty(tag) ? this.scalar(tag).trim() : ''
        const n = parseDouble(raw)
        if (n === undefined) this.fail('a number in <double>', at)
        v = n
        break
      }
      case 'boolean': {
        const at = this.pos
        const raw = this.openMaybeEmpty(tag) ? this.scalar(tag).trim() : ''
        if (raw === '1' || raw === 'true') v = true
        else if (raw === '0' || raw === 'false') v = false
        else this.fail('0 or 1 in <boolean>', at)
        break
      }
      case 'dateTime.iso8601':
        v = this.openMaybeEmpty(tag) ? this.scalar(tag).trim() : ''
        break
      case 'base64':
        v = this.openMaybeEmpty(tag) ? Buffer.from(this.scalar(tag), 'base64').toString('utf8') : ''
        break
      case 'nil':
      case 'ex:nil':
        if (this.openMaybeEmpty(tag)) this.close(tag)
        v = null
        break
      case 'struct':
        v = this.openMaybeEmpty('struct') ? this.structBody() : {}
        break
      case 'array':
        v = this.array()
        break
      default:
        return this.fail(
          'a value type (<string>, <int>, <i4>, <i8>, <double>, <boolean>, <dateTime.iso8601>, <base64>, <struct>, <array>, <nil/>) or </value>',
        )
    }
    this.closeValue()
    return v
  }

  /** The next member's name (its `<member><name>…</name>` consumed), or undefined at `</struct>` (not consumed). */
  private memberName(): string | undefined {
    const s = this.s
    const p = this.pos
    if (
      s.charCodeAt(p) === LT &&
      s.charCodeAt(p + 1) === C_M &&
      s.charCodeAt(p + 7) === GT &&
      s.charCodeAt(p + 9) === C_N &&
      s.charCodeAt(p + 13) === GT &&
      s.charCodeAt(p + 8) === LT &&
      s.charCodeAt(p + 2) === 101 /* e */ &&
      s.charCodeAt(p + 6) === 114 /* r */ &&
      s.charCodeAt(p + 10) === 97 /* a */
    ) {
      // Compact member: <member><name>N</name><value>…</value></member>
      const lt = s.indexOf('<', p + 14)
      if (
        lt !== -1 &&
        s.charCodeAt(lt + 1) === SLASH &&
        s.charCodeAt(lt + 2) === C_N &&
        s.charCodeAt(lt + 6) === GT &&
        s.charCodeAt(lt + 3) === 97 /* a */
      ) {
        const name = s.slice(p + 14, lt)
        this.pos = lt + 7
        return name.indexOf('&') !== -1 || name.indexOf('\r') !== -1 ? decodeText(name, p + 14, this) : name
      }
      this.pos = p + 14
      const name = this.text()
      this.close('name')
      return name
    }
    this.skipMisc()
    if (s.charCodeAt(this.pos) === LT && s.charCodeAt(this.pos + 1) === SLASH) return undefined
    this.open('member')
    this.open('name')
    const name = this.text()
    this.close('name')
    return name
  }

  /** Consumes `</member>`. */
  private endMember(): void {
    const s = this.s
    const q = this.pos
    if (
      s.charCodeAt(q) === LT &&
      s.charCodeAt(q + 1) === SLASH &&
      s.charCodeAt(q + 2) === C_M &&
      s.charCodeAt(q + 8) === GT &&
      s.charCodeAt(q + 7) === 114 /* r */
    ) {
      this.pos = q + 9
    } else this.close('member')
  }

  /** Consumes `</struct>`. */
  private endStruct(): void {
    if (has(this.s, this.pos, '</struct>')) this.pos += 9
    else this.close('struct')
  }

  /**
   * `<member><name>key</name>` at pos for a predicted key: consumes it and returns the key (the same string
   * object as before, which V8 has already internalised), or returns undefined and consumes nothing.
   */
  private predictedMember(key: string): string | undefined {
    const s = this.s
    const p = this.pos
    if (
      s.charCodeAt(p) !== LT ||
      s.charCodeAt(p + 1) !== C_M ||
      s.charCodeAt(p + 7) !== GT ||
      s.charCodeAt(p + 8) !== LT ||
      s.charCodeAt(p + 9) !== C_N ||
      s.charCodeAt(p + 13) !== GT
    ) {
      return undefined
    }
    const n = key.length
    const q = p + 14
    for (let i = 0; i < n; i++) if (s.charCodeAt(q + i) !== key.charCodeAt(i)) return undefined
    const e = q + n
    if (
      s.charCodeAt(e) !== LT ||
      s.charCodeAt(e + 1) !== SLASH ||
      s.charCodeAt(e + 2) !== C_N ||
      s.charCodeAt(e + 6) !== GT ||
      s.charCodeAt(e + 3) !== 97 /* a */
    ) {
      return undefined
    }
    this.pos = e + 7
    return key
  }

  structBody(): { [key: string]: WireValue } {
    const out: { [key: string]: WireValue } = {}
    // Structs of one kind (records of a class, in a get_all_records) repeat their member names in order: predict
    // each name from the last struct that started with the same first name (as V8's JSON.parse does with its
    // transition tree), which skips slicing and re-internalising the key.
    let pred: string[] | undefined
    let hits = 0
    let keys: string[] | undefined
    for (let i = 0; ; i++) {
      let name = pred !== undefined && i < pred.length ? this.predictedMember(pred[i]!) : undefined
      if (name !== undefined) hits++
      else {
        name = this.memberName()
        if (name === undefined) break
      }
      if (i === 0) {
        pred = this.shapes.get(name)
        if (pred === undefined && this.shapes.size < 64) this.shapes.set(name, (keys = [name]))
        else keys = [name]
      } else keys!.push(name)
      const v = this.value()
      this.endMember()
      if (name === '__proto__') Object.defineProperty(out, name, { value: v, enumerable: true, writable: true })
      else out[name] = v
    }
    // Learn this struct's names when the prediction did not cover them.
    if (pred !== undefined && keys !== undefined && hits !== keys.length - 1 && this.shapes.size <= 64) {
      this.shapes.set(keys[0]!, keys)
    }
    this.endStruct()
    return out
  }

  array(): WireValue[] {
    if (!this.openMaybeEmpty('array')) return []
    if (!this.openMaybeEmpty('data')) {
      this.close('array')
      return []
    }
    return this.arrayBody()
  }

  /** The values of an <array><data> whose opening tags were consumed, and the closing tags. */
  arrayBody(): WireValue[] {
    const out: WireValue[] = []
    const s = this.s
    for (;;) {
      if (!isValueOpen(s, this.pos)) {
        this.skipMisc()
        if (s.charCodeAt(this.pos) === LT && s.charCodeAt(this.pos + 1) === SLASH) break
      }
      out.push(this.value())
    }
    if (has(s, this.pos, '</data></array>')) this.pos += 15
    else {
      this.close('data')
      this.close('array')
    }
    return out
  }
}

function parseDouble(raw: string): number | undefined {
  const t = raw.toLowerCase()
  if (t === 'nan' || t === '-nan') return NaN
  if (t === 'inf' || t === '+inf' || t === 'infinity') return Infinity
  if (t === '-inf' || t === '-infinity') return -Infinity
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/.test(t)) return undefined
  return Number(t)
}
