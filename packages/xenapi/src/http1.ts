/**
 * The RPC connection pool: HTTP/1.1 keep-alive sockets (node:net, node:tls) to one pool-master origin, one call per
 * socket at a time, for XenAPI's small POSTs.
 *
 * Why not undici here: a sequential XenAPI call spends most of its client time in the HTTP layer, and undici's
 * general-purpose request machinery (dispatcher chain, llhttp, handler objects) costs about twice the CPU of a plain
 * socket write and a Content-Length read per call — `node bench/xenapi-client.mjs --floor` prints both floors. This
 * pool does only what an RPC needs: one write per call (head and body together), the answer read by ResponseParser
 * (Content-Length, chunked, or to the close), sockets kept alive and reused most-recently-used first, idle sockets
 * unref'd and closed after `keepAliveTimeout` (or a second before the server's `Keep-Alive: timeout=` hint), and a
 * per-call deadline and abort signal. Disk streaming (streaming.ts) keeps undici, whose stream handling it needs.
 *
 * Errors carry a `code`: the socket's own (ECONNREFUSED, ECONNRESET, EPIPE …), ERR_XENAPI_SOCKET_CLOSED for a
 * connection that closed before the whole answer, ERR_XENAPI_HTTP_PROTOCOL for an answer that cannot be read,
 * ERR_XENAPI_HTTP_TIMEOUT for a call past its deadline. The session layer decides from the code what to retry.
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from './errors.js'
import { pinMismatch, tlsChoice, type TlsOptions } from './http.js'
import { Http1ProtocolError, ResponseParser } from './http1-parser.js'

export { Http1ProtocolError }

export interface Http1Answer {
  status: number
  contentType: string
  body: string
}

export interface Http1PoolOptions {
  tls?: TlsOptions
  /** Idle keep-alive sockets are closed after this many ms (default 30 s). */
  keepAliveTimeout?: number
  /** Upper bound on sockets (default: unlimited; the session layer bounds calls in flight). */
  connections?: number | null
  /** Largest answer head accepted, in bytes (default 64 KiB). */
  maxHeaderSize?: number
}

const MAX_TIMER_MS = 2 ** 31 - 1

/** A connection that closed (or was closed) before the whole answer arrived. */
export class SocketClosedError extends Error {
  override readonly name = 'SocketClosedError'
  readonly code = 'ERR_XENAPI_SOCKET_CLOSED'
}

/** The call's deadline passed; its socket was closed (the call may still run on the server). */
export class Http1TimeoutError extends Error {
  override readonly name = 'Http1TimeoutError'
  readonly code = 'ERR_XENAPI_HTTP_TIMEOUT'
}

/** One request and the promise waiting for its answer. */
class Exchange {
  timer: NodeJS.Timeout | undefined
  onAbort: (() => void) | undefined
  conn: Http1Connection | undefined
  settled = false

  constructor(
    readonly request: string,
    readonly signal: AbortSignal | undefined,
    private readonly resolveFn: (a: Http1Answer) => void,
    private readonly rejectFn: (e: unknown) => void,
  ) {}

  resolve(a: Http1Answer): void {
    if (this.settle()) this.resolveFn(a)
  }
  reject(e: unknown): void {
    if (this.settle()) this.rejectFn(e)
  }
  private settle(): boolean {
    if (this.settled) return false
    this.settled = true
    if (this.timer) clearTimeout(this.timer)
    if (this.onAbort) this.signal!.removeEventListener('abort', this.onAbort)
    return true
  }
}

class Http1Connection {
  exchange: Exchange | undefined
  /** Connected (and, over TLS, the certificate accepted): requests may be written. */
  private ready = false
  private error: Error | undefined
  private readonly parser: ResponseParser
  private idleTimer: NodeJS.Timeout | undefined
  private idleMs = 0
  private unrefd = false
  private gone = false

  constructor(
    private readonly pool: Http1Pool,
    readonly socket: net.Socket,
    maxHeaderSize: number,
  ) {
    this.parser = new ResponseParser(maxHeaderSize)
    socket.on('data', (d: Buffer) => this.onData(d))
    socket.on('end', () => this.onEnd())
    socket.on('error', (e) => {
      this.error ??= e
    })
    socket.on('close', () => this.onClose())
  }

  /** Connected; `verify` may refuse the peer (a pinned fingerprint) before anything is written. */
  onReady(verify?: () => Error | undefined): void {
    const refused = verify?.()
    if (refused) {
      this.fail(refused)
      return
    }
    this.ready = true
    if (this.exchange) this.socket.write(this.exchange.request)
  }

  /** Resolves once the socket's 'close' has been handled (and the pool has forgotten this connection). */
  whenClosed(): Promise<void> {
    if (this.gone) return Promise.resolve()
    return new Promise<void>((r) => this.socket.once('close', () => r()))
  }

  get usable(): boolean {
    return !this.socket.destroyed && this.socket.readable
  }

  send(x: Exchange): void {
    this.exchange = x
    x.conn = this
    if (this.unrefd) {
      this.unrefd = false
      this.socket.ref()
    }
    if (this.ready) this.socket.write(x.request)
  }

  /** Closes the socket; the exchange on it (if any) fails with `e`. */
  fail(e: Error): void {
    this.error ??= e
    this.socket.destroy()
  }

  /** Waits unused until the next call, for at most `ms` (the idle timer only runs while idle). */
  idle(ms: number): void {
    this.unrefd = true
    this.socket.unref()
    if (this.idleTimer && ms === this.idleMs) {
      this.idleTimer.refresh()
    } else {
      if (this.idleTimer) clearTimeout(this.idleTimer)
      this.idleMs = ms
      this.idleTimer = setTimeout(() => {
        if (!this.exchange) this.socket.destroy()
      }, ms).unref()
    }
  }

  private onData(d: Buffer): void {
    const x = this.exchange
    if (!x) {
      // Bytes nobody asked for: the server is out of step with us; this socket cannot be trusted.
      this.fail(new Http1ProtocolError(`${this.pool.origin} sent data outside an answer`))
      return
    }
    let complete: boolean
    try {
      complete = this.parser.feed(d)
    } catch (e) {
      this.fail(e as Error)
      return
    }
    if (complete) this.complete(x)
  }

  private onEnd(): void {
    const x = this.exchange
    if (x && this.parser.end()) this.complete(x)
    this.socket.end() // the server is done with this socket; so are we
  }

  private complete(x: Exchange): void {
    const p = this.parser
    const answer: Http1Answer = { status: p.status, contentType: p.contentType, body: p.body() }
    const reusable = p.keepAlive && !p.trailingGarbage && this.usable
    const hint = p.keepAliveHintMs
    p.reset()
    this.exchange = undefined
    x.conn = undefined
    if (reusable) {
      this.pool.release(this, hint)
    } else {
      this.socket.destroy()
      this.pool.remove(this)
    }
    x.resolve(answer)
  }

  private onClose(): void {
    this.gone = true
    if (this.idleTimer) clearTimeout(this.idleTimer)
    const x = this.exchange
    this.exchange = undefined
    if (x) {
      x.conn = undefined
      const origin = this.pool.origin
      const e =
        this.error ??
        new SocketClosedError(
          this.parser.started
            ? `${origin} closed the connection in the middle of an answer`
            : `${origin} closed the connection before answering`,
        )
      x.reject(e)
    }
    this.pool.remove(this) // a no-op when complete() already removed it
  }
}

/** Keep-alive HTTP/1.1 connections to one origin; see the module comment. */
export class Http1Pool {
  readonly origin: string
  private readonly host: string
  private readonly port: number
  private readonly https: boolean
  private readonly hostHeader: string
  private readonly idle: Http1Connection[] = []
  private readonly queue: Exchange[] = []
  private readonly all = new Set<Http1Connection>()
  private readonly maxConnections: number
  private readonly keepAliveMs: number
  private readonly maxHeaderSize: number
  private destroyed = false
  private closing = false
  private drained: (() => void) | undefined
  private readonly pinned: string | undefined
  private readonly tlsOptions: tls.ConnectionOptions | undefined

  constructor(origin: string, options: Http1PoolOptions, logger: Logger) {
    const url = new URL(origin)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`url: expected http:// or https://, got ${url.protocol} in ${origin}`)
    }
    this.origin = url.origin
    this.https = url.protocol === 'https:'
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
    this.port = Number(url.port || (this.https ? 443 : 80))
    this.hostHeader = url.host
    this.maxConnections = options.connections ?? Infinity
    this.keepAliveMs = options.keepAliveTimeout ?? 30_000
    this.maxHeaderSize = options.maxHeaderSize ?? 64 * 1024
    if (this.https) {
      // A pinned certificate: a fresh handshake every connection (node:tls resumes no session it is not given,
      // and a resumed session would present no certificate to check).
      const choice = tlsChoice(url.host, options.tls ?? {}, logger)
      this.tlsOptions = choice.options
      this.pinned = choice.pin
    }
  }

  /**
   * POSTs `body` to `path`; resolves with the answer whatever its status, rejects on connection failures. `timeout`
   * is the call's deadline in ms (0 or Infinity: none).
   */
  post(path: string, contentType: string, body: string, timeout: number, signal?: AbortSignal): Promise<Http1Answer> {
    if (this.destroyed || this.closing) {
      return Promise.reject(new SocketClosedError(`connection pool to ${this.origin} is closed`))
    }
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'))
    const request =
      `POST ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    return new Promise<Http1Answer>((resolve, reject) => {
      const x = new Exchange(request, signal, resolve, reject)
      // 0 or an infinite timeout: no deadline (setTimeout would turn anything past 2^31-1 ms into 1 ms).
      if (timeout > 0 && timeout <= MAX_TIMER_MS) {
        x.timer = setTimeout(() => this.abandon(x, new Http1TimeoutError(`no answer within ${timeout} ms`)), timeout)
      }
      if (signal) {
        x.onAbort = () => this.abandon(x, signal.reason ?? new Error('aborted'))
        signal.addEventListener('abort', x.onAbort, { once: true })
      }
      this.dispatch(x)
    })
  }

  /** Closes every socket; calls in flight fail with SocketClosedError. */
  async destroy(): Promise<void> {
    this.destroyed = true
    const closing = new SocketClosedError(`connection pool to ${this.origin} was closed`)
    for (const x of this.queue.splice(0)) x.reject(closing)
    const waits: Promise<void>[] = []
    for (const c of this.all) {
      waits.push(c.whenClosed())
      c.fail(closing)
    }
    this.idle.length = 0
    await Promise.all(waits)
  }

  /** Takes no new calls, lets the calls in flight finish, then closes the sockets. */
  async close(): Promise<void> {
    if (this.destroyed) return
    this.closing = true
    if (!this.busy()) return this.destroy()
    await new Promise<void>((resolve) => (this.drained = resolve))
    await this.destroy()
  }

  private busy(): boolean {
    if (this.queue.length > 0) return true
    for (const c of this.all) if (c.exchange) return true
    return false
  }

  private checkDrained(): void {
    if (this.drained && !this.busy()) {
      const done = this.drained
      this.drained = undefined
      done()
    }
  }

  /** Open sockets (for tests and diagnostics). */
  get connections(): number {
    return this.all.size
  }

  private dispatch(x: Exchange): void {
    let c = this.idle.pop()
    while (c && !c.usable) c = this.idle.pop()
    if (c) return c.send(x)
    if (this.all.size < this.maxConnections) return this.connect().send(x)
    this.queue.push(x)
  }

  /** A call gave up (deadline or abort): its socket cannot carry another answer, so it is closed. */
  private abandon(x: Exchange, e: Error): void {
    if (x.settled) return
    const c = x.conn
    if (c) {
      c.exchange = undefined
      c.fail(e)
    } else {
      const i = this.queue.indexOf(x)
      if (i >= 0) this.queue.splice(i, 1)
    }
    x.reject(e)
    this.checkDrained()
  }

  /** Called by a connection after a complete answer it may be reused after. */
  release(c: Http1Connection, hintMs: number | undefined): void {
    if (this.destroyed) {
      c.fail(new SocketClosedError('pool closed'))
      return
    }
    const next = this.queue.shift()
    if (next) return c.send(next)
    if (this.closing) {
      c.fail(new SocketClosedError('pool closed'))
      this.checkDrained()
      return
    }
    // The server's own idle limit, less a second for the request that might cross its close on the wire.
    const ms = hintMs === undefined ? this.keepAliveMs : Math.min(this.keepAliveMs, hintMs - 1_000)
    if (ms <= 0) {
      c.fail(new SocketClosedError('keep-alive too short to reuse'))
      return
    }
    c.idle(ms)
    this.idle.push(c)
  }

  /** Called when a connection closes: forgets it and lets a queued call open a new one. */
  remove(c: Http1Connection): void {
    if (!this.all.delete(c)) return
    const i = this.idle.indexOf(c)
    if (i >= 0) this.idle.splice(i, 1)
    const next = this.queue.shift()
    if (next && !this.destroyed) this.connect().send(next)
    this.checkDrained()
  }

  private connect(): Http1Connection {
    let c: Http1Connection
    if (this.https) {
      const socket = tls.connect({
        host: this.host,
        port: this.port,
        ...(net.isIP(this.host) ? {} : { servername: this.host }),
        ALPNProtocols: ['http/1.1'],
        ...this.tlsOptions,
      })
      socket.setNoDelay(true)
      socket.setKeepAlive(true, 60_000)
      c = new Http1Connection(this, socket, this.maxHeaderSize)
      socket.once('secureConnect', () => c.onReady(() => this.checkPin(socket)))
    } else {
      const socket = net.connect({ host: this.host, port: this.port, noDelay: true, keepAlive: true })
      c = new Http1Connection(this, socket, this.maxHeaderSize)
      socket.once('connect', () => c.onReady())
    }
    this.all.add(c)
    return c
  }

  private checkPin(socket: tls.TLSSocket): Error | undefined {
    return this.pinned === undefined ? undefined : pinMismatch(this.hostHeader, this.pinned, socket)
  }
}
