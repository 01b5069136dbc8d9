/**
 * Sessions (§5): login with 2–4 parameters, SESSION_AUTHENTICATION_FAILED after a configurable delay, logout,
 * SESSION_INVALID, at most N sessions per originator (oldest evicted, like XAPI), idle expiry, and a test hook
 * to expire a session. Sessions are rows of the `session` table (which never produces events) plus an in-memory
 * index so the per-call check is one Map lookup.
 */
import { XapiError } from '../errors.js'
import { NULL_REF } from '../model.js'
import { nowXapi } from '../time.js'
import type { Simulator } from '../simulator.js'

export interface Session {
  ref: string
  uname: string
  originator: string
  /** Ms since epoch of the last call made with it. */
  lastActive: number
  /** A pool-internal session (slave login): members accept it without HOST_IS_SLAVE. */
  pool: boolean
}

export interface SessionLimits {
  /** Sessions kept per originator (or per user name without one); the oldest is evicted. Default 500. */
  maxPerOriginator: number
  /** Idle time after which a session expires. Default 24 h. */
  idleTimeoutMs: number
  /** Delay before answering a failed login. Default 0 (XAPI waits ~ seconds; tests need not). */
  authFailureDelayMs: number
}

export class SessionManager {
  private readonly byRef = new Map<string, Session>()
  private readonly byOriginator = new Map<string, Set<Session>>()
  private sweeper: NodeJS.Timeout | undefined

  constructor(
    private readonly sim: Simulator,
    readonly limits: SessionLimits,
  ) {}

  get size(): number {
    return this.byRef.size
  }

  /** Returns the live session for a ref or throws SESSION_INVALID [ref]. */
  check(ref: unknown): Session {
    const s = typeof ref === 'string' ? this.byRef.get(ref) : undefined
    if (!s) throw new XapiError('SESSION_INVALID', ref)
    const now = Date.now()
    if (now - s.lastActive > this.limits.idleTimeoutMs) {
      this.destroy(s.ref)
      throw new XapiError('SESSION_INVALID', ref)
    }
    s.lastActive = now
    return s
  }

  /** Checks credentials against the simulator's users; resolves to the new session ref. */
  async login(uname: string, pwd: string, originator: string, host: string, pool = false): Promise<string> {
    if (!this.sim.authenticate(uname, pwd)) {
      if (this.limits.authFailureDelayMs > 0) await new Promise((r) => setTimeout(r, this.limits.authFailureDelayMs))
      throw new XapiError('SESSION_AUTHENTICATION_FAILED', uname, 'Authentication failure')
    }
    return this.create(uname, originator, host, pool)
  }

  /** Creates a session without checking credentials (in-process users, tests). */
  create(uname: string, originator: string, host: string, pool = false): string {
    const db = this.sim.db
    const key = originator !== '' ? `o:${originator}` : `u:${uname}`
    let group = this.byOriginator.get(key)
    if (!group) this.byOriginator.set(key, (group = new Set()))
    while (group.size >= this.limits.maxPerOriginator) {
      // Evict the least recently active one, as XAPI does, even if it is still in use.
      let oldest: Session | undefined
      for (const s of group) if (!oldest || s.lastActive < oldest.lastActive) oldest = s
      this.destroy(oldest!.ref)
    }
    const now = nowXapi()
    const ref = db.create('session', {
      this_host: host,
      this_user: NULL_REF,
      last_active: now,
      validation_time: now,
      pool,
      is_local_superuser: true,
      auth_user_name: uname,
      originator,
    })
    const s: Session = { ref, uname, originator, lastActive: Date.now(), pool }
    ;(s as Session & { key: string }).key = key
    this.byRef.set(ref, s)
    group.add(s)
    this.startSweeper()
    return ref
  }

  destroy(ref: string): void {
    const s = this.byRef.get(ref)
    if (!s) return
    this.byRef.delete(ref)
    const key = (s as Session & { key: string }).key
    const group = this.byOriginator.get(key)
    group?.delete(s)
    if (group?.size === 0) this.byOriginator.delete(key)
    if (this.sim.db.has('session', ref)) this.sim.db.destroy(ref)
  }

  /** Test hook: makes a session invalid at once, as idle expiry or eviction would. */
  expire(ref: string): void {
    this.destroy(ref)
  }

  /** Removes sessions idle longer than the timeout. */
  sweep(): void {
    const now = Date.now()
    for (const s of [...this.byRef.values()]) if (now - s.lastActive > this.limits.idleTimeoutMs) this.destroy(s.ref)
  }

  private startSweeper(): void {
    if (this.sweeper) return
    const every = Math.max(1000, Math.min(60_000, this.limits.idleTimeoutMs))
    this.sweeper = setInterval(() => this.sweep(), every)
    this.sweeper.unref()
  }

  close(): void {
    if (this.sweeper) clearInterval(this.sweeper)
    this.sweeper = undefined
  }

  install(): void {
    const sim = this.sim
    const d = sim.messages
    const login = async (ctx: { host: string }, a: unknown[]) =>
      this.login(a[0] as string, a[1] as string, (a[3] as string) ?? '', ctx.host)
    d.implement('session.login_with_password', login)
    d.implement('session.slave_local_login_with_password', (ctx, a) =>
      this.login(a[0] as string, a[1] as string, '', ctx.host, true),
    )
    d.implement('session.logout', (ctx) => this.destroy(ctx.session!.ref))
    d.implement('session.local_logout', (ctx) => this.destroy(ctx.session!.ref))
    d.implement('session.get_all_subject_identifiers', () => [])
    d.implement('session.logout_subject_identifier', () => undefined)
    d.implement('session.change_password', (ctx, a) => {
      const user = ctx.session!.uname
      if (!sim.authenticate(user, a[0] as string))
        throw new XapiError('SESSION_AUTHENTICATION_FAILED', user, 'Authentication failure')
      sim.setPassword(user, a[1] as string)
    })
  }
}
