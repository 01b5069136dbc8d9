/**
 * The session layer and the client's public surface.
 *
 *   API (xapi.ts, generated/)  →  session (this file)  →  transport (transport.ts: JSON-RPC, XML-RPC, auto)
 *     →  RPC connection pool (http1.ts: keep-alive HTTP/1.1 sockets)
 *   disk streaming (streaming.ts)  →  undici Pool (http.ts), made on first use
 *
 * The session layer logs in with `session.login_with_password(user, pwd, version, originator)`, prepends the
 * session to every call, bounds the calls in flight (Limiter), logs in again on SESSION_INVALID and retries,
 * follows HOST_IS_SLAVE to the master (same scheme and port), retries transport failures that are safe to retry
 * (retry.ts: which, and why), counts every retry (`retryStats()`, each one also logged as a warning), applies a
 * per-call timeout, converts results by the datamodel's result type (ints → numbers, datetimes → Date on both
 * transports) and logs out on close().
 */
import type { Pool } from 'undici'
import { fromWire, getMessage, type MessageSpec, type XapiType } from '@xenstack/xapi-wire'
import { ErrorCode, Redactor, XapiTransportError, XenAPIError, defaultLogger, type Logger } from './errors.js'
import { jsonConverter } from './convert.js'
import { createPool, swapHost, type HttpOptions, type TlsOptions } from './http.js'
import { Http1Pool } from './http1.js'
import { Limiter } from './limiter.js'
import { createTransport, type Transport, type TransportKind, type TransportOption } from './transport.js'
import {
  XapiCallOutcomeUnknownError,
  backoffDelay,
  emptyRetryStats,
  sleep,
  isRepeatable,
  transportFailureKind,
  type RetryKind,
  type RetryOptions,
  type RetryStats,
} from './retry.js'

export interface ConnectOptions {
  /** `http://host[:port]` or `https://host[:port]`; `user:password@` in the URL is taken out and used. */
  url: string
  username?: string
  password?: string
  /** Default `auto`: JSON-RPC, falling back to XML-RPC once. */
  transport?: TransportOption
  /** Default timeout of one call in ms (default 60 000). Long polls (event.from) get their own. */
  timeout?: number
  /** Calls in flight at once; the rest queue (default 16). */
  maxConcurrentCalls?: number
  tls?: TlsOptions
  logger?: Logger
  /** `originator` of the login (default `xenstack`), which XAPI uses to count sessions. */
  originator?: string
  /** API version string sent at login (XAPI ignores it; default `1.2`). */
  apiVersion?: string
  /** Pool-master redirects (HOST_IS_SLAVE) followed per call before giving up (default 3). */
  maxRedirects?: number
  /** HTTP keep-alive and socket options. */
  http?: Omit<HttpOptions, 'tls'>
  /** What is retried how often (retry.ts). */
  retry?: RetryOptions
}

export interface CallOptions {
  /** Milliseconds before the call is aborted with XapiTimeoutError (default: the connection's timeout). */
  timeout?: number
  signal?: AbortSignal
  /** Internal: long polls and streams bypass the in-flight bound so they cannot starve ordinary calls. */
  unqueued?: boolean
  /**
   * The caller knows running the call twice does no harm (a plugin function that only reads), so it is retried after
   * a connection reset like a read. Default: only reads, logins and events are (retry.ts).
   */
  idempotent?: boolean
}

/** Methods that never take a session (XAPI §4.5, §5). */
const SESSIONLESS = new Set([
  'session.login_with_password',
  'session.slave_local_login_with_password',
  'session.slave_login',
  'session.create_from_db_file',
  'system.listMethods',
  'system.methodSignature',
  'system.methodHelp',
  'system.multicall',
])

interface MethodInfo {
  takesSession: boolean
  /** Types of the parameters after the session. */
  paramTypes: (XapiType | undefined)[] | undefined
  /** `paramTypes` with the session's slot in front: what goes on the wire when the session is prepended. */
  wireTypes: (XapiType | undefined)[] | undefined
  /** Result type; undefined for unknown methods (result returned as decoded). */
  result: XapiType | undefined
  /** The in-place converter of a JSON-RPC result (convert.ts), null when the parsed JSON is already right. */
  jsonFix: ((v: unknown) => unknown) | null
  /** Safe to run twice (retry.ts `isRepeatable`), worked out once per method rather than per call. */
  repeatable: boolean
  spec?: MessageSpec
}

const methodCache = new Map<string, MethodInfo>()

function methodInfo(method: string): MethodInfo {
  let info = methodCache.get(method)
  if (info) return info
  const isAsync = method.startsWith('Async.')
  const bare = isAsync ? method.slice(6) : method
  const found = getMessage(bare)
  if (found) {
    const m = found.message
    const params = m.takesSession ? m.params.slice(1) : m.params
    const paramTypes = params.map((p) => p.type)
    // Async.* answers with a task ref, which needs no conversion.
    const result = isAsync ? undefined : m.result
    info = {
      takesSession: m.takesSession,
      paramTypes,
      wireTypes: m.takesSession ? [undefined, ...paramTypes] : paramTypes,
      result,
      jsonFix: result ? jsonConverter(result) : null,
      repeatable: isRepeatable(method),
      spec: m,
    }
  } else {
    info = {
      takesSession: !SESSIONLESS.has(bare) && !bare.startsWith('system.'),
      paramTypes: undefined,
      wireTypes: undefined,
      result: undefined,
      jsonFix: null,
      repeatable: isRepeatable(method),
    }
  }
  methodCache.set(method, info)
  return info
}

/** The task-related and other helpers get at the session layer through this narrow interface. */
export interface XapiCore {
  readonly url: string
  readonly sessionId: string | undefined
  readonly logger: Logger
  readonly redactor: Redactor
  readonly closed: AbortSignal
  callWith(method: string, params: unknown[], opts?: CallOptions): Promise<unknown>
  httpPool(): Pool
  ensureSession(): Promise<string>
  tls(): TlsOptions | undefined
}

export class XapiSession implements XapiCore {
  url: string
  sessionId: string | undefined
  readonly logger: Logger
  readonly redactor = new Redactor()
  readonly limiter: Limiter
  readonly defaultTimeout: number
  private readonly username: string
  // An ES private field: invisible to util.inspect, JSON.stringify and Object.keys (secrets never show in dumps).
  readonly #password: string
  private readonly options: ConnectOptions
  /** The RPC sockets. */
  private rpc: Http1Pool
  /** undici, for disk streaming and other HTTP handlers; made on first use. */
  private http: Pool | undefined
  private transport: Transport
  private loginPromise: Promise<string> | undefined
  private readonly closing = new AbortController()
  private closedPromise: Promise<void> | undefined
  private readonly stats: RetryStats = emptyRetryStats()
  /**
   * Whether the pool has ever answered this client. A refused connection before the first answer means a wrong
   * address or a host that is down: failing at once says so; retrying is for a pool that restarts mid-run.
   */
  private answered = false

  constructor(options: ConnectOptions) {
    const u = new URL(options.url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new Error(`url: expected http:// or https://, got ${u.protocol} in ${u.origin}`)
    }
    this.username = options.username ?? (u.username ? decodeURIComponent(u.username) : 'root')
    this.#password = options.password ?? (u.password ? decodeURIComponent(u.password) : '')
    this.redactor.add(this.#password)
    if (u.password) this.redactor.add(u.password)
    this.options = { ...options, password: undefined, url: u.origin } // no credentials kept in options
    this.url = u.origin
    this.logger = options.logger ?? defaultLogger
    this.limiter = new Limiter(options.maxConcurrentCalls ?? 16)
    this.defaultTimeout = options.timeout ?? 60_000
    this.rpc = new Http1Pool(this.url, this.poolOptions(), this.logger)
    this.transport = this.makeTransport(options.transport ?? 'auto')
  }

  get closed(): AbortSignal {
    return this.closing.signal
  }
  /** The transport in use (after `auto` has decided). */
  get transportKind(): TransportKind {
    return this.transport.kind
  }
  httpPool(): Pool {
    this.http ??= createPool(this.url, this.poolOptions(), this.logger)
    return this.http
  }
  tls(): TlsOptions | undefined {
    return this.options.tls
  }
  /** What both connection pools (RPC and streaming) are built with. */
  private poolOptions(): HttpOptions {
    return { ...this.options.http, tls: this.options.tls }
  }

  private makeTransport(kind: TransportOption): Transport {
    return createTransport(kind, this.rpc, this.url, (reason) =>
      this.logger.debug?.(`JSON-RPC not available at ${this.url}, using XML-RPC: ${this.redactor.text(reason)}`),
    )
  }

  /** Calls `method` with the session prepended (when it takes one), converting the result. */
  call(method: string, ...params: unknown[]): Promise<unknown> {
    return this.callWith(method, params)
  }

  callWith(method: string, params: unknown[], opts: CallOptions = {}): Promise<unknown> {
    if (this.closing.signal.aborted) {
      return Promise.reject(
        new XapiTransportError(`${method}: the connection to ${this.url} is closed`, method, this.url),
      )
    }
    const info = methodInfo(method)
    if (opts.unqueued) return this.invoke(method, params, opts, info)
    return this.limiter.run(() => this.invoke(method, params, opts, info), opts.signal)
  }

  private async invoke(method: string, params: unknown[], opts: CallOptions, info: MethodInfo): Promise<unknown> {
    const timeout = opts.timeout ?? this.defaultTimeout
    const maxRedirects = this.options.maxRedirects ?? 3
    const policy = this.options.retry ?? {}
    const repeatable = opts.idempotent === true || info.repeatable
    let relogins = 0
    let redirects = 0
    let transportRetries = 0
    const started = performance.now()
    if (this.logger.debug) this.logger.debug(`call ${method} ${JSON.stringify(this.redactor.params(method, params))}`)
    try {
      for (;;) {
        // No await when the session is there already (every call but the first): an await costs a promise hop.
        const session = info.takesSession ? (this.sessionId ?? (await this.ensureSession())) : undefined
        const transport = this.transport
        try {
          const raw = await transport.call({
            method,
            params: session === undefined ? params : [session, ...params],
            paramTypes: session === undefined ? info.paramTypes : info.wireTypes,
            timeout,
            signal: opts.signal,
          })
          this.answered = true
          if (!info.result) return raw
          if (transport.kind === 'json-rpc') return info.jsonFix ? info.jsonFix(raw) : raw
          return fromWire(raw, info.result)
        } catch (e) {
          if (e instanceof XenAPIError) {
            this.answered = true
            if (e.code === ErrorCode.SESSION_INVALID && session !== undefined) {
              if (relogins++ < (policy.sessionRetries ?? 3)) {
                this.retried('SESSION_INVALID', method, `session expired, logging in again (${relogins})`)
                await this.relogin(session)
                continue
              }
              this.stats.gaveUp.SESSION_INVALID++
            }
            if (e.code === ErrorCode.HOST_IS_SLAVE && e.params[0]) {
              if (redirects++ < maxRedirects) {
                this.retried('HOST_IS_SLAVE', method, `the pool master is now ${e.params[0]}`)
                await this.redirect(e.params[0], transport, redirects, policy)
                continue
              }
              this.stats.gaveUp.HOST_IS_SLAVE++
            }
            throw this.redactXenAPIError(e)
          }
          const kind = transportFailureKind(e)
          if (kind === undefined || opts.signal?.aborted || this.closing.signal.aborted) throw this.redactor.error(e)
          if (kind === 'refused' && !this.answered) {
            this.stats.gaveUp.refused++
            throw this.redactor.error(e)
          }
          if (kind === 'reset' && !repeatable) {
            this.stats.gaveUp.reset++
            throw this.redactor.error(new XapiCallOutcomeUnknownError(method, this.url, e))
          }
          if (transportRetries++ >= (policy.transportRetries ?? 4)) {
            this.stats.gaveUp[kind]++
            throw this.redactor.error(e)
          }
          const delay = backoffDelay(transportRetries, policy.backoffMs ?? 100)
          this.retried(kind, method, `${(e as Error).message}; retry ${transportRetries} in ${delay} ms`)
          await sleep(delay, opts.signal)
        }
      }
    } finally {
      if (!opts.unqueued && performance.now() - started >= (policy.slowCallMs ?? 1_500)) this.stats.slowCalls++
    }
  }

  /** Counts a retry and says so (an operator wants to know that the pool is flaky, and why the run took longer). */
  private retried(kind: RetryKind, method: string, detail: string): void {
    this.stats.retries[kind]++
    this.logger.warn(this.redactor.text(`${method} on ${this.url}: ${kind}: ${detail}`))
  }

  /** Retries per failure kind since the connection was made, the calls that gave up, and the slow calls. */
  retryStats(): RetryStats {
    return {
      retries: { ...this.stats.retries },
      gaveUp: { ...this.stats.gaveUp },
      slowCalls: this.stats.slowCalls,
    }
  }

  private redactXenAPIError(e: XenAPIError): XenAPIError {
    const params = e.params.map((p) => this.redactor.text(p))
    if (params.every((p, i) => p === e.params[i])) return e
    return new XenAPIError(e.code, params, e.method, e.url)
  }

  async ensureSession(): Promise<string> {
    if (this.sessionId !== undefined) return this.sessionId
    if (!this.loginPromise) {
      this.loginPromise = this.login().finally(() => {
        this.loginPromise = undefined
      })
    }
    return this.loginPromise
  }

  private async relogin(stale: string): Promise<void> {
    if (this.sessionId === stale) this.sessionId = undefined
    await this.ensureSession()
  }

  /**
   * Switches to the pool master named by HOST_IS_SLAVE, keeping scheme and port. A host naming itself as the master
   * (a pool in the middle of a master change) is asked again after a backoff. The session is kept: sessions live in
   * the pool's database, which moves with the master (if the new master does not know it, SESSION_INVALID logs in
   * again); logging in anew would leave the old session behind and fail calls still in flight with it.
   */
  private async redirect(master: string, from: Transport, attempt: number, policy: RetryOptions): Promise<void> {
    if (this.transport !== from) return // another call already moved us
    const next = swapHost(this.url, master)
    if (next === this.url) return sleep(backoffDelay(attempt, policy.backoffMs ?? 100))
    this.logger.debug?.(`${this.url} is a pool member; the master is ${next}`)
    const oldRpc = this.rpc
    const oldHttp = this.http
    this.url = next
    this.rpc = new Http1Pool(next, this.poolOptions(), this.logger)
    this.http = undefined
    // `auto` that has not fallen back yet may still fall back on the master.
    this.transport = this.makeTransport(
      (this.options.transport ?? 'auto') === 'auto' && from.kind === 'json-rpc' ? 'auto' : from.kind,
    )
    void oldRpc.close().catch(() => undefined)
    void oldHttp?.close().catch(() => undefined)
  }

  private async login(): Promise<string> {
    const method = 'session.login_with_password'
    const params = [
      this.username,
      this.#password,
      this.options.apiVersion ?? '1.2',
      this.options.originator ?? 'xenstack',
    ]
    const maxRedirects = this.options.maxRedirects ?? 3
    const policy = this.options.retry ?? {}
    let transportRetries = 0
    for (let redirects = 0; ;) {
      const transport = this.transport
      try {
        const ref = await transport.call({ method, params, timeout: this.defaultTimeout })
        this.answered = true
        if (typeof ref !== 'string' || !ref) {
          throw new XapiTransportError(
            `${method}: expected a session ref from ${this.url}, got ${typeof ref}`,
            method,
            this.url,
          )
        }
        this.sessionId = ref
        return ref
      } catch (e) {
        if (e instanceof XenAPIError) {
          this.answered = true
          if (e.code === ErrorCode.HOST_IS_SLAVE && e.params[0] && redirects++ < maxRedirects) {
            this.retried('HOST_IS_SLAVE', method, `the pool master is now ${e.params[0]}`)
            await this.redirect(e.params[0], transport, redirects, policy)
            continue
          }
          throw this.redactXenAPIError(e)
        }
        // A login is safe to repeat (at worst XAPI makes a session nobody uses).
        const kind = transportFailureKind(e)
        const retryable = kind !== undefined && !(kind === 'refused' && !this.answered)
        if (retryable && !this.closing.signal.aborted && transportRetries++ < (policy.transportRetries ?? 4)) {
          const delay = backoffDelay(transportRetries, policy.backoffMs ?? 100)
          this.retried(kind, method, `${(e as Error).message}; retry ${transportRetries} in ${delay} ms`)
          await sleep(delay)
          continue
        }
        if (kind !== undefined) this.stats.gaveUp[kind]++
        throw this.redactor.error(e)
      }
    }
  }

  /** Logs the session out (errors ignored: the session may already be gone) and closes every socket. */
  close(): Promise<void> {
    if (this.closedPromise) return this.closedPromise
    this.closedPromise = (async () => {
      const session = this.sessionId
      this.closing.abort(new XapiTransportError(`connection to ${this.url} closed`, 'close', this.url))
      if (session !== undefined) {
        try {
          await this.transport.call({ method: 'session.logout', params: [session], timeout: 5_000 })
        } catch (e) {
          this.logger.debug?.(`session.logout on ${this.url} failed: ${this.redactor.text(String(e))}`)
        }
        this.sessionId = undefined
      }
      await Promise.all([this.rpc.destroy(), this.http?.destroy().catch(() => undefined)])
    })()
    return this.closedPromise
  }
}
