/**
 * The query part of `xenstack xapi *-list`: `--where` filters compared by the field's datamodel type, `--params`
 * column choice, and the display of XAPI values (references shown as the target's name, sets and maps flattened).
 *
 * A filter is FIELD OP VALUE with OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`, `~` (substring). FIELD is a field of
 * the class as XAPI spells it (`name_label`; xe's `name-label` works too), or `MAPFIELD:KEY` for a map entry
 * (`other_config:himn=true`). The value is read as the field's type: numbers (with K/M/G/T[i][B] suffixes), booleans,
 * enum values (checked against the enum), datetimes, references (a ref, the target's uuid or its name_label) — and a
 * set field matches when one element does. A value that cannot be of the field's type is an error naming both.
 */
import { formatType, getClass, getEnum, type ClassSpec, type FieldSpec, type XapiType } from '@xenstack/xapi-wire'

export type XapiRecord = Record<string, unknown>
/** Records of a class by ref (`get_all_records`). */
export type RecordsByRef = Map<string, XapiRecord>

export class QueryError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'QueryError'
  }
}

export type Op = '=' | '!=' | '<' | '<=' | '>' | '>=' | '~'

export interface Filter {
  text: string
  field: FieldSpec
  /** For `MAPFIELD:KEY`. */
  key?: string
  op: Op
  raw: string
}

const NULL_REF = 'OpaqueRef:NULL'

export function classSpec(name: string): ClassSpec {
  const c = getClass(name)
  if (!c) throw new QueryError(`XAPI class ${name} is not in the datamodel`)
  return c
}

/** A field by its XAPI name, xe's dashed spelling, or a unique case-insensitive match. */
export function resolveField(cls: ClassSpec, name: string): FieldSpec {
  const exact = cls.fields.find((f) => f.name === name || f.name === name.replace(/-/g, '_'))
  if (exact) return exact
  const folded = name.replace(/-/g, '_').toLowerCase()
  const matches = cls.fields.filter((f) => f.name.toLowerCase() === folded)
  if (matches.length === 1) return matches[0]
  const near = cls.fields.filter((f) => f.name.toLowerCase().includes(folded.slice(0, 4))).map((f) => f.name)
  throw new QueryError(
    `${cls.name} has no field "${name}"${near.length ? ` (did you mean ${near.slice(0, 5).join(', ')}?)` : ''}`,
  )
}

/** Parses `FIELD OP VALUE` (one `--where`). */
export function parseFilter(cls: ClassSpec, text: string): Filter {
  const m = /^([A-Za-z0-9_-]+)(?::([^=!<>~]+))?\s*(!=|<=|>=|=|<|>|~)(.*)$/s.exec(text)
  if (!m)
    throw new QueryError(
      `--where ${text}: expected FIELD=VALUE (or !=, <, <=, >, >=, ~), e.g. power_state=Running or other_config:key=value`,
    )
  const [, name, key, op, raw] = m
  const field = resolveField(cls, name)
  const f: Filter = { text, field, key, op: op as Op, raw }
  const t = field.type
  if (key !== undefined && t.kind !== 'map')
    throw new QueryError(`--where ${text}: ${field.name} is a ${formatType(t)}, not a map; drop ":${key}"`)
  if (key === undefined && t.kind === 'map')
    throw new QueryError(`--where ${text}: ${field.name} is a map; name an entry as ${field.name}:KEY${op}VALUE`)
  // Check the value's type now, so a typo fails before anything is fetched.
  checkValue(f, elementType(f))
  return f
}

function elementType(f: Filter): XapiType {
  const t = f.field.type
  if (t.kind === 'map') return t.value
  if (t.kind === 'set') return t.of
  if (t.kind === 'option') return t.of
  return t
}

const SIZE = /^(-?\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)B?$/i

/** A number as the user wrote it: `4096`, `1.5`, `4GiB`, `512M`, `2G` (binary for `i`, else decimal). */
export function parseNumber(raw: string): number | undefined {
  const s = raw.trim()
  if (s === '') return undefined
  if (/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(s)) return Number(s)
  const m = SIZE.exec(s)
  if (!m || !m[2]) return undefined
  const power = 'KMGTP'.indexOf(m[2].toUpperCase()) + 1
  return Number(m[1]) * (m[3] ? 1024 : 1000) ** power
}

function parseBool(raw: string): boolean | undefined {
  const s = raw.trim().toLowerCase()
  if (['true', 'yes', '1', 'on'].includes(s)) return true
  if (['false', 'no', '0', 'off'].includes(s)) return false
  return undefined
}

function checkValue(f: Filter, t: XapiType): void {
  const where = `--where ${f.text}`
  const ordered = ['<', '<=', '>', '>='].includes(f.op)
  switch (t.kind) {
    case 'int':
    case 'float':
      if (f.op !== '~' && parseNumber(f.raw) === undefined)
        throw new QueryError(`${where}: ${f.field.name} is a ${t.kind}; "${f.raw}" is not a number (e.g. 4096, 4GiB)`)
      return
    case 'bool':
      if (ordered || f.op === '~') throw new QueryError(`${where}: ${f.field.name} is a bool; use = or !=`)
      if (parseBool(f.raw) === undefined)
        throw new QueryError(`${where}: ${f.field.name} is a bool; expected true or false, found "${f.raw}"`)
      return
    case 'enum': {
      if (ordered) throw new QueryError(`${where}: ${f.field.name} is an enum; use =, != or ~`)
      const values = getEnum(t.name)?.values ?? []
      if (f.op !== '~' && values.length && !values.some((v) => v.toLowerCase() === f.raw.toLowerCase()))
        throw new QueryError(`${where}: ${f.field.name} is one of ${values.join(', ')}; found "${f.raw}"`)
      return
    }
    case 'datetime':
      if (f.op !== '~' && Number.isNaN(Date.parse(f.raw)))
        throw new QueryError(
          `${where}: ${f.field.name} is a datetime; "${f.raw}" is not a date (e.g. 2024-05-01T12:00Z)`,
        )
      return
    case 'string':
    case 'ref':
      if (ordered && t.kind === 'ref') throw new QueryError(`${where}: ${f.field.name} is a reference; use =, != or ~`)
      return
    default:
      throw new QueryError(`${where}: ${f.field.name} (${formatType(f.field.type)}) cannot be filtered on`)
  }
}

/** Looks up referenced objects for display and for matching refs by uuid or name. */
export interface RefIndex {
  get(cls: string, ref: string): XapiRecord | undefined
}

function compare(a: number, b: number, op: Op): boolean {
  switch (op) {
    case '=':
      return a === b
    case '!=':
      return a !== b
    case '<':
      return a < b
    case '<=':
      return a <= b
    case '>':
      return a > b
    case '>=':
      return a >= b
    default:
      return false
  }
}

/** Whether one (non-set) value satisfies the filter, under the filter's operator (`!=` handled by the caller). */
function matchOne(f: Filter, t: XapiType, v: unknown, refs: RefIndex, op: Op): boolean {
  if (v === undefined || v === null) return false
  switch (t.kind) {
    case 'int':
    case 'float': {
      if (op === '~') return String(v).includes(f.raw)
      return compare(Number(v), parseNumber(f.raw)!, op)
    }
    case 'bool':
      return v === parseBool(f.raw)
    case 'enum':
      return op === '~'
        ? String(v).toLowerCase().includes(f.raw.toLowerCase())
        : String(v).toLowerCase() === f.raw.toLowerCase()
    case 'datetime': {
      if (op === '~') return displayValue(v, t, refs).includes(f.raw)
      const time = v instanceof Date ? v.getTime() : Date.parse(String(v))
      return compare(time, Date.parse(f.raw), op)
    }
    case 'ref': {
      const ref = String(v)
      const target = ref === NULL_REF ? undefined : refs.get(t.class, ref)
      const names = [ref, target?.uuid, target?.name_label].filter((x): x is string => typeof x === 'string')
      if (op === '~') return names.some((n) => n.includes(f.raw))
      if (f.raw === '' || f.raw === NULL_REF) return ref === NULL_REF
      return names.includes(f.raw)
    }
    default: {
      const s = String(v)
      if (op === '~') return s.includes(f.raw)
      if (op === '=') return s === f.raw
      return compare(s.localeCompare(f.raw), 0, op)
    }
  }
}

export function matches(f: Filter, record: XapiRecord, refs: RefIndex): boolean {
  const t = f.field.type
  const negate = f.op === '!='
  const op: Op = negate ? '=' : f.op
  let hit: boolean
  if (t.kind === 'map') {
    const m = (record[f.field.name] ?? {}) as Record<string, unknown>
    hit = f.key! in m && matchOne(f, t.value, m[f.key!], refs, op)
  } else if (t.kind === 'set') {
    hit = ((record[f.field.name] ?? []) as unknown[]).some((x) => matchOne(f, t.of, x, refs, op))
  } else {
    hit = matchOne(f, t.kind === 'option' ? t.of : t, record[f.field.name], refs, op)
  }
  return negate ? !hit : hit
}

/** A column: a field, or `MAPFIELD:KEY`. */
export interface Column {
  name: string
  field: FieldSpec
  key?: string
}

/** `--params a,b,c` (or `all`) into columns; default ones otherwise. */
export function parseColumns(cls: ClassSpec, params: string | undefined, defaults: string[]): Column[] {
  const list =
    params === 'all'
      ? cls.fields.map((f) => f.name)
      : (params ?? defaults.join(','))
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
  return list.map((p) => {
    const [name, key] = p.split(':', 2)
    const field = resolveField(cls, name)
    if (key !== undefined && field.type.kind !== 'map')
      throw new QueryError(`--params ${p}: ${field.name} is a ${formatType(field.type)}, not a map`)
    return { name: key === undefined ? field.name : `${field.name}:${key}`, field, key }
  })
}

/** Classes whose records are needed to show or match the references in these columns/filters. */
export function referencedClasses(fields: FieldSpec[]): string[] {
  const out = new Set<string>()
  const walk = (t: XapiType) => {
    if (t.kind === 'ref') out.add(t.class)
    else if (t.kind === 'set' || t.kind === 'option') walk(t.of)
    else if (t.kind === 'map') {
      walk(t.key)
      walk(t.value)
    }
  }
  fields.forEach((f) => walk(f.type))
  return [...out].filter((c) => getClass(c)?.hasGetAllRecords)
}

/** A value for a table cell: a reference by its target's name_label (else uuid), sets joined, maps as k=v. */
export function displayValue(v: unknown, t: XapiType, refs: RefIndex): string {
  if (v === undefined || v === null) return ''
  switch (t.kind) {
    case 'ref': {
      if (v === NULL_REF) return ''
      const target = refs.get(t.class, String(v))
      const label = target?.name_label
      return typeof label === 'string' && label !== '' ? label : String(target?.uuid ?? v)
    }
    case 'set':
      return (v as unknown[]).map((x) => displayValue(x, t.of, refs)).join(', ')
    case 'option':
      return displayValue(v, t.of, refs)
    case 'map':
      return Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => `${displayValue(k, t.key, refs)}=${displayValue(x, t.value, refs)}`)
        .join('; ')
    case 'datetime':
      return v instanceof Date ? v.toISOString() : String(v)
    default:
      return String(v)
  }
}

export function cell(record: XapiRecord, c: Column, refs: RefIndex): string {
  if (c.key !== undefined) {
    const m = (record[c.field.name] ?? {}) as Record<string, unknown>
    return c.field.type.kind === 'map' && c.key in m ? displayValue(m[c.key], c.field.type.value, refs) : ''
  }
  return displayValue(record[c.field.name], c.field.type, refs)
}

/** A value for JSON output: dates as ISO strings, bigints as numbers when exact (else strings). */
export function jsonValue(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString()
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
  if (Array.isArray(v)) return v.map(jsonValue)
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonValue(x)]))
  return v
}
