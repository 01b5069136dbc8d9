/**
 * The implicit messages of every class, generated from the datamodel (§4.4): get_record, get_by_uuid,
 * get_by_name_label, get_all, get_all_records, get_all_records_where (XAPI's query language), field getters, setters
 * for RW fields, map add_to_/remove_from_ (MAP_DUPLICATE_KEY), set add_/remove_, generated constructors taking a
 * record (missing required fields rejected) and destroy.
 */
import { XapiError } from '../errors.js'
import type { ClassModel, FieldSpec } from '../model.js'
import { ownBytes, type Row, type XapiRecord } from '../store.js'
import type { Simulator } from '../simulator.js'
import { coerce, WireResult } from '../dispatch.js'

// -- query language ------------------------------------------------------------------------------------------------

type Expr =
  | { k: 'true' }
  | { k: 'false' }
  | { k: 'not'; e: Expr }
  | { k: 'and' | 'or'; a: Expr; b: Expr }
  | { k: 'eq'; a: Val; b: Val }
type Val = { field: string } | { lit: string }

/** Parses `field "name__label"="x" and (not field "y"="z" or true)`; throws INVALID_VALUE naming the position. */
export function parseQuery(src: string): Expr {
  let i = 0
  const ws = () => {
    while (i < src.length && /\s/.test(src[i])) i++
  }
  const bad = (what: string): never => {
    throw new XapiError('INVALID_VALUE', 'expr', `${src} (expected ${what} at offset ${i})`)
  }
  const word = (w: string) => {
    ws()
    if (src.startsWith(w, i) && !/[A-Za-z_]/.test(src[i + w.length] ?? '')) {
      i += w.length
      return true
    }
    return false
  }
  const str = (): string => {
    ws()
    if (src[i] !== '"') bad('a quoted string')
    i++
    let s = ''
    while (i < src.length && src[i] !== '"') {
      if (src[i] === '\\' && i + 1 < src.length) i++
      s += src[i++]
    }
    if (src[i] !== '"') bad('a closing quote')
    i++
    return s
  }
  const val = (): Val => (word('field') ? { field: str() } : { lit: str() })
  const atom = (): Expr => {
    ws()
    if (word('true')) return { k: 'true' }
    if (word('false')) return { k: 'false' }
    if (word('not')) return { k: 'not', e: atom() }
    if (src[i] === '(') {
      i++
      const e = or()
      ws()
      if (src[i] !== ')') bad('")"')
      i++
      return e
    }
    const a = val()
    ws()
    if (src[i] !== '=') bad('"="')
    i++
    return { k: 'eq', a, b: val() }
  }
  const and = (): Expr => {
    let e = atom()
    while (word('and')) e = { k: 'and', a: e, b: atom() }
    return e
  }
  const or = (): Expr => {
    let e = and()
    while (word('or')) e = { k: 'or', a: e, b: and() }
    return e
  }
  const e = or()
  ws()
  if (i !== src.length) bad('end of expression')
  return e
}

/** A field value as XAPI's database stores it (strings). */
function dbString(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'boolean' || typeof v === 'number') return String(v)
  if (Array.isArray(v)) return `(${v.map((x) => `'${dbString(x)}'`).join(' ')})`
  if (v && typeof v === 'object')
    return `(${Object.entries(v)
      .map(([k, x]) => `('${k}' '${dbString(x)}')`)
      .join(' ')})`
  return ''
}

export function evalQuery(e: Expr, rec: XapiRecord, ref: string): boolean {
  switch (e.k) {
    case 'true':
      return true
    case 'false':
      return false
    case 'not':
      return !evalQuery(e.e, rec, ref)
    case 'and':
      return evalQuery(e.a, rec, ref) && evalQuery(e.b, rec, ref)
    case 'or':
      return evalQuery(e.a, rec, ref) || evalQuery(e.b, rec, ref)
    case 'eq': {
      const get = (v: Val) => {
        if ('lit' in v) return v.lit
        const name = v.field.replace(/__/g, '_')
        if (name === 'ref' || name === '_ref') return ref
        return dbString(rec[name])
      }
      return get(e.a) === get(e.b)
    }
  }
}

// -- installation --------------------------------------------------------------------------------------------------

/**
 * Checks enum values and returns them in their canonical spelling: XAPI matches enum names case-insensitively
 * (nova and os-xenapi create VDIs with `type: 'User'`), and stores the datamodel's name.
 */
function checkEnum(sim: Simulator, f: FieldSpec, v: unknown): unknown {
  const t = f.type.kind === 'set' ? f.type.of : f.type
  if (t.kind !== 'enum') return v
  const values = sim.model.enumValues(t.name)
  if (!values) return v
  const check = (x: unknown): unknown => {
    if (values.includes(x as string)) return x
    const lower = typeof x === 'string' ? x.toLowerCase() : undefined
    const found = lower === undefined ? undefined : values.find((n) => n.toLowerCase() === lower)
    if (found === undefined) throw new XapiError('INVALID_VALUE', f.name, x)
    return found
  }
  return Array.isArray(v) ? v.map(check) : check(v)
}

/** Builds a record for a generated constructor: required fields present, defaults for the rest, types checked. */
export function constructorRecord(sim: Simulator, c: ClassModel, given: XapiRecord): XapiRecord {
  const out: XapiRecord = {}
  for (const f of c.ctorFields) {
    const v = given[f.name]
    if (v === undefined) {
      if (!f.hasDefault) throw new XapiError('FIELD_TYPE_ERROR', f.name)
      continue
    }
    out[f.name] = checkEnum(sim, f, coerce(v, f.type, f.name))
  }
  return out
}

/** The XML-RPC <value> of a row's record (cached on the row until it changes; see Row). */
function recordXml(sim: Simulator, row: Row): string {
  if (row.xmlGen === row.gen) {
    if (row.xml !== undefined) return row.xml
    if (row.xmlBytes !== undefined) return row.xmlBytes.toString('utf8')
  }
  row.xml = sim.encoders.encode(row.rec, { kind: 'record', class: row.cls.name })
  row.xmlBytes = undefined
  row.xmlGen = row.gen
  return row.xml
}

/** recordXml as UTF-8 bytes (what a get_record answer writes; replaces a cached text). */
function recordXmlBytes(sim: Simulator, row: Row): Buffer {
  if (row.xmlGen === row.gen && row.xmlBytes !== undefined) return row.xmlBytes
  const text =
    row.xmlGen === row.gen && row.xml !== undefined
      ? row.xml
      : sim.encoders.encode(row.rec, { kind: 'record', class: row.cls.name })
  row.xmlBytes = ownBytes(text)
  row.xml = undefined
  row.xmlGen = row.gen
  return row.xmlBytes
}

/** A record result whose JSON and XML-RPC encodings are cached on the row until it changes. */
export function recordResult(sim: Simulator, row: Row): WireResult {
  return new WireResult(
    row.rec,
    () => recordXml(sim, row),
    () => sim.db.json(row),
    () => recordXmlBytes(sim, row),
    () => sim.db.jsonBytes(row),
  )
}

/** A `(ref -> record) map` result built from cached record texts. */
export function recordsResult(sim: Simulator, rows: Row[]): WireResult {
  const value: Record<string, XapiRecord> = {}
  for (const r of rows) value[r.ref] = r.rec
  return new WireResult(
    value,
    () => {
      let s = '<value><struct>'
      for (const r of rows) s += `<member><name>${r.ref}</name>${recordXml(sim, r)}</member>`
      return s + '</struct></value>'
    },
    () => {
      let s = '{'
      for (let i = 0; i < rows.length; i++) s += `${i ? ',' : ''}"${rows[i].ref}":${sim.db.json(rows[i])}`
      return s + '}'
    },
  )
}

export function installImplicit(sim: Simulator): void {
  const d = sim.messages
  const db = sim.db
  for (const c of sim.model.classes) {
    const cls = c.name
    for (const m of c.spec.messages) {
      const name = m.name
      // Explicit messages shaped like accessors (VM.set_VCPUs_max, network.add_purpose, …) get the generic
      // behaviour too, until a semantics module implements them; explicit constructors are positional: skipped.
      if (!m.implicit && (!/^(get_|set_|add_|remove_|destroy$)/.test(name) || name === 'get_record')) continue
      const w = m.wireName
      if (name === 'get_record') d.implement(w, (_x, a) => recordResult(sim, db.mustRow(cls, a[0])))
      else if (name === 'get_by_uuid')
        d.implement(w, (_x, a) => {
          const ref = db.refOfUuid(cls, a[0] as string)
          if (!ref) throw new XapiError('UUID_INVALID', cls, a[0])
          return ref
        })
      else if (name === 'get_by_name_label') d.implement(w, (_x, a) => db.where(cls, (r) => r.name_label === a[0]))
      else if (name === 'get_all') d.implement(w, () => db.refs(cls))
      else if (name === 'get_all_records') d.implement(w, () => recordsResult(sim, [...db.table(cls).values()]))
      else if (name === 'get_all_records_where')
        d.implement(w, (_x, a) => {
          const q = parseQuery(a[0] as string)
          const out: Record<string, XapiRecord> = {}
          for (const [ref, rec] of db.all(cls)) if (evalQuery(q, rec, ref)) out[ref] = rec
          return out
        })
      else if (name === 'create')
        d.implement(w, (_x, a) => db.create(cls, constructorRecord(sim, c, a[0] as XapiRecord)))
      else if (name === 'destroy')
        d.implement(w, (_x, a) => {
          db.must(cls, a[0])
          db.destroy(a[0] as string)
        })
      else if (name.startsWith('get_')) {
        const field = name.slice(4)
        if (c.fieldByName.has(field)) d.implement(w, (_x, a) => db.must(cls, a[0])[field])
      } else if (name.startsWith('set_')) {
        const f = c.fieldByName.get(name.slice(4))
        if (f)
          d.implement(w, (_x, a) => {
            db.must(cls, a[0])
            db.set(a[0] as string, f.name, checkEnum(sim, f, a[1]))
          })
      } else if (name.startsWith('add_to_')) {
        const f = c.fieldByName.get(name.slice(7))
        if (f)
          d.implement(w, (_x, a) => {
            const rec = db.must(cls, a[0])
            const cur = rec[f.name] as Record<string, unknown>
            const key = a[1] as string
            if (Object.prototype.hasOwnProperty.call(cur, key))
              throw new XapiError('MAP_DUPLICATE_KEY', cls, f.name, rec.uuid, key)
            db.set(a[0] as string, f.name, { ...cur, [key]: a[2] })
          })
      } else if (name.startsWith('remove_from_')) {
        const f = c.fieldByName.get(name.slice(12))
        if (f)
          d.implement(w, (_x, a) => {
            const rec = db.must(cls, a[0])
            const cur = rec[f.name] as Record<string, unknown>
            const key = a[1] as string
            if (!Object.prototype.hasOwnProperty.call(cur, key)) return
            const next = { ...cur }
            delete next[key]
            db.set(a[0] as string, f.name, next)
          })
      } else if (name.startsWith('add_')) {
        const f = c.fieldByName.get(name.slice(4))
        if (f)
          d.implement(w, (_x, a) => {
            const rec = db.must(cls, a[0])
            const [v] = checkEnum(sim, f, [a[1]]) as unknown[]
            const cur = rec[f.name] as unknown[]
            if (!cur.includes(v)) db.set(a[0] as string, f.name, [...cur, v])
          })
      } else if (name.startsWith('remove_')) {
        const f = c.fieldByName.get(name.slice(7))
        if (f)
          d.implement(w, (_x, a) => {
            const rec = db.must(cls, a[0])
            const cur = rec[f.name] as unknown[]
            if (cur.includes(a[1]))
              db.set(
                a[0] as string,
                f.name,
                cur.filter((x) => x !== a[1]),
              )
          })
      }
    }
  }
}
