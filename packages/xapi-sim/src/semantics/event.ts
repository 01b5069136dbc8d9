/**
 * Events (§7): event.from with XAPI's token (`%020d,%020d`: database generation, message generation), per-object
 * coalescing, valid_ref_counts for every table, blocking until a matching event or the timeout; event.inject; the
 * legacy register/next/unregister/get_current_id API.
 */
import { XapiError } from '../errors.js'
import { WireResult } from '../dispatch.js'
import { recordResult } from './implicit.js'
import type { Row, ChangeOp } from '../store.js'
import type { Simulator } from '../simulator.js'

const pad = (n: number) => String(n).padStart(20, '0')

export function formatToken(gen: number, msgGen = 0): string {
  return `${pad(gen)},${pad(msgGen)}`
}

/** Parses a token; '' means "from the beginning" (-1). */
export function parseToken(token: string): number {
  if (token === '') return -1
  const m = /^(\d+)(?:,(\d+))?$/.exec(token)
  if (!m) throw new XapiError('EVENT_FROM_TOKEN_PARSE_FAILURE', token)
  return Number(m[1])
}

interface Subscription {
  all: boolean
  classes: Set<string>
  objects: Set<string>
  tasksOnly: boolean
}

function parseSubscription(sim: Simulator, classes: string[]): Subscription {
  const sub: Subscription = { all: false, classes: new Set(), objects: new Set(), tasksOnly: true }
  for (const raw of classes) {
    const s = raw.trim()
    if (s === '*') {
      sub.all = true
      sub.tasksOnly = false
      continue
    }
    const slash = s.indexOf('/')
    if (slash >= 0) {
      const cls = s.slice(0, slash)
      const ref = s.slice(slash + 1)
      if (!cls || !ref || !/^[A-Za-z_]+$/.test(cls)) throw new XapiError('EVENT_SUBSCRIPTION_PARSE_FAILURE', raw)
      sub.objects.add(ref)
      if (cls.toLowerCase() !== 'task') sub.tasksOnly = false
      continue
    }
    if (!/^[A-Za-z_]+$/.test(s)) throw new XapiError('EVENT_SUBSCRIPTION_PARSE_FAILURE', raw)
    const c = sim.model.cls(s)
    if (c) sub.classes.add(c.name)
    if (s.toLowerCase() !== 'task') sub.tasksOnly = false
  }
  return sub
}

function accepts(sub: Subscription, row: Row): boolean {
  return sub.all || sub.classes.has(row.cls.name) || sub.objects.has(row.ref)
}

export interface EventRecord {
  id: string
  timestamp: string
  class: string
  operation: ChangeOp
  ref: string
  snapshot?: Record<string, unknown>
}

export class EventManager {
  /** Legacy API: per-session subscriptions and the generation each has consumed up to. */
  private readonly registered = new Map<string, { classes: string[]; since: number }>()

  constructor(
    private readonly sim: Simulator,
    readonly options: { batchMs: number },
  ) {}

  private collect(sub: Subscription, since: number): EventRecord[] | undefined {
    const changes = this.sim.db.changesSince(since, (row) => accepts(sub, row))
    if (!changes) return undefined
    const out: EventRecord[] = []
    for (const { op, row } of changes) {
      const ev: EventRecord = {
        id: String(row.gen),
        timestamp: '0.0',
        class: row.cls.lower,
        operation: op,
        ref: row.ref,
      }
      if (op !== 'del') ev.snapshot = row.rec
      out.push(ev)
    }
    return out
  }

  /** Aborted by close(): blocked event.from/next calls return at once so the process can exit. */
  private readonly closing = new AbortController()

  close(): void {
    this.closing.abort()
  }

  /** Waits until an event for the subscription exists after `since` or the timeout passes. */
  private async wait(
    sub: Subscription,
    since: number,
    timeoutMs: number,
    signal: AbortSignal = this.closing.signal,
  ): Promise<EventRecord[]> {
    const db = this.sim.db
    const deadline = Date.now() + timeoutMs
    const delay = sub.tasksOnly ? 0 : this.options.batchMs
    for (;;) {
      if (db.generation > since || since < 0) {
        if (delay > 0 && !signal.aborted) await new Promise((r) => setTimeout(r, delay))
        const evs = this.collect(sub, since)
        if (!evs) throw new XapiError('EVENTS_LOST')
        if (evs.length > 0) return evs
        since = Math.max(since, db.generation)
      }
      const left = deadline - Date.now()
      if (left <= 0 || signal.aborted) return []
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left)
        const off = db.onNextChange(done)
        const onAbort = () => done()
        signal.addEventListener('abort', onAbort, { once: true })
        function done() {
          clearTimeout(timer)
          off()
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
      })
    }
  }

  /** event.from (§7.1). */
  async from(classes: string[], token: string, timeoutSec: number): Promise<WireResult> {
    const sub = parseSubscription(this.sim, classes)
    const since = parseToken(token)
    const timeoutMs = Math.max(0, Math.min(timeoutSec, 3600) * 1000)
    const events = await this.wait(sub, since, timeoutMs)
    const db = this.sim.db
    const value = {
      events,
      valid_ref_counts: db.refCounts(),
      token: formatToken(db.generation, db.generation),
    }
    return new WireResult(
      value,
      () => this.encodeBatch(value),
      () => this.jsonBatch(value),
    )
  }

  /** JSON text of an event; snapshots come from the rows' cached JSON (same bytes as JSON.stringify). */
  private jsonEvent(ev: EventRecord): string {
    let s = `{"id":"${ev.id}","timestamp":"${ev.timestamp}","class":"${ev.class}","operation":"${ev.operation}","ref":${JSON.stringify(ev.ref)}`
    if (ev.snapshot) {
      const row = this.sim.db.row(ev.ref)
      s += `,"snapshot":${row && row.rec === ev.snapshot ? this.sim.db.json(row) : JSON.stringify(ev.snapshot)}`
    }
    return s + '}'
  }

  private jsonBatch(v: { events: EventRecord[]; valid_ref_counts: Record<string, number>; token: string }): string {
    let s = '{"events":['
    for (let i = 0; i < v.events.length; i++) s += (i ? ',' : '') + this.jsonEvent(v.events[i])
    return s + `],"valid_ref_counts":${JSON.stringify(v.valid_ref_counts)},"token":"${v.token}"}`
  }

  private encodeEvent(ev: EventRecord): string {
    const enc = this.sim.encoders
    let s =
      `<value><struct><member><name>id</name><value>${ev.id}</value></member>` +
      `<member><name>timestamp</name><value>${ev.timestamp}</value></member>` +
      `<member><name>class</name><value>${ev.class}</value></member>` +
      `<member><name>operation</name><value>${ev.operation}</value></member>` +
      `<member><name>ref</name><value>${ev.ref}</value></member>`
    if (ev.snapshot) {
      const row = this.sim.db.row(ev.ref)
      const xml =
        row && row.rec === ev.snapshot
          ? (recordResult(this.sim, row).xml as () => string)()
          : enc.encode(ev.snapshot, { kind: 'record', class: this.sim.model.cls(ev.class)?.name ?? ev.class })
      s += `<member><name>snapshot</name>${xml}</member>`
    }
    return s + '</struct></value>'
  }

  private encodeBatch(v: { events: EventRecord[]; valid_ref_counts: Record<string, number>; token: string }): string {
    let s = '<value><struct><member><name>events</name><value><array><data>'
    for (const ev of v.events) s += this.encodeEvent(ev)
    s += '</data></array></value></member><member><name>valid_ref_counts</name><value><struct>'
    for (const k in v.valid_ref_counts)
      s += `<member><name>${k}</name><value><i4>${v.valid_ref_counts[k]}</i4></value></member>`
    return s + `</struct></value></member><member><name>token</name><value>${v.token}</value></member></struct></value>`
  }

  /** event.inject (§7.2): touches the row; the token returned makes the next event.from report it at once. */
  inject(cls: string, ref: string): string {
    const c = this.sim.model.cls(cls)
    const row = this.sim.db.row(ref)
    if (!c || !row || row.cls !== c) throw new XapiError('HANDLE_INVALID', cls, ref)
    this.sim.db.touch(ref)
    return formatToken(this.sim.db.generation - 1, 0)
  }

  install(): void {
    const d = this.sim.messages
    d.implement('event.from', (_ctx, a) => this.from(a[0] as string[], a[1] as string, a[2] as number))
    d.implement('event.inject', (_ctx, a) => this.inject(a[0] as string, a[1] as string))
    d.implement('event.get_current_id', () => this.sim.db.generation)
    d.implement('event.register', (ctx, a) => {
      const ref = ctx.session!.ref
      const cur = this.registered.get(ref)
      const classes = [...new Set([...(cur?.classes ?? []), ...(a[0] as string[])])]
      this.registered.set(ref, { classes, since: cur?.since ?? this.sim.db.generation })
    })
    d.implement('event.unregister', (ctx, a) => {
      const ref = ctx.session!.ref
      const cur = this.registered.get(ref)
      if (!cur) return
      const drop = new Set((a[0] as string[]).map((x) => x.toLowerCase()))
      cur.classes = cur.classes.filter((c) => !drop.has(c.toLowerCase()))
      if (cur.classes.length === 0) this.registered.delete(ref)
    })
    d.implement('event.next', async (ctx) => {
      const ref = ctx.session!.ref
      const reg = this.registered.get(ref)
      if (!reg) throw new XapiError('SESSION_NOT_REGISTERED', ref)
      const sub = parseSubscription(this.sim, reg.classes)
      const events = await this.wait(sub, reg.since, 30 * 60 * 1000)
      reg.since = this.sim.db.generation
      return new WireResult(events, () => {
        let s = '<value><array><data>'
        for (const ev of events) s += this.encodeEvent(ev)
        return s + '</data></array></value>'
      })
    })
  }
}
