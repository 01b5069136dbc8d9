import type { XapiType } from './types.js'

export type Qualifier = 'RW' | 'RO/constructor' | 'RO/runtime'
export type LifecycleState = 'Published_s' | 'Prototyped_s' | 'Deprecated_s' | 'Removed_s'

export interface FieldSpec {
  /** Wire name (`memory_static_max`, `name_label`). */
  name: string
  type: XapiType
  qualifier: Qualifier
  /** The datamodel default, already converted to its JS value (`{}` → {} or [], `OpaqueRef:NULL`, `false`…). */
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

/** All 67 classes, in datamodel order. */
export declare const classes: readonly ClassSpec[]
/** Class by name, case-insensitive (`vm` → VM). */
export declare function getClass(name: string): ClassSpec | undefined
/** Message by wire name (`VM.start`, also `VM_start`); undefined when unknown. */
export declare function getMessage(wireName: string): { cls: ClassSpec; message: MessageSpec } | undefined
/** Every enum by name. */
export declare function getEnum(name: string): EnumSpec | undefined
