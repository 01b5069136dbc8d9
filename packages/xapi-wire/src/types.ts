/** A XenAPI type, parsed from the datamodel's type strings (`VM ref set`, `(string -> int) map`, …). */
export type XapiType =
  | { kind: 'string' }
  | { kind: 'int' }
  | { kind: 'float' }
  | { kind: 'bool' }
  | { kind: 'datetime' }
  | { kind: 'void' }
  | { kind: 'ref'; class: string }
  | { kind: 'record'; class: string }
  | { kind: 'enum'; name: string }
  | { kind: 'set'; of: XapiType }
  | { kind: 'map'; key: XapiType; value: XapiType }
  | { kind: 'option'; of: XapiType }

export class XapiTypeError extends Error {
  override name = 'XapiTypeError'
}

// Parsed types are interned: equal type strings give the same (frozen) object, so callers can cache per type
// object (the converters in convert.ts and the XML-RPC encoder do).
const cache = new Map<string, XapiType>()

const PRIMITIVES: Record<string, XapiType> = {
  string: { kind: 'string' },
  int: { kind: 'int' },
  float: { kind: 'float' },
  bool: { kind: 'bool' },
  datetime: { kind: 'datetime' },
  void: { kind: 'void' },
}
for (const t of Object.values(PRIMITIVES)) Object.freeze(t)

/** Parses a datamodel type string. Throws naming the string when it is not a XenAPI type. */
export function parseType(s: string): XapiType {
  const hit = cache.get(s)
  if (hit !== undefined) return hit
  const p = new TypeParser(s)
  const t = p.parseAll()
  cache.set(s, t)
  return t
}

/** Formats a type back to the datamodel's spelling. */
export function formatType(t: XapiType): string {
  switch (t.kind) {
    case 'string':
    case 'int':
    case 'float':
    case 'bool':
    case 'datetime':
    case 'void':
      return t.kind
    case 'ref':
      return `${t.class} ref`
    case 'record':
      return `${t.class} record`
    case 'enum':
      return `enum ${t.name}`
    case 'set':
      return `${formatType(t.of)} set`
    case 'option':
      return `${formatType(t.of)} option`
    case 'map':
      return `(${formatType(t.key)} -> ${formatType(t.value)}) map`
  }
}

/** Grammar: type := atom (' set' | ' option')*; atom := prim | NAME ' ref' | NAME ' record' | 'enum ' NAME |
 *  '(' type ' -> ' type ') map'. NAME may be `<class>` (the event record's snapshot, as the datamodel spells it). */
class TypeParser {
  private pos = 0
  constructor(private readonly s: string) {}

  parseAll(): XapiType {
    const t = this.parseType()
    this.skipSpaces()
    if (this.pos !== this.s.length) this.fail(`unexpected ${JSON.stringify(this.s.slice(this.pos))}`)
    return t
  }

  private fail(what: string): never {
    throw new XapiTypeError(
      `not a XenAPI type: ${JSON.stringify(this.s)} (${what} at offset ${this.pos}; expected e.g. "string", ` +
        `"VM ref", "enum vm_power_state", "int set", "(string -> string) map", "string option")`,
    )
  }

  private skipSpaces(): void {
    while (this.s.charCodeAt(this.pos) === 32) this.pos++
  }

  private word(): string {
    this.skipSpaces()
    const start = this.pos
    while (this.pos < this.s.length) {
      const c = this.s[this.pos]!
      if (c === ' ' || c === '(' || c === ')') break
      if (c === '-' && this.s[this.pos + 1] === '>') break
      this.pos++
    }
    return this.s.slice(start, this.pos)
  }

  private peekWord(): string {
    const save = this.pos
    const w = this.word()
    this.pos = save
    return w
  }

  private parseType(): XapiType {
    let t = this.parseAtom()
    for (;;) {
      const w = this.peekWord()
      if (w === 'set') {
        this.word()
        t = intern({ kind: 'set', of: t })
      } else if (w === 'option') {
        this.word()
        t = intern({ kind: 'option', of: t })
      } else return t
    }
  }

  private parseAtom(): XapiType {
    this.skipSpaces()
    if (this.s[this.pos] === '(') {
      this.pos++
      const key = this.parseType()
      this.skipSpaces()
      if (this.s.slice(this.pos, this.pos + 2) !== '->') this.fail('expected "->"')
      this.pos += 2
      const value = this.parseType()
      this.skipSpaces()
      if (this.s[this.pos] !== ')') this.fail('expected ")"')
      this.pos++
      if (this.word() !== 'map') this.fail('expected "map" after ")"')
      return intern({ kind: 'map', key, value })
    }
    const w = this.word()
    if (w === '') this.fail('missing type')
    const prim = PRIMITIVES[w]
    if (prim !== undefined) return prim
    if (w === 'enum') {
      const name = this.word()
      if (!isName(name)) this.fail('expected an enum name')
      return intern({ kind: 'enum', name })
    }
    if (!isName(w)) this.fail(`bad name ${JSON.stringify(w)}`)
    const suffix = this.word()
    if (suffix === 'ref') return intern({ kind: 'ref', class: w })
    if (suffix === 'record') return intern({ kind: 'record', class: w })
    return this.fail(`expected "ref" or "record" after ${JSON.stringify(w)}`)
  }
}

function isName(w: string): boolean {
  return /^(?:[A-Za-z_][A-Za-z0-9_]*|<class>)$/.test(w)
}

function intern(t: XapiType): XapiType {
  const key = formatType(t)
  const hit = cache.get(key)
  if (hit !== undefined) return hit
  Object.freeze(t)
  cache.set(key, t)
  return t
}
