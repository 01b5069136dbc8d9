/**
 * The datamodel as the simulator uses it: the generated tables of @xenstack/xapi-wire (classes, fields with
 * defaults, messages with parameter defaults, async availability, get_all_records and event flags), enriched with
 * what dispatch and the store need (field maps, constructor fields, zero values).
 */
import { classes } from '@xenstack/xapi-wire'
import { formatXapiDate } from './time.js'
import type { ClassSpec, FieldSpec, MessageSpec, ParamSpec, XapiType } from '@xenstack/xapi-wire'

export type { ClassSpec, FieldSpec, MessageSpec, ParamSpec, XapiType }

export const NULL_REF = 'OpaqueRef:NULL'
export const EPOCH = '19700101T00:00:00Z'

function loadClasses(): readonly ClassSpec[] {
  return classes
}

// ---------------------------------------------------------------------------------------------------------------

/** A class with lookup tables the store and dispatcher use. */
export interface ClassModel {
  spec: ClassSpec
  name: string
  /** Lowercase name, as events and valid_ref_counts spell it. */
  lower: string
  fields: FieldSpec[]
  fieldByName: Map<string, FieldSpec>
  /** Fields a generated constructor takes (RW and RO/constructor); `required` ones have no default. */
  ctorFields: FieldSpec[]
  enums: Map<string, string[]>
  hasNameLabel: boolean
  emitsEvents: boolean
  hasGetAllRecords: boolean
}

export class Model {
  readonly classes: ClassModel[]
  private readonly byLower = new Map<string, ClassModel>()
  private readonly enums = new Map<string, string[]>()

  constructor(specs: readonly ClassSpec[] = loadClasses()) {
    for (const spec of specs) for (const e of spec.enums) this.enums.set(e.name, e.values)
    this.classes = specs.map((spec) => {
      const fields = spec.fields.filter((f) => f.state !== 'Removed_s')
      const cm: ClassModel = {
        spec,
        name: spec.name,
        lower: spec.name.toLowerCase(),
        fields,
        fieldByName: new Map(fields.map((f) => [f.name, f])),
        ctorFields: fields.filter((f) => f.qualifier !== 'RO/runtime' && f.name !== 'uuid'),
        enums: new Map(spec.enums.map((e) => [e.name, e.values])),
        hasNameLabel: fields.some((f) => f.name === 'name_label'),
        emitsEvents: spec.emitsEvents,
        hasGetAllRecords: spec.hasGetAllRecords,
      }
      this.byLower.set(cm.lower, cm)
      return cm
    })
  }

  /** Class by name, case-insensitive. */
  cls(name: string): ClassModel | undefined {
    return this.byLower.get(name.toLowerCase())
  }

  enumValues(name: string): string[] | undefined {
    return this.enums.get(name)
  }

  /** The zero value XAPI would hold for a field without a datamodel default. */
  zero(type: XapiType): unknown {
    switch (type.kind) {
      case 'string':
        return ''
      case 'int':
      case 'float':
        return 0
      case 'bool':
        return false
      case 'datetime':
        return EPOCH
      case 'ref':
        return NULL_REF
      case 'enum':
        return this.enums.get(type.name)?.[0] ?? ''
      case 'set':
        return []
      case 'map':
        return {}
      case 'option':
        return null // None
      default:
        return ''
    }
  }

  /** A field's initial value: the datamodel default (copied) or the zero value. */
  initial(f: FieldSpec): unknown {
    if (f.hasDefault) return clone(toStored(f.default))
    return this.zero(f.type)
  }
}

/** The store's form of a datamodel value: Dates become XAPI datetime strings, bigints numbers. */
function toStored(v: unknown): unknown {
  if (v instanceof Date) return formatXapiDate(v)
  if (typeof v === 'bigint') return Number(v)
  if (Array.isArray(v)) return v.map(toStored)
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = toStored(x)
    return out
  }
  return v
}

export function clone<T>(v: T): T {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map(clone) as T
  const out: Record<string, unknown> = {}
  for (const k in v as Record<string, unknown>) out[k] = clone((v as Record<string, unknown>)[k])
  return out as T
}

let shared: Model | undefined
/** The process-wide model (the datamodel is immutable; building it once saves start-up time). */
export function model(): Model {
  shared ??= new Model()
  return shared
}
