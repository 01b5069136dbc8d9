/**
 * Asynchronous calls and tasks (xapi-protocol.md §6).
 *
 * `Async.<Class>.<message>` answers with a task ref at once. One TaskWatcher per connection follows every pending
 * task through a single `event.from(['task'], token, 30)` long poll (not one poll per task) and falls back to
 * polling `task.get_record` when event.from is unavailable. The task's `result` is the XML-RPC serialisation of the
 * return value even over JSON-RPC; it is decoded with the wire codec and converted by the message's result type.
 * The task is destroyed afterwards. An AbortSignal sends `task.cancel`.
 */
import { decodeMethodResponse, fromWire, getMessage, type XapiType } from '@xenstack/xapi-wire'
import { ErrorCode, XapiTransportError, XenAPIError } from './errors.js'
import type { XapiCore } from './client.js'

export type TaskStatus = 'pending' | 'success' | 'failure' | 'cancelling' | 'cancelled'

/** The part of a task record the client reads. */
export interface TaskState {
  status: TaskStatus
  progress: number
  result: string
  error_info: string[]
}

export interface AsyncCallOptions {
  /** Aborting sends `task.cancel`; the call then rejects with the task's outcome (TASK_CANCELLED when honoured). */
  signal?: AbortSignal
  /** Called with `task.progress` (0..1) whenever it changes. */
  onProgress?: (progress: number) => void
}

export interface WaitTaskOptions extends AsyncCallOptions {
  /** Result type used to convert `task.result`; default: returned as decoded. */
  resultType?: XapiType
  /** Name used in errors, e.g. `Async.VM.start`. */
  method?: string
}

type Waiter = (state: TaskState | null) => void

const POLL_INTERVAL_MS = 250
const EVENT_TIMEOUT_S = 30

function toState(rec: unknown): TaskState {
  const r = (rec ?? {}) as Record<string, unknown>
  return {
    status: String(r.status ?? 'pending') as TaskStatus,
    progress: Number(r.progress ?? 0),
    result: typeof r.result === 'string' ? r.result : '',
    error_info: Array.isArray(r.error_info) ? r.error_info.map(String) : [],
  }
}

/** Decodes `task.result` (an XML-RPC `<value>…</value>` string) and converts it by type. */
export function parseTaskResult(result: string, type?: XapiType): unknown {
  if (type?.kind === 'void') return undefined
  const s = result.trim()
  if (s === '') return type ? fromWire('', type) : ''
  let value: unknown
  if (s.startsWith('<value')) {
    value = decodeMethodResponse(`<methodResponse><params><param>${s}</param></params></methodResponse>`)
  } else {
    value = s // a bare value, as lax servers store it
  }
  return type ? fromWire(value, type) : value
}

class TaskWatcher {
  private readonly waiters = new Map<string, Set<Waiter>>()
  private token = ''
  private running = false
  private polling = false
  private stop: AbortController | undefined

  constructor(private readonly core: XapiCore) {}

  register(ref: string, waiter: Waiter): () => void {
    let set = this.waiters.get(ref)
    if (!set) this.waiters.set(ref, (set = new Set()))
    set.add(waiter)
    if (!this.running) void this.run()
    return () => {
      set.delete(waiter)
      if (set.size === 0) this.waiters.delete(ref)
      if (this.waiters.size === 0) this.stop?.abort()
    }
  }

  private dispatch(ref: string, state: TaskState | null): void {
    const set = this.waiters.get(ref)
    if (set) for (const w of [...set]) w(state)
  }

  private async run(): Promise<void> {
    this.running = true
    this.stop = new AbortController()
    const signal = AbortSignal.any([this.stop.signal, this.core.closed])
    try {
      while (this.waiters.size > 0 && !signal.aborted) {
        if (this.polling) {
          await this.pollOnce(signal)
          await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS))
          continue
        }
        try {
          const batch = (await this.core.callWith('event.from', [['task'], this.token, EVENT_TIMEOUT_S], {
            unqueued: true,
            timeout: (EVENT_TIMEOUT_S + 15) * 1000,
            signal,
          })) as { events?: { class?: string; operation?: string; ref?: string; snapshot?: unknown }[]; token?: string }
          this.token = String(batch.token ?? '')
          for (const ev of batch.events ?? []) {
            if (String(ev.class).toLowerCase() !== 'task' || !ev.ref) continue
            this.dispatch(ev.ref, ev.operation === 'del' ? null : toState(ev.snapshot))
          }
        } catch (e) {
          if (signal.aborted) break
          if (e instanceof XenAPIError && e.code === ErrorCode.EVENTS_LOST) {
            this.token = ''
            continue
          }
          this.core.logger.debug?.(`event.from on ${this.core.url} failed (${String(e)}); polling tasks instead`)
          this.polling = true
        }
      }
    } finally {
      this.running = false
      // A waiter may have registered between the loop's last check and here.
      if (this.waiters.size > 0 && !this.core.closed.aborted) void this.run()
    }
  }

  private async pollOnce(signal: AbortSignal): Promise<void> {
    await Promise.all(
      [...this.waiters.keys()].map(async (ref) => {
        try {
          this.dispatch(ref, toState(await this.core.callWith('task.get_record', [ref], { signal })))
        } catch (e) {
          if (e instanceof XenAPIError && e.code === ErrorCode.HANDLE_INVALID) this.dispatch(ref, null)
        }
      }),
    )
  }
}

const watchers = new WeakMap<XapiCore, TaskWatcher>()

function watcherOf(core: XapiCore): TaskWatcher {
  let w = watchers.get(core)
  if (!w) watchers.set(core, (w = new TaskWatcher(core)))
  return w
}

/** Waits until the task leaves `pending`, returning its converted result or throwing its error. Does not destroy it. */
export function waitTask(core: XapiCore, ref: string, opts: WaitTaskOptions = {}): Promise<unknown> {
  const method = opts.method ?? `task ${ref}`
  return new Promise<unknown>((resolve, reject) => {
    let lastProgress = -1
    let settled = false
    let cancelSent = false
    const finish = (fn: () => void): void => {
      if (settled) return
      settled = true
      unregister()
      opts.signal?.removeEventListener('abort', onAbort)
      core.closed.removeEventListener('abort', onClosed)
      fn()
    }
    const onState: Waiter = (state) => {
      if (state === null) {
        return finish(() =>
          reject(new XapiTransportError(`${method}: task ${ref} was destroyed before completion`, method, core.url)),
        )
      }
      if (opts.onProgress && state.progress !== lastProgress) {
        lastProgress = state.progress
        try {
          opts.onProgress(state.progress)
        } catch {
          // a failing progress callback must not break the wait
        }
      }
      switch (state.status) {
        case 'success':
          return finish(() => {
            try {
              resolve(parseTaskResult(state.result, opts.resultType))
            } catch (e) {
              reject(
                new XapiTransportError(
                  `${method}: cannot decode task.result of ${ref}: ${(e as Error).message}`,
                  method,
                  core.url,
                  undefined,
                  { cause: e },
                ),
              )
            }
          })
        case 'failure':
        case 'cancelled': {
          const [code = state.status === 'cancelled' ? ErrorCode.TASK_CANCELLED : 'UNKNOWN_ERROR', ...params] =
            state.error_info
          return finish(() =>
            reject(
              new XenAPIError(
                code,
                params.map((p) => core.redactor.text(p)),
                method,
                core.url,
              ),
            ),
          )
        }
      }
    }
    const onAbort = (): void => {
      if (cancelSent) return
      cancelSent = true
      core.callWith('task.cancel', [ref]).catch((e) => core.logger.debug?.(`task.cancel ${ref}: ${String(e)}`))
    }
    const onClosed = (): void =>
      finish(() => reject(new XapiTransportError(`${method}: connection closed while waiting`, method, core.url)))
    const unregister = watcherOf(core).register(ref, onState)
    core.closed.addEventListener('abort', onClosed, { once: true })
    if (opts.signal?.aborted) onAbort()
    else opts.signal?.addEventListener('abort', onAbort, { once: true })
    // The task may have finished before the watcher's token: read it once directly.
    core.callWith('task.get_record', [ref]).then(
      (rec) => onState(toState(rec)),
      (e) => {
        if (e instanceof XenAPIError && e.code === ErrorCode.HANDLE_INVALID) onState(null)
      },
    )
  })
}

/**
 * Issues `Async.<method>`, waits for the task, destroys it and returns the converted result (or throws the task's
 * error as XenAPIError).
 */
export async function callAsync(
  core: XapiCore,
  method: string,
  params: unknown[],
  opts: AsyncCallOptions = {},
): Promise<unknown> {
  const bare = method.startsWith('Async.') ? method.slice(6) : method
  const ref = (await core.callWith(`Async.${bare}`, params, { signal: opts.signal })) as string
  try {
    return await waitTask(core, ref, { ...opts, method: `Async.${bare}`, resultType: getMessage(bare)?.message.result })
  } finally {
    await core.callWith('task.destroy', [ref]).catch((e) => core.logger.debug?.(`task.destroy ${ref}: ${String(e)}`))
  }
}
