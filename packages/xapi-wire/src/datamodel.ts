import type { XapiType } from './types.js'
import { rawClasses, datamodelCounts } from './generated/datamodel.js'

export type Qualifier = 'RW' | 'RO/constructor' | 'RO/runtime'
export type LifecycleState = 'Published_s' | 'Prototyped_s' | 'Deprecated_s' | 'Removed_s'

export interface FieldSpec {
  /** Wire name (`memory_static_max`, `name_label`). */
  name: string
  type: XapiType
  qualifier: Qualifier
  /**
   * The datamodel default, already converted to its JS value (`{}` → {} or [], `OpaqueRef:NULL`, `false`, a Date
   * for datetimes…). Tables are frozen: use freshDefault(field) for a value you may mutate.
   */
  hasDefault: boolean
  default?: unknown
  state: LifecycleState
}

export interface ParamSpec {
  name: string
  type: XapiType
  /** Present when XAPI lets a caller omit it (trailing parameters added in later versions). */
  hasDefault?: boolean
  default?: unknown
}

export interface MessageSpec {
  /** Unqualified name (`start`, `get_record`, `add_to_other_config`). */
  name: string
  /** Wire name `Class.message`. */
  wireName: string
  /** Parameters including the leading `session_id` when the message takes one. */
  params: ParamSpec[]
  takesSession: boolean
  result: XapiType
  errors: string[]
  roles: string[]
  implicit: boolean
  /** True for messages XAPI serves but does not document (`get_all_records_where`). */
  hidden?: boolean
  /** True when XAPI also serves `Async.<Class>.<message>`. */
  hasAsync: boolean
  state: LifecycleState
}

export interface EnumSpec {
  name: string
  values: string[]
}

export interface ClassSpec {
  name: string
  fields: FieldSpec[]
  messages: MessageSpec[]
  enums: EnumSpec[]
  /** Whether XAPI exposes get_all / get_all_records for this class. */
  hasGetAllRecords: boolean
  /** Whether changes to this class produce events. */
  emitsEvents: boolean
  state: LifecycleState
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v as object)) deepFreeze(x)
  }
  return v
}

function build(): ClassSpec[] {
  return rawClasses.map((rc) => {
    const fields: FieldSpec[] = rc.fields.map((f) => {
      const spec: FieldSpec = { name: f[0], type: f[1], qualifier: f[2], state: f[3], hasDefault: f.length > 4 }
      if (f.length > 4) spec.default = f[4]
      return spec
    })
    const messages: MessageSpec[] = rc.messages.map((m) => {
      const params: ParamSpec[] = m[1].map((p) => {
        const ps: ParamSpec = { name: p[0], type: p[1] }
        if (p.length > 2) {
          ps.hasDefault = true
          ps.default = p[2]
        }
        return ps
      })
      const spec: MessageSpec = {
        name: m[0],
        wireName: `${rc.name}.${m[0]}`,
        params,
        takesSession:
          params[0]?.name === 'session_id' && params[0].type.kind === 'ref' && params[0].type.class === 'session',
        result: m[2],
        errors: [...m[3]],
        roles: [...m[4]],
        implicit: (m[5] & 1) !== 0,
        hasAsync: (m[5] & 2) !== 0,
        state: m[6],
      }
      if ((m[5] & 4) !== 0) spec.hidden = true
      return spec
    })
    const cls: ClassSpec = {
      name: rc.name,
      fields,
      messages,
      enums: rc.enums.map(([name, values]) => ({ name, values: [...values] })),
      hasGetAllRecords: rc.hasGetAllRecords,
      emitsEvents: rc.emitsEvents,
      state: rc.state,
    }
    return deepFreeze(cls)
  })
}

/** All 67 classes, in datamodel order. */
export const classes: readonly ClassSpec[] = Object.freeze(build())
export { datamodelCounts }

const fieldMaps = new Map<string, ReadonlyMap<string, FieldSpec>>(
  classes.map((c) => [c.name, new Map(c.fields.map((f) => [f.name, f]))]),
)
const messageMaps = new Map<string, ReadonlyMap<string, MessageSpec>>(
  classes.map((c) => [c.name, new Map(c.messages.map((m) => [m.name, m]))]),
)

/** A field of a class by wire name (`getField('VM', 'power_state')`); the class name as in getClass. */
export function getField(cls: string | ClassSpec, field: string): FieldSpec | undefined {
  const c = typeof cls === 'string' ? getClass(cls) : cls
  return c ? fieldMaps.get(c.name)?.get(field) : undefined
}

const byLowerName = new Map(classes.map((c) => [c.name.toLowerCase(), c]))
const enums = new Map<string, EnumSpec>()
for (const c of classes) for (const e of c.enums) enums.set(e.name, e)

/** Class by name, case-insensitive (`vm` → VM). */
export function getClass(name: string): ClassSpec | undefined {
  return byLowerName.get(name.toLowerCase())
}

const messageCache = new Map<string, { cls: ClassSpec; message: MessageSpec } | undefined>()

/** Message by wire name (`VM.start`, also `VM_start`); undefined when unknown. Class names are case-sensitive here
 *  except for the first lookup (XAPI accepts `VM.start`, not `vm.start`), matching XAPI's dispatcher. */
export function getMessage(wireName: string): { cls: ClassSpec; message: MessageSpec } | undefined {
  if (messageCache.has(wireName)) return messageCache.get(wireName)
  let found: { cls: ClassSpec; message: MessageSpec } | undefined
  const dot = wireName.indexOf('.')
  if (dot > 0) {
    const cls = classByExactName.get(wireName.slice(0, dot))
    const message = cls && messageMaps.get(cls.name)?.get(wireName.slice(dot + 1))
    if (cls && message) found = { cls, message }
  } else {
    // Class_message: class names contain underscores (VM_metrics, pool_patch), so try every split.
    for (let i = wireName.indexOf('_'); i > 0 && !found; i = wireName.indexOf('_', i + 1)) {
      const cls = classByExactName.get(wireName.slice(0, i))
      const message = cls && messageMaps.get(cls.name)?.get(wireName.slice(i + 1))
      if (cls && message) found = { cls, message }
    }
  }
  if (messageCache.size < 10_000) messageCache.set(wireName, found)
  return found
}
const classByExactName = new Map(classes.map((c) => [c.name, c]))

/** Every enum by name. */
export function getEnum(name: string): EnumSpec | undefined {
  return enums.get(name)
}

/** A mutable copy of a field's (or parameter's) default: fresh arrays, objects and Dates. */
export function freshDefault(spec: { hasDefault?: boolean; default?: unknown }): unknown {
  return cloneValue(spec.default)
}

function cloneValue(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v
  if (v instanceof Date) return new Date(v.getTime())
  if (Array.isArray(v)) return v.map(cloneValue)
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) out[k] = cloneValue(x)
  return out
}

/**
 * The constructor fields of a generated `X.create(session, record)` (§4.3): RW and RO/constructor fields that
 * are not removed; `required` when the field has no datamodel default.
 */
export function constructorFields(cls: ClassSpec): { field: FieldSpec; required: boolean }[] {
  return cls.fields
    .filter((f) => f.qualifier !== 'RO/runtime' && f.state !== 'Removed_s')
    .map((field) => ({ field, required: !field.hasDefault }))
}

/** Number of parameters a caller must pass, excluding session_id (MESSAGE_PARAMETER_COUNT_MISMATCH's expected). */
export function requiredParamCount(message: MessageSpec): number {
  let n = 0
  for (const p of message.params) if (!p.hasDefault) n++
  return message.takesSession ? n - 1 : n
}

/** The fields of `event.from`'s result (§7.1), a record the datamodel does not declare. */
export const EVENT_BATCH_CLASS = 'event_batch'

let syncNames: readonly string[] | undefined
/**
 * Every synchronous wire name XAPI serves (`VM.start`, `VM.get_all_records`, …; removed messages and hidden ones
 * excluded), in datamodel order — what `system.listMethods` returns (§4.5), without the `system.*` methods.
 */
export function wireMethodNames(): readonly string[] {
  syncNames ??= Object.freeze(
    classes.flatMap((c) => c.messages.filter((m) => m.state !== 'Removed_s' && !m.hidden).map((m) => m.wireName)),
  )
  return syncNames
}
