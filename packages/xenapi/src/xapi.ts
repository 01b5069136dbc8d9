/**
 * The client object `connect()` returns: the session layer plus tasks, events, plugins and disk streaming, and the
 * typed classes generated from the datamodel (`xapi.VM.start(...)`, `xapi.async.VM.start(...)`).
 */
import type { Readable } from 'node:stream'
import { XapiSession, type CallOptions, type ConnectOptions } from './client.js'
import { createApi, createAsyncApi, type XenApi, type XenAsyncApi } from './generated/index.js'
import { ObjectCache, watch, type WatchOptions, type XapiEvent, type XapiEventsReset } from './events.js'
import {
  callPlugin,
  callPluginWithRetry,
  checkPluginVersion,
  type PluginRetryOptions,
  type PluginVersionOptions,
} from './plugins.js'
import { exportVdi, importVdi, type ExportVdiOptions, type ImportVdiOptions } from './streaming.js'
import { callAsync, waitTask, type AsyncCallOptions, type WaitTaskOptions } from './tasks.js'

// The generated classes (`xapi.VM`, `xapi.host`, …) are merged into Xapi's type here and installed as lazy getters in
// the constructor.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface Xapi extends XenApi {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class Xapi extends XapiSession {
  /** `xapi.async.VM.start(vm, false, false)`: the Async.* form of every message that has one, waiting for the task. */
  readonly async: XenAsyncApi

  constructor(options: ConnectOptions) {
    super(options)
    const api = createApi((method, params) => this.callWith(method, params))
    Object.defineProperties(this, Object.getOwnPropertyDescriptors(api))
    this.async = createAsyncApi((method, params) => callAsync(this, method, params))
  }

  /**
   * The typed classes and `call` with per-call options: `xapi.withOptions({ timeout: 5_000, signal }).VM.start(…)`.
   * Cheap: the class objects are created on first use.
   */
  withOptions(opts: CallOptions): XenApi & { call(method: string, ...params: unknown[]): Promise<unknown> } {
    const api = createApi((method, params) => this.callWith(method, params, opts))
    return Object.assign(Object.create(api) as XenApi, {
      call: (method: string, ...params: unknown[]) => this.callWith(method, params, opts),
    })
  }

  /** `Async.<method>`: waits for the task, destroys it, returns its converted result. */
  callAsync(method: string, ...params: unknown[]): Promise<unknown> {
    return callAsync(this, method, params)
  }
  /** `callAsync` with a cancellation signal (→ task.cancel) and a progress callback. */
  callAsyncWith(method: string, params: unknown[], opts: AsyncCallOptions): Promise<unknown> {
    return callAsync(this, method, params, opts)
  }
  /** Waits for a task created elsewhere (does not destroy it). */
  waitTask(ref: string, opts?: WaitTaskOptions): Promise<unknown> {
    return waitTask(this, ref, opts)
  }
  /** Events of `classes` (`['VM']`, `['*']`) as an async iterator over `event.from`. */
  watch(classes: string[], opts?: WatchOptions): AsyncGenerator<XapiEvent | XapiEventsReset, void, undefined> {
    return watch(this, classes, opts)
  }
  /** A map of the objects of `classes`, kept current from events. `await cache.ready` for the first snapshot. */
  cache(classes: string[], opts?: { signal?: AbortSignal }): ObjectCache {
    return new ObjectCache(this, classes, opts)
  }
  callPlugin(
    host: string,
    plugin: string,
    fn: string,
    args?: Record<string, string>,
    opts?: { timeout?: number; signal?: AbortSignal; idempotent?: boolean },
  ): Promise<string> {
    return callPlugin(this, host, plugin, fn, args, opts)
  }
  callPluginWithRetry(
    host: string,
    plugin: string,
    fn: string,
    args?: Record<string, string>,
    opts?: PluginRetryOptions,
  ): Promise<string> {
    return callPluginWithRetry(this, host, plugin, fn, args, opts)
  }
  checkPluginVersion(host: string, required: string, opts?: PluginVersionOptions): Promise<string> {
    return checkPluginVersion(this, host, required, opts)
  }
  importVdi(vdi: string, body: Readable | Buffer | Uint8Array, opts?: ImportVdiOptions): Promise<void> {
    return importVdi(this, vdi, body, opts)
  }
  exportVdi(vdi: string, opts?: ExportVdiOptions): Promise<Readable> {
    return exportVdi(this, vdi, opts)
  }
}

/** Connects and logs in (following HOST_IS_SLAVE to the master). */
export async function connect(options: ConnectOptions): Promise<Xapi> {
  const xapi = new Xapi(options)
  try {
    await xapi.ensureSession()
  } catch (e) {
    await xapi.close()
    throw e
  }
  return xapi
}
