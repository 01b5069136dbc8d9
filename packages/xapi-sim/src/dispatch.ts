/**
 * Dispatch as XAPI does it (§4): wire name → message (also `Class_message`, `Async.`/`InternalAsync.`), arity with
 * trailing defaults (MESSAGE_PARAMETER_COUNT_MISMATCH counts exclude the session and parameters with defaults),
 * parameter coercion by type, the session check, HOST_IS_SLAVE on pool members, and asynchronous execution as tasks.
 *
 * Implementations are registered per wire name; the implicit messages of every class are generated from the
 * datamodel (see implicit.ts) and semantics modules replace or add explicit ones.
 */
import { XapiError } from './errors.js'
import type { ClassModel, MessageSpec, XapiType } from './model.js'
import { NULL_REF } from './model.js'
import type { Simulator } from './simulator.js'
import type { Session } from './semantics/session.js'

export type Transport = 'xmlrpc' | 'jsonrpc' | 'internal'

/** What an implementation gets besides its arguments. */
export interface CallContext {
  sim: Simulator
  /** The wire name as declared (`VM.start`). */
  wireName: string
  spec: MessageSpec
  cls: ClassModel
  /** The caller's session (undefined for messages without one, e.g. login). */
  session?: Session
  /** The host ref whose address the request reached (the master for in-process calls). */
  host: string
  transport: Transport
  /** The task running this call when it came in as `Async.` (else undefined). */
  task?: string
  /** Set progress (0..1) of the running task, if any. */
  progress(p: number): void
  /** Throws TASK_CANCELLED when the running task was asked to cancel. */
  checkCancelled(): void
}

/** An implementation: positional arguments after the session, defaults filled and coerced to their JS forms. */
export type MessageImpl = (ctx: CallContext, args: unknown[]) => unknown

/**
 * A result with its own XML-RPC encoding (for results whose shape the datamodel does not describe, such as
 * event.from's struct). JSON-RPC sends `value`.
 */
export class WireResult {
  constructor(
    readonly value: unknown,
    readonly xml: () => string,
    /** Optional JSON text of `value` (cached serialisations); JSON.stringify(value) otherwise. */
    readonly json?: () => string,
    /** Optional UTF-8 bytes of `xml()` (cached): answers are then written without encoding text. */
    readonly xmlBytes?: () => Buffer,
    /** Optional UTF-8 bytes of `json()` (cached). */
    readonly jsonBytes?: () => Buffer,
  ) {}
}

export interface CallInfo {
  /** The method as called (`Async.VM.start`, `VM_start`). */
  method: string
  params: unknown[]
  host: string
  transport: Transport
}

/** Called before each call is dispatched; throw an XapiError to fail it (fault injection), or delay by awaiting. */
export type CallHook = (info: CallInfo) => void | Promise<void>

export type CallOutcome =
  | {
      ok: true
      value: unknown
      type: XapiType | undefined
      xml?: () => string
      json?: () => string
      xmlBytes?: () => Buffer
      jsonBytes?: () => Buffer
    }
  | { ok: false; errorDescription: string[] }

interface Entry {
  spec: MessageSpec
  cls: ClassModel
  /** The parameters after the session (all of them for messages without one). */
  params: MessageSpec['params']
  required: number
  total: number
  impl?: MessageImpl
}

const NO_ASYNC_MSG = 'No async mode for this operation'

export class Dispatcher {
  private readonly entries = new Map<string, Entry>()
  private readonly aliases = new Map<string, string>()
  private readonly overrides = new Map<string, MessageImpl>()
  private readonly hooks: CallHook[] = []

  constructor(private readonly sim: Simulator) {
    for (const cls of sim.model.classes) {
      for (const spec of cls.spec.messages) {
        const ps = spec.takesSession ? spec.params.slice(1) : spec.params
        const entry: Entry = {
          spec,
          cls,
          params: ps,
          required: ps.filter((p) => !p.hasDefault).length,
          total: ps.length,
        }
        this.entries.set(spec.wireName, entry)
        this.aliases.set(`${cls.name}_${spec.name}`, spec.wireName)
      }
    }
  }

  /** Every synchronous wire name (system.listMethods). */
  listMethods(): string[] {
    return [...this.entries.keys()]
  }

  /** The declared message for a wire name. */
  message(wireName: string): MessageSpec | undefined {
    return this.entries.get(wireName)?.spec
  }

  /** Provides the implementation of a declared message (semantics modules). */
  implement(wireName: string, impl: MessageImpl): void {
    const e = this.entries.get(wireName)
    if (!e) throw new Error(`xapi-sim: ${wireName} is not a message of the datamodel`)
    e.impl = impl
  }

  /**
   * Replaces a message's implementation (wins over implement(); S2's host.call_plugin, tests). Returns a function
   * restoring the previous one.
   */
  override(wireName: string, impl: MessageImpl): () => void {
    if (!this.entries.has(wireName)) throw new Error(`xapi-sim: ${wireName} is not a message of the datamodel`)
    const prev = this.overrides.get(wireName)
    this.overrides.set(wireName, impl)
    return () => {
      if (prev) this.overrides.set(wireName, prev)
      else this.overrides.delete(wireName)
    }
  }

  /** The implementation currently in force (override, else the built-in), to wrap it. */
  implementation(wireName: string): MessageImpl | undefined {
    return this.overrides.get(wireName) ?? this.entries.get(wireName)?.impl
  }

  /** Adds a hook run before every call (fault injection, latency); returns a function removing it. */
  addHook(h: CallHook): () => void {
    this.hooks.push(h)
    return () => {
      const i = this.hooks.indexOf(h)
      if (i >= 0) this.hooks.splice(i, 1)
    }
  }

  /**
   * Runs a call from the wire (or in-process). Never throws: failures come back as error descriptions. The outcome
   * is returned synchronously when hooks and the implementation are synchronous (the hot path), else as a promise.
   */
  call(method: string, params: unknown[], host: string, transport: Transport): CallOutcome | Promise<CallOutcome> {
    if (this.hooks.length > 0) return this.callWithHooks(method, params, host, transport)
    try {
      return this.run(method, params, host, transport)
    } catch (e) {
      return fail(e)
    }
  }

  private async callWithHooks(
    method: string,
    params: unknown[],
    host: string,
    transport: Transport,
  ): Promise<CallOutcome> {
    try {
      for (const h of this.hooks) await h({ method, params, host, transport })
      return await this.run(method, params, host, transport)
    } catch (e) {
      return fail(e)
    }
  }

  private run(
    method: string,
    params: unknown[],
    host: string,
    transport: Transport,
  ): CallOutcome | Promise<CallOutcome> {
    let e = this.entries.get(method)
    let isAsync = false
    if (!e) {
      if (method.startsWith('system.')) return this.system(method, params)
      let name = method
      if (name.startsWith('Async.')) {
        isAsync = true
        name = name.slice(6)
      } else if (name.startsWith('InternalAsync.')) {
        isAsync = true
        name = name.slice(14)
      }
      e = this.entries.get(name)
      if (!e && !isAsync) {
        const alias = this.aliases.get(name)
        if (alias) e = this.entries.get(alias)
      }
      if (!e) throw new XapiError('MESSAGE_METHOD_UNKNOWN', method)
      if (isAsync && !e.spec.hasAsync) throw new XapiError('INTERNAL_ERROR', NO_ASYNC_MSG)
    }
    const entry = e
    const { args, session } = this.prepare(entry, method, params, host)
    const impl = (this.overrides.size > 0 ? this.overrides.get(entry.spec.wireName) : undefined) ?? entry.impl
    if (!impl) throw new XapiError('NOT_IMPLEMENTED', entry.spec.wireName)
    if (!isAsync) {
      const ctx = this.context(entry, session, host, transport, undefined)
      const v = impl(ctx, args)
      if (v instanceof Promise) return v.then((x) => outcome(entry, x), fail)
      return outcome(entry, v)
    }
    const task = this.sim.tasks.create(`Async.${entry.spec.wireName}`, '', session, host)
    const ctx = this.context(entry, session, host, transport, task)
    setImmediate(() => {
      void this.sim.tasks.run(task, async () => {
        const v = await impl(ctx, args)
        return v instanceof WireResult ? v.xml() : this.sim.encoders.encode(v, entry.spec.result)
      })
    })
    return { ok: true, value: task, type: { kind: 'ref', class: 'task' } }
  }

  private system(method: string, params: unknown[]): CallOutcome {
    if (method === 'system.listMethods') {
      const v = this.listMethods()
      return {
        ok: true,
        value: v,
        type: undefined,
        xml: () => this.sim.encoders.encode(v, { kind: 'set', of: { kind: 'string' } }),
      }
    }
    if (method.startsWith('system.isAlive')) return { ok: true, value: params[0] ?? '', type: undefined }
    throw new XapiError('MESSAGE_METHOD_UNKNOWN', method)
  }

  private prepare(e: Entry, method: string, params: unknown[], host: string): { args: unknown[]; session?: Session } {
    const spec = e.spec
    if (spec.state === 'Removed_s') throw new XapiError('MESSAGE_REMOVED')
    const skip = spec.takesSession ? 1 : 0
    const n = params.length - skip
    if (n < e.required || n > e.total) {
      // Like XAPI's generated server: received = params minus the session, so a bare call to a session message is -1.
      throw new XapiError('MESSAGE_PARAMETER_COUNT_MISMATCH', method, e.required, n)
    }
    let session: Session | undefined
    if (spec.takesSession) {
      session = this.sim.sessions.check(params[0])
      this.sim.assertMaster(host, session)
    } else if (
      spec.wireName.startsWith('session.login') ||
      spec.wireName === 'session.slave_local_login_with_password'
    ) {
      // logins on a member are redirected (§5); slave_local_login is the exception
      if (spec.wireName !== 'session.slave_local_login_with_password') this.sim.assertMaster(host, undefined)
    }
    const ps = e.params
    const args: unknown[] = new Array(ps.length)
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i]
      args[i] = i < n ? coerce(params[i + skip], p.type, p.name) : p.default
    }
    return { args, session }
  }

  private context(
    e: Entry,
    session: Session | undefined,
    host: string,
    transport: Transport,
    task: string | undefined,
  ): CallContext {
    return new Context(this.sim, e, session, host, transport, task)
  }
}

/** The per-call context (a class, so the hot path allocates one small object and no closures). */
class Context implements CallContext {
  readonly wireName: string
  readonly spec: MessageSpec
  readonly cls: ClassModel
  constructor(
    readonly sim: Simulator,
    e: Entry,
    readonly session: Session | undefined,
    readonly host: string,
    readonly transport: Transport,
    readonly task: string | undefined,
  ) {
    this.wireName = e.spec.wireName
    this.spec = e.spec
    this.cls = e.cls
  }

  progress(p: number): void {
    const task = this.task
    if (task && this.sim.db.has('task', task)) this.sim.db.set(task, 'progress', Math.max(0, Math.min(1, p)))
  }

  checkCancelled(): void {
    if (this.task && this.sim.tasks.cancelRequested(this.task)) throw new XapiError('TASK_CANCELLED', this.task)
  }
}

function outcome(e: Entry, v: unknown): CallOutcome {
  if (v instanceof WireResult)
    return {
      ok: true,
      value: v.value,
      type: undefined,
      xml: v.xml,
      json: v.json,
      xmlBytes: v.xmlBytes,
      jsonBytes: v.jsonBytes,
    }
  return { ok: true, value: v === undefined ? '' : v, type: e.spec.result }
}

function fail(e: unknown): CallOutcome {
  if (e instanceof XapiError) return { ok: false, errorDescription: e.errorDescription }
  return { ok: false, errorDescription: ['INTERNAL_ERROR', e instanceof Error ? e.message : String(e)] }
}

/** Converts a decoded parameter (either transport) to its JS form by type; INVALID_VALUE / FIELD_TYPE_ERROR otherwise. */
export function coerce(v: unknown, t: XapiType, name: string): unknown {
  switch (t.kind) {
    case 'string':
    case 'ref':
      if (typeof v === 'string') return v
      if (t.kind === 'ref' && (v === null || v === '')) return NULL_REF
      if (typeof v === 'number' || typeof v === 'boolean') return String(v)
      throw new XapiError('FIELD_TYPE_ERROR', name)
    case 'enum':
      if (typeof v === 'string') return v
      throw new XapiError('FIELD_TYPE_ERROR', name)
    case 'int': {
      if (typeof v === 'number' && Number.isInteger(v)) return v
      if (typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v)) return Number(v)
      throw new XapiError('FIELD_TYPE_ERROR', name)
    }
    case 'float': {
      const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN
      if (Number.isNaN(n)) throw new XapiError('FIELD_TYPE_ERROR', name)
      return n
    }
    case 'bool':
      if (typeof v === 'boolean') return v
      if (v === 'true' || v === '1' || v === 1) return true
      if (v === 'false' || v === '0' || v === 0) return false
      throw new XapiError('FIELD_TYPE_ERROR', name)
    case 'datetime':
      if (typeof v === 'string') return v
      if (v instanceof Date)
        return v
          .toISOString()
          .replace(/\.\d+Z$/, 'Z')
          .replace(/-/g, '')
      throw new XapiError('FIELD_TYPE_ERROR', name)
    case 'set':
      if (!Array.isArray(v)) throw new XapiError('FIELD_TYPE_ERROR', name)
      return v.map((x) => coerce(x, t.of, name))
    case 'map': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new XapiError('FIELD_TYPE_ERROR', name)
      const out: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = coerce(x, t.value, name)
      return out
    }
    case 'record':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new XapiError('FIELD_TYPE_ERROR', name)
      return v
    case 'option':
      return v === null || v === undefined ? v : coerce(v, t.of, name)
    default:
      return v
  }
}
