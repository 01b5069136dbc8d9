/**
 * Events (xapi-protocol.md §7): `watch(classes)` is an async iterator over `event.from`, and ObjectCache keeps a
 * map of objects current from it (like xen-api's `objects`).
 *
 * Token handling: the first call uses the empty token, so XAPI reports every existing object as `add` (a full
 * snapshot) unless `since` is given; each batch's token feeds the next call. EVENTS_LOST (the token is too old)
 * restarts from the empty token and yields a `reset` marker first, so consumers can drop what they had.
 * SESSION_INVALID is handled below (log in again, retry the same token).
 */
import { fromWire, getClass, type XapiType } from '@xenstack/xapi-wire'
import { EventEmitter } from 'node:events'
import { ErrorCode, XenAPIError } from './errors.js'
import type { XapiCore } from './client.js'

export type EventOperation = 'add' | 'mod' | 'del'

export interface XapiEvent<T = Record<string, unknown>> {
  /** Lower-case class name as XAPI sends it (`vm`, `host`, `task`). */
  class: string
  operation: EventOperation
  ref: string
  /** The object after the change (converted like get_record: ints as numbers, datetimes as Date); absent on del. */
  snapshot?: T
}

/** Yielded (once) when events were lost and the stream restarted from a full snapshot. */
export interface XapiEventsReset {
  class: '*'
  operation: 'reset'
}

export interface WatchOptions {
  signal?: AbortSignal
  /** Start after this token (from `lastToken`) instead of a full snapshot. */
  since?: string
  /** Seconds each `event.from` waits for events (default 30). */
  pollTimeout?: number
  /** Called with the token after every batch (to resume later with `since`). */
  onToken?: (token: string) => void
}

interface EventBatch {
  events?: { class?: string; operation?: string; ref?: string; snapshot?: unknown }[]
  token?: string
}

const recordTypes = new Map<string, XapiType | null>()

function recordType(cls: string): XapiType | null {
  let t = recordTypes.get(cls)
  if (t === undefined) {
    const spec = getClass(cls)
    t = spec ? ({ kind: 'record', class: spec.name } as XapiType) : null
    recordTypes.set(cls, t)
  }
  return t
}

function convertSnapshot(cls: string, snapshot: unknown): Record<string, unknown> | undefined {
  if (snapshot === undefined || snapshot === null || typeof snapshot !== 'object') return undefined
  const t = recordType(cls)
  return (t ? fromWire(snapshot, t) : snapshot) as Record<string, unknown>
}

interface Batch {
  /** True when events were lost and this batch restarts from a full snapshot. */
  reset: boolean
  /** True for the answer to an empty-token call: every object that exists. */
  full: boolean
  events: XapiEvent[]
  token: string
}

/** The `event.from` loop, one converted batch at a time. */
async function* batches(core: XapiCore, classes: string[], opts: WatchOptions): AsyncGenerator<Batch, void, undefined> {
  const pollTimeout = opts.pollTimeout ?? 30
  const signal = opts.signal ? AbortSignal.any([opts.signal, core.closed]) : core.closed
  let token = opts.since ?? ''
  let reset = false
  while (!signal.aborted) {
    let batch: EventBatch
    try {
      batch = (await core.callWith('event.from', [classes, token, pollTimeout], {
        unqueued: true,
        timeout: (pollTimeout + 15) * 1000,
        signal,
      })) as EventBatch
    } catch (e) {
      if (signal.aborted) return
      if (e instanceof XenAPIError && e.code === ErrorCode.EVENTS_LOST) {
        core.logger.debug?.(`event.from on ${core.url}: events lost, restarting from a full snapshot`)
        token = ''
        reset = true
        continue
      }
      throw e
    }
    const full = token === ''
    token = String(batch.token ?? token)
    opts.onToken?.(token)
    const events: XapiEvent[] = []
    for (const ev of batch.events ?? []) {
      const cls = String(ev.class ?? '')
      const operation = String(ev.operation) as EventOperation
      const out: XapiEvent = { class: cls.toLowerCase(), operation, ref: String(ev.ref ?? '') }
      if (operation !== 'del') {
        const snapshot = convertSnapshot(cls, ev.snapshot)
        if (snapshot) out.snapshot = snapshot
      }
      events.push(out)
    }
    yield { reset, full, events, token }
    reset = false
  }
}

/** Async iterator over events of `classes` (`['VM', 'host']`, `['*']`, or `'VM/OpaqueRef:…'`). */
export async function* watch(
  core: XapiCore,
  classes: string[],
  opts: WatchOptions = {},
): AsyncGenerator<XapiEvent | XapiEventsReset, void, undefined> {
  for await (const b of batches(core, classes, opts)) {
    if (b.reset) yield { class: '*', operation: 'reset' }
    yield* b.events
  }
}

export interface CachedObject {
  $type: string
  $ref: string
  [field: string]: unknown
}

/**
 * Objects of some classes, kept current from events. Emits `add`, `update`, `remove` (with the object) and `ready`
 * once the initial snapshot is in. `ready` resolves then. Stop it with `close()` or the signal.
 */
export class ObjectCache extends EventEmitter {
  private readonly byRef = new Map<string, CachedObject>()
  private readonly ac = new AbortController()
  readonly ready: Promise<void>
  /** Rejects/logs when the event loop fails for good (other than close). */
  readonly done: Promise<void>

  constructor(core: XapiCore, classes: string[], opts: { signal?: AbortSignal } = {}) {
    super()
    let markReady!: () => void
    let failReady!: (e: unknown) => void
    this.ready = new Promise<void>((res, rej) => {
      markReady = res
      failReady = rej
    })
    this.ready.catch(() => undefined)
    const signal = opts.signal ? AbortSignal.any([opts.signal, this.ac.signal]) : this.ac.signal
    this.done = (async () => {
      let first = true
      try {
        for await (const b of batches(core, classes, { signal })) {
          // A full snapshot replaces what we had: objects it does not mention are gone.
          const seen = b.full ? new Set(b.events.map((e) => e.ref)) : undefined
          if (seen) for (const ref of [...this.byRef.keys()]) if (!seen.has(ref)) this.remove(ref)
          for (const ev of b.events) {
            if (ev.operation === 'del') this.remove(ev.ref)
            else if (ev.snapshot) {
              const obj = Object.freeze({ ...ev.snapshot, $type: ev.class, $ref: ev.ref }) as CachedObject
              const had = this.byRef.has(ev.ref)
              this.byRef.set(ev.ref, obj)
              this.emit(had ? 'update' : 'add', obj)
            }
          }
          if (first) {
            first = false
            markReady()
            this.emit('ready')
          }
        }
      } catch (e) {
        failReady(e)
        if (this.listenerCount('error') > 0) this.emit('error', e)
        else core.logger.warn(`object cache on ${core.url} stopped: ${String(e)}`)
      }
    })()
  }

  private remove(ref: string): void {
    const obj = this.byRef.get(ref)
    if (obj) {
      this.byRef.delete(ref)
      this.emit('remove', obj)
    }
  }

  get size(): number {
    return this.byRef.size
  }
  get(ref: string): CachedObject | undefined {
    return this.byRef.get(ref)
  }
  getByUuid(uuid: string): CachedObject | undefined {
    for (const o of this.byRef.values()) if (o.uuid === uuid) return o
    return undefined
  }
  /** Every cached object of a class (case-insensitive). */
  all(cls?: string): CachedObject[] {
    const c = cls?.toLowerCase()
    return [...this.byRef.values()].filter((o) => c === undefined || o.$type === c)
  }
  async close(): Promise<void> {
    this.ac.abort()
    await this.done
  }
}
