/**
 * The simulator: one XAPI pool — its database, dispatcher, sessions, tasks, events and HTTP front — serving every
 * pool member on its own loopback address and one port (127.0.0.1 master, 127.0.0.2, … members).
 */
import { XapiError } from './errors.js'
import { Dispatcher, type CallOutcome } from './dispatch.js'
import { HttpFront } from './http.js'
import { model as sharedModel, type Model } from './model.js'
import { Database } from './store.js'
import { XmlEncoders } from './xml.js'
import { SessionManager, type SessionLimits, type Session } from './semantics/session.js'
import { TaskManager, type TaskLimits } from './semantics/task.js'
import { EventManager } from './semantics/event.js'
import { installImplicit } from './semantics/implicit.js'
import { installSemantics } from './semantics/index.js'
import { buildPool, type PoolDescription } from './builder.js'
import { copyHost, simulatorsByAddress } from './semantics/pool.js'

export interface SimulatorOptions {
  /** root's password (default `xenroot`). */
  password?: string
  /** Further users and their passwords. */
  users?: Record<string, string>
  sessions?: Partial<SessionLimits>
  tasks?: Partial<TaskLimits>
  /** Delay batching events before event.from answers (XAPI: ~50 ms); task-only subscriptions never wait. Default 0. */
  eventBatchMs?: number
  /** The initial pool; without it the database is empty until buildPool()/db calls fill it. */
  pool?: PoolDescription
}

export interface ListenOptions {
  /** Address for the master (default: the master's `address`, normally 127.0.0.1). */
  host?: string
  /** Port shared by every member (0 = pick a free one). */
  port?: number
  /** Serve members on their own addresses: true (default) for every host with a 127.x address, false for none. */
  members?: boolean
}

export interface Listening {
  /** `http://<master address>:<port>`. */
  url: string
  port: number
  /** Host ref → address served. */
  addresses: Map<string, string>
}

export const DEFAULT_PASSWORD = 'xenroot'

export class Simulator {
  readonly model: Model
  readonly db: Database
  readonly encoders: XmlEncoders
  /** Message registry: implement/override/addHook/call. */
  readonly messages: Dispatcher
  readonly sessions: SessionManager
  readonly tasks: TaskManager
  readonly events: EventManager
  /** HTTP routes and middleware. */
  readonly http: HttpFront
  private readonly users = new Map<string, string>()
  private listening: Listening | undefined
  private domid = 0
  /** After pool.join: the master's simulator, which now serves this simulator's addresses. */
  joinedTo: { sim: Simulator; host: string } | undefined

  constructor(options: SimulatorOptions = {}) {
    this.model = sharedModel()
    this.db = new Database(this.model)
    this.encoders = new XmlEncoders(this.model)
    this.messages = new Dispatcher(this)
    this.users.set('root', options.password ?? DEFAULT_PASSWORD)
    for (const [u, p] of Object.entries(options.users ?? {})) this.users.set(u, p)
    this.sessions = new SessionManager(this, {
      maxPerOriginator: 500,
      idleTimeoutMs: 24 * 3600 * 1000,
      authFailureDelayMs: 0,
      ...options.sessions,
    })
    this.tasks = new TaskManager(this, {
      maxTasks: 200,
      completedTaskTimeoutMs: 65 * 60 * 1000,
      pendingTaskTimeoutMs: 24 * 3600 * 1000,
      ...options.tasks,
    })
    this.events = new EventManager(this, { batchMs: options.eventBatchMs ?? 0 })
    this.http = new HttpFront(this)
    installImplicit(this)
    this.sessions.install()
    this.tasks.install()
    this.events.install()
    installSemantics(this)
    if (options.pool) buildPool(this, options.pool)
  }

  // -- pool ---------------------------------------------------------------------------------------------------------

  /** The pool ref (the first pool row). */
  get pool(): string {
    const ref = this.poolRef()
    if (!ref) throw new Error('xapi-sim: the database has no pool yet (build one with buildPool or a scenario)')
    return ref
  }

  private cachedPool: string | undefined
  private poolRef(): string | undefined {
    const c = this.cachedPool
    if (c !== undefined && this.db.has('pool', c)) return c
    this.cachedPool = this.db.table('pool').keys().next().value
    return this.cachedPool
  }

  /** The master's host ref ('' before a pool exists). */
  get master(): string {
    const p = this.poolRef()
    return p ? (this.db.get(p)!.master as string) : ''
  }

  /** The master's address (what HOST_IS_SLAVE reports). */
  get masterAddress(): string {
    const m = this.master
    return m && this.db.has('host', m) ? (this.db.get(m)!.address as string) : ''
  }

  /** Throws HOST_IS_SLAVE [master address] when a request reached a member without a pool session (§5). */
  assertMaster(host: string, session: Session | undefined): void {
    if (host === '' || host === this.master) return
    if (session?.pool) return
    throw new XapiError('HOST_IS_SLAVE', this.masterAddress)
  }

  /** The next domain id (dom0 is 0; guests count up, as on a host). */
  nextDomid(_host?: string): number {
    return ++this.domid
  }

  // -- users --------------------------------------------------------------------------------------------------------

  authenticate(user: string, password: string): boolean {
    const p = this.users.get(user)
    return p !== undefined && p === password
  }

  setPassword(user: string, password: string): void {
    this.users.set(user, password)
  }

  /** A session for in-process use (no credentials checked). */
  login(originator = 'xapi-sim'): string {
    return this.sessions.create('root', originator, this.master)
  }

  /** Calls a message in-process, as if it came over the wire to the master (or `host`). */
  async call(method: string, params: unknown[], host = this.master): Promise<CallOutcome> {
    return this.messages.call(method, params, host, 'internal')
  }

  /** Like call() but returns the value or throws the XapiError. */
  async callOrThrow(method: string, ...params: unknown[]): Promise<unknown> {
    const o = await this.call(method, params)
    if (!o.ok) throw new XapiError(o.errorDescription[0], ...o.errorDescription.slice(1))
    return o.value
  }

  // -- network ------------------------------------------------------------------------------------------------------

  /**
   * Serves the pool: the master on `host` (default its address) and, unless `members: false`, every other host on its
   * own 127.x address with the same port.
   */
  async listen(opts: ListenOptions = {}): Promise<Listening> {
    if (this.listening) throw new Error('xapi-sim: already listening')
    const master = this.master
    const masterAddr = opts.host ?? (this.masterAddress || '127.0.0.1')
    const list: { address: string; host: string }[] = [{ address: masterAddr, host: master }]
    if (opts.members !== false) {
      for (const [ref, rec] of this.db.all('host')) {
        if (ref === master) continue
        const a = rec.address as string
        if (/^127\.\d+\.\d+\.\d+$/.test(a) && a !== masterAddr) list.push({ address: a, host: ref })
      }
    }
    const port = await this.http.listen(list, opts.port ?? 0)
    const shown = masterAddr === '0.0.0.0' || masterAddr === '::' ? '127.0.0.1' : masterAddr
    this.listening = { url: `http://${shown}:${port}`, port, addresses: new Map(list.map((l) => [l.host, l.address])) }
    simulatorsByAddress.set(masterAddr, this)
    return this.listening
  }

  /**
   * pool.join between two simulators of one process: `host` moves into `master`'s database and this simulator's
   * addresses are then answered by `master` as that member.
   */
  joinPool(master: Simulator, host: string): void {
    copyHost(this, master, host)
    this.joinedTo = { sim: master, host }
  }

  /** The listening URL (after listen()). */
  get url(): string {
    if (!this.listening) throw new Error('xapi-sim: not listening')
    return this.listening.url
  }

  async close(): Promise<void> {
    for (const [a, s] of simulatorsByAddress) if (s === this) simulatorsByAddress.delete(a)
    this.sessions.close()
    this.events.close()
    await this.http.close()
    this.listening = undefined
  }
}

/** Creates a simulator, building `options.pool` when given. */
export function createSimulator(options: SimulatorOptions = {}): Simulator {
  return new Simulator(options)
}
