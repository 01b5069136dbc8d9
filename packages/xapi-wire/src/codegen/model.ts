/**
 * Builds the xenstack datamodel from XAPI's published `xenapi.json` (xapi-project/xen-api doc/data/xenapi.json,
 * LGPL-2.1 with the OCaml linking exception). Shared by the two generators: the datamodel tables of
 * @xenstack/xapi-wire and the typed API of @xenstack/xenapi, so both see the same messages, defaults and flags.
 *
 * What the JSON does not say, and this module adds (see ../shared/reference/xapi-protocol.md §4, §7):
 *  - parameter defaults (the JSON has none; XAPI lets callers omit trailing parameters added later): the table
 *    PARAM_DEFAULTS below, from xen-api's datamodel (`param_default`);
 *  - the hidden `get_all_records_where(expr)` of every class that exposes get_all_records (§4.4);
 *  - `hasAsync` (§4.1), `hasGetAllRecords` (§4.4), `emitsEvents` (§7.1);
 *  - the result of `event.from`, which the JSON describes in words ("an event batch").
 */
import { readFileSync } from 'node:fs'
import { parseType, type XapiType } from '../types.js'
import type { LifecycleState, Qualifier } from '../datamodel.js'

export interface JsonLifecycle {
  state: string
  transitions: { transition: string; release: string; description: string }[]
}
export interface JsonField {
  name: string
  description: string
  type: string
  qualifier: string
  default?: string
  lifecycle: JsonLifecycle
  tag: string
}
export interface JsonMessage {
  name: string
  description: string
  params: { type: string; name: string; doc: string }[]
  result: string[]
  errors: { name: string; doc: string }[]
  roles: string[]
  implicit: boolean
  lifecycle: JsonLifecycle
  tag: string
}
export interface JsonClass {
  name: string
  description: string
  fields: JsonField[]
  messages: JsonMessage[]
  enums: { name: string; values: { name: string; doc: string }[] }[]
  lifecycle: JsonLifecycle
  tag: string
}

export interface ModelField {
  name: string
  description: string
  typeString: string
  type: XapiType
  qualifier: Qualifier
  hasDefault: boolean
  default?: unknown
  state: LifecycleState
}
export interface ModelParam {
  name: string
  doc: string
  typeString: string
  type: XapiType
  hasDefault: boolean
  default?: unknown
}
export interface ModelMessage {
  name: string
  description: string
  params: ModelParam[]
  takesSession: boolean
  resultString: string
  result: XapiType
  resultDoc: string
  errors: string[]
  roles: string[]
  implicit: boolean
  /** Not in the JSON; added from §4.4 (get_all_records_where). */
  hidden: boolean
  hasAsync: boolean
  state: LifecycleState
}
export interface ModelClass {
  name: string
  description: string
  fields: ModelField[]
  messages: ModelMessage[]
  enums: { name: string; values: { name: string; doc: string }[] }[]
  hasGetAllRecords: boolean
  emitsEvents: boolean
  state: LifecycleState
}

/** §4.1: no Async variants for these classes. */
export const NO_ASYNC_CLASSES = new Set(['session', 'event', 'task', 'data_source', 'blob'])
/** §4.4: `expose_get_all_messages_for` (plus `message`, which declares its own get_all_records). */
export const GET_ALL_CLASSES = new Set(
  (
    'task host host_metrics host_cpu SR VM VM_metrics VM_guest_metrics network VIF VIF_metrics PIF PIF_metrics PBD ' +
    'VDI VBD VBD_metrics console crashdump host_crashdump host_patch pool SM pool_patch pool_update Bond VLAN blob ' +
    'subject role secret tunnel VMPP VMSS VM_appliance VM_group PCI PGPU GPU_group VGPU VGPU_type DR_task PVS_site ' +
    'PVS_server PVS_proxy PVS_cache_storage Feature SDN_controller network_sriov PUSB USB_group VUSB Cluster ' +
    'Cluster_host Certificate Repository VTPM Observer message'
  ).split(' '),
)
/** §7.1: classes whose changes never produce events (plus `event` itself). */
export const SILENT_CLASSES = new Set([
  'session',
  'user',
  'secret',
  'auth',
  'data_source',
  'sr_stat',
  'probe_result',
  'vdi_nbd_server_info',
  'event',
])

/**
 * Parameters XAPI lets callers omit (xen-api datamodel `param_default`), as datamodel-spelled literals converted
 * by the parameter's type. The JSON does not carry them. Key: `Class.message`; value: param name → literal.
 */
export const PARAM_DEFAULTS: Record<string, Record<string, string>> = {
  'session.login_with_password': { version: '"1.1"', originator: '""' },
  'host.evacuate': { network: 'OpaqueRef:NULL', evacuate_batch_size: '0' },
  'Bond.create': { mode: 'balance-slb', properties: '{}' },
  'tunnel.create': { protocol: 'gre' },
  'PIF.introduce': { managed: 'true' },
  'VDI.copy': { base_vdi: 'OpaqueRef:NULL', into_vdi: 'OpaqueRef:NULL' },
  'VM.snapshot': { ignore_vdis: '{}' },
  'VM.migrate_send': { vgpu_map: '{}' },
  'VM.assert_can_migrate': { vgpu_map: '{}' },
  'pool.create_new_blob': { public: 'false' },
  'VM.create_new_blob': { public: 'false' },
  'host.create_new_blob': { public: 'false' },
  'network.create_new_blob': { public: 'false' },
  'SR.create_new_blob': { public: 'false' },
  'host.install_server_certificate': { certificate_chain: '""' },
  'Cluster.create': { token_timeout: '20.', token_timeout_coefficient: '1.' },
  'Repository.introduce': { gpgkey_path: '""' },
}

/** The pseudo record `event.from` returns (§7.1); the JSON only says "an event batch". */
export const EVENT_BATCH_CLASS = 'event_batch'

const QUALIFIERS = new Set(['RW', 'RO/constructor', 'RO/runtime'])
const STATES = new Set(['Published_s', 'Prototyped_s', 'Deprecated_s', 'Removed_s'])

export class DatamodelError extends Error {
  override name = 'DatamodelError'
}

function state(where: string, lc: JsonLifecycle | undefined): LifecycleState {
  const s = lc?.state
  if (s === undefined || !STATES.has(s)) {
    throw new DatamodelError(`${where}: lifecycle state ${JSON.stringify(s)} is not one of ${[...STATES].join(', ')}`)
  }
  return s as LifecycleState
}

function typeOf(where: string, s: string): XapiType {
  if (s === 'an event batch') return { kind: 'record', class: EVENT_BATCH_CLASS }
  try {
    return parseType(s)
  } catch (e) {
    throw new DatamodelError(`${where}: ${(e as Error).message}`)
  }
}

/**
 * Converts a datamodel default literal (`{}`, `""`, `false`, `OpaqueRef:NULL`, `0.`, `Null`, `19700101T00:00:00Z`,
 * enum names, `{"a" -> "b"}`, `{x, y}`) to its JS value by the type. Datetimes become ISO strings in
 * the tables' JSON form, turned into Date objects at load (see datamodel.ts).
 */
export function convertDefault(where: string, literal: string, type: XapiType): unknown {
  const bad = (): never => {
    throw new DatamodelError(`${where}: default ${JSON.stringify(literal)} is not a valid ${describe(type)}`)
  }
  const s = literal.trim()
  switch (type.kind) {
    case 'string':
      if (s.startsWith('"')) {
        try {
          return JSON.parse(s) as string
        } catch {
          return bad()
        }
      }
      return s
    case 'int': {
      if (!/^-?\d+$/.test(s)) return bad()
      const n = Number(s)
      return Number.isSafeInteger(n) ? n : BigInt(s)
    }
    case 'float': {
      const n = Number(s.endsWith('.') ? s + '0' : s)
      return Number.isNaN(n) ? bad() : n
    }
    case 'bool':
      return s === 'true' ? true : s === 'false' ? false : bad()
    case 'datetime':
      if (!/^\d{8}T\d\d:\d\d:\d\dZ$/.test(s)) return bad()
      return s
    case 'ref':
      return s === 'Null' || s === '' ? 'OpaqueRef:NULL' : s
    case 'enum':
      return s.startsWith('"') ? (JSON.parse(s) as string) : s
    case 'option':
      return s === 'Null' || s === 'None' ? null : convertDefault(where, s, type.of)
    case 'set': {
      if (!s.startsWith('{') || !s.endsWith('}')) return bad()
      const inner = s.slice(1, -1).trim()
      if (inner === '') return []
      return splitTop(inner, ',').map((x) => convertDefault(where, x, type.of))
    }
    case 'map': {
      if (!s.startsWith('{') || !s.endsWith('}')) return bad()
      const inner = s.slice(1, -1).trim()
      const out: Record<string, unknown> = {}
      if (inner === '') return out
      for (const pair of splitTop(inner, ',')) {
        const [k, v] = splitTop(pair, '->')
        if (k === undefined || v === undefined) return bad()
        const key = convertDefault(where, k, type.key)
        out[String(key)] = convertDefault(where, v, type.value)
      }
      return out
    }
    default:
      return bad()
  }
}

function describe(t: XapiType): string {
  return t.kind === 'record' && t.class === EVENT_BATCH_CLASS ? 'event batch' : JSON.stringify(t)
}

/** Splits on a separator outside quotes and braces. */
function splitTop(s: string, sep: string): string[] {
  const out: string[] = []
  let depth = 0
  let quoted = false
  let start = 0
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '"' && s[i - 1] !== '\\') quoted = !quoted
    else if (!quoted && (c === '{' || c === '(')) depth++
    else if (!quoted && (c === '}' || c === ')')) depth--
    else if (!quoted && depth === 0 && s.startsWith(sep, i)) {
      out.push(s.slice(start, i).trim())
      start = i + sep.length
      i += sep.length - 1
    }
  }
  out.push(s.slice(start).trim())
  return out
}

function isGetterOrSetter(cls: JsonClass, m: JsonMessage): boolean {
  if (!m.implicit) return false
  return !(m.name === 'create' || m.name === 'destroy')
}

export function readDatamodelJson(path: string): JsonClass[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new DatamodelError(`${path}: cannot read the datamodel (${(e as Error).message})`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new DatamodelError(`${path}: not JSON (${(e as Error).message})`)
  }
  if (!Array.isArray(json)) throw new DatamodelError(`${path}: expected a JSON array of classes`)
  return json as JsonClass[]
}

export function buildModel(json: JsonClass[], source = 'xenapi.json'): ModelClass[] {
  const classes: ModelClass[] = []
  const used = new Set<string>()
  for (const [ci, c] of json.entries()) {
    const cw = `${source}: classes[${ci}] (${c.name})`
    if (typeof c.name !== 'string' || !Array.isArray(c.fields) || !Array.isArray(c.messages)) {
      throw new DatamodelError(`${cw}: expected {name, fields[], messages[], enums[]}`)
    }
    const fields: ModelField[] = c.fields.map((f, fi) => {
      const fw = `${cw}.fields[${fi}] (${f.name})`
      const type = typeOf(fw, f.type)
      if (!QUALIFIERS.has(f.qualifier)) {
        throw new DatamodelError(
          `${fw}: qualifier ${JSON.stringify(f.qualifier)}, expected RW, RO/constructor or RO/runtime`,
        )
      }
      const field: ModelField = {
        name: f.name,
        description: f.description,
        typeString: f.type,
        type,
        qualifier: f.qualifier as Qualifier,
        hasDefault: f.default !== undefined,
        state: state(fw, f.lifecycle),
      }
      if (f.default !== undefined) field.default = convertDefault(fw, f.default, type)
      return field
    })
    const messages: ModelMessage[] = c.messages.map((m, mi) => {
      const mw = `${cw}.messages[${mi}] (${c.name}.${m.name})`
      const defaults = PARAM_DEFAULTS[`${c.name}.${m.name}`]
      if (defaults) used.add(`${c.name}.${m.name}`)
      const params: ModelParam[] = m.params.map((p) => {
        const type = typeOf(`${mw} param ${p.name}`, p.type)
        const param: ModelParam = { name: p.name, doc: p.doc, typeString: p.type, type, hasDefault: false }
        const lit = defaults?.[p.name]
        if (lit !== undefined) {
          param.hasDefault = true
          param.default = convertDefault(`${mw} param ${p.name}`, lit, type)
        }
        return param
      })
      if (defaults) {
        for (const name of Object.keys(defaults)) {
          if (!params.some((p) => p.name === name)) {
            throw new DatamodelError(`${mw}: PARAM_DEFAULTS names parameter ${name}, which the message lacks`)
          }
        }
        // Only trailing parameters can be omitted.
        let seenDefault = false
        for (const p of params) {
          if (p.hasDefault) seenDefault = true
          else if (seenDefault) throw new DatamodelError(`${mw}: parameter ${p.name} without default after a default`)
        }
      }
      const takesSession = params[0]?.name === 'session_id' && params[0]?.typeString === 'session ref'
      return {
        name: m.name,
        description: m.description,
        params,
        takesSession,
        resultString: m.result[0] ?? 'void',
        result: typeOf(`${mw} result`, m.result[0] ?? 'void'),
        resultDoc: m.result[1] ?? '',
        errors: m.errors.map((e) => e.name),
        roles: [...m.roles],
        implicit: m.implicit === true,
        hidden: false,
        hasAsync: takesSession && !NO_ASYNC_CLASSES.has(c.name) && !isGetterOrSetter(c, m),
        state: state(mw, m.lifecycle),
      }
    })
    const hasGetAllRecords = GET_ALL_CLASSES.has(c.name)
    if (hasGetAllRecords && c.name !== 'message' && !messages.some((m) => m.name === 'get_all_records_where')) {
      const getAll = messages.find((m) => m.name === 'get_all_records')
      messages.push({
        name: 'get_all_records_where',
        description: `Return a map of ${c.name} references to ${c.name} records for the objects matching the query expression (XAPI's hidden message, e.g. field "name__label"="x").`,
        params: [
          {
            name: 'session_id',
            doc: 'Reference to a valid session',
            typeString: 'session ref',
            type: parseType('session ref'),
            hasDefault: false,
          },
          {
            name: 'expr',
            doc: 'The expression to match',
            typeString: 'string',
            type: parseType('string'),
            hasDefault: false,
          },
        ],
        takesSession: true,
        resultString: `(${c.name} ref -> ${c.name} record) map`,
        result: parseType(`(${c.name} ref -> ${c.name} record) map`),
        resultDoc: 'records of all matching objects',
        errors: [],
        roles: getAll
          ? [...getAll.roles]
          : ['pool-admin', 'pool-operator', 'vm-power-admin', 'vm-admin', 'vm-operator', 'read-only'],
        implicit: true,
        hidden: true,
        hasAsync: false,
        state: getAll?.state ?? 'Published_s',
      })
    }
    classes.push({
      name: c.name,
      description: c.description,
      fields,
      messages,
      enums: c.enums.map((e) => ({ name: e.name, values: e.values.map((v) => ({ name: v.name, doc: v.doc })) })),
      hasGetAllRecords,
      emitsEvents: !SILENT_CLASSES.has(c.name),
      state: state(cw, c.lifecycle),
    })
  }
  for (const key of Object.keys(PARAM_DEFAULTS)) {
    if (!used.has(key)) throw new DatamodelError(`${source}: PARAM_DEFAULTS names ${key}, which the datamodel lacks`)
  }
  return classes
}

export function loadModel(path: string): ModelClass[] {
  return buildModel(readDatamodelJson(path), path)
}
