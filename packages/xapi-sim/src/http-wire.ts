/**
 * A lean HTTP/1.1 reader for the XAPI port's common case: keep-alive `POST` requests with a `Content-Length` body
 * (every RPC a XenAPI client sends), pipelined or not. node:http costs ~70 µs of CPU per request on this machine,
 * ten times the simulator's own work for a `VM.get_record`; this reader answers such requests for a few µs.
 *
 * It is deliberately narrow: a request it does not fully recognise — any other method, HTTP/1.0, a missing Host,
 * chunked bodies, `Expect`, `Upgrade`, a header line it cannot validate, a duplicate Content-Length, an oversized
 * head, a path a route claims (disk handlers, the admin endpoint), active fault middleware — makes it hand the
 * connection, with the bytes it has not consumed, to node:http for the rest of the connection's life. So chunked
 * uploads, 100-continue, 400/431 answers for bad requests and every GET/PUT handler keep node:http's exact
 * behaviour, and this reader never has to be right about anything unusual.
 */
import type { Socket } from 'node:net'

/**
 * A response body as bytes between two short texts: a record's cached encoding inside its envelope, written without
 * being turned into text and back.
 */
export interface EncodedBody {
  before: string
  bytes: Buffer
  after: string
}

/** Writes a response: status, content type and the complete body. */
export type Reply = (status: number, contentType: string, body: string | EncodedBody) => void

/** What the reader asks of the HTTP front for each request. */
export interface RpcEndpoint {
  /** True when a POST to `path` is a plain RPC this endpoint answers (no route, no middleware, not joined away). */
  claimsRpc(path: string): boolean
  /** Answers an RPC body: JSON-RPC when `json`, else XML-RPC. Must call `reply` exactly once. */
  answerRpc(body: string, host: string, json: boolean, reply: Reply): void
}

/** node:http's default limit for the request line plus headers (--max-http-header-size). */
export const MAX_HEAD_BYTES = 16 * 1024
/** More header lines than this: let node:http judge the request. */
const MAX_HEADER_LINES = 100
/** Idle keep-alive connections are closed after this long, as node:http's keepAliveTimeout (65 s) does. */
export const KEEP_ALIVE_MS = 65_000

const CRLFCRLF = Buffer.from('\r\n\r\n')
const REQUEST_LINE = /^POST (\/[!-~]*) HTTP\/1\.1$/
// A field line llhttp accepts in strict mode: a token, a colon, then visible characters, spaces, tabs or obs-text.
const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t ]*([\t \x21-\x7e\x80-\xff]*?)[\t ]*$/
const DIGITS = /^\d{1,15}$/

const REASONS: Record<number, string> = { 200: 'OK', 500: 'Internal Server Error' }

/** A parsed request head the fast path serves. */
interface Head {
  path: string
  contentLength: number
  close: boolean
}

/** A parsed head as a connection keeps it: never changed, so an identical next head reuses it. */
interface KnownHead extends Head {
  /** The path without its query string (what routes and the JSON-RPC endpoint are matched on). */
  route: string
}

/**
 * Parses the head (request line and fields, without the final CRLFCRLF). Undefined when the request is anything
 * but a plain HTTP/1.1 POST with a Content-Length this reader serves.
 */
export function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n')
  if (lines.length > MAX_HEADER_LINES) return undefined
  const rl = REQUEST_LINE.exec(lines[0])
  if (!rl) return undefined
  let contentLength = -1
  let host = false
  let close = false
  for (let i = 1; i < lines.length; i++) {
    const m = FIELD_LINE.exec(lines[i])
    if (!m) return undefined
    const name = m[1]
    // Only the fields that change framing or connection handling matter; compare cheaply by length first.
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          if (host) return undefined
          host = true
        }
        break
      case 6:
        if (name.toLowerCase() === 'expect') return undefined
        break
      case 7:
        if (name.toLowerCase() === 'upgrade') return undefined
        break
      case 10:
        if (name.toLowerCase() === 'connection') {
          const v = m[2].toLowerCase()
          if (v === 'close') close = true
          else if (v !== 'keep-alive') return undefined // lists, upgrade, …: node:http's business
        }
        break
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (contentLength >= 0 || !DIGITS.test(m[2])) return undefined
          contentLength = Number(m[2])
        }
        break
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return undefined
        break
    }
  }
  if (!host || contentLength < 0) return undefined
  return { path: rl[1], contentLength, close }
}

let dateText = ''
let dateAt = 0
/** The Date header value, refreshed at most once a second (as node:http does). */
function httpDate(): string {
  const now = Date.now()
  if (now - dateAt >= 1000 || dateText === '') {
    dateAt = now - (now % 1000)
    dateText = new Date(dateAt).toUTCString()
  }
  return dateText
}

/** The response head node:http would write for the same writeHead (same fields, same order). */
function responseHead(status: number, contentType: string, contentLength: number, close: boolean): string {
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\ncontent-type: ${contentType}\r\n` +
    `access-control-allow-origin: *\r\ncontent-length: ${contentLength}\r\nDate: ${httpDate()}\r\n` +
    (close
      ? 'Connection: close\r\n\r\n'
      : `Connection: keep-alive\r\nKeep-Alive: timeout=${KEEP_ALIVE_MS / 1000}\r\n\r\n`)
  )
}

/** The response bytes node:http would write for the same writeHead/end (same fields, same order). */
export function responseText(status: number, contentType: string, body: string, close: boolean): string {
  return responseHead(status, contentType, Buffer.byteLength(body), close) + body
}

/**
 * Answers are cut from 64 KiB slabs: Buffer.allocUnsafe's 8 KiB pool holds two or three answers, and making a pool
 * costs as much as the rest of building an answer. A slab is released once the answers cut from it are written.
 */
const SLAB_BYTES = 64 * 1024
let slab = Buffer.allocUnsafeSlow(0)
let slabAt = 0

function answerBuffer(n: number): Buffer {
  if (n > SLAB_BYTES / 4) return Buffer.allocUnsafeSlow(n)
  if (slabAt + n > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
    slabAt = 0
  }
  const b = slab.subarray(slabAt, slabAt + n)
  slabAt += (n + 7) & ~7 // aligned, as Buffer's pool does
  return b
}

/** responseText for an encoded body, as one buffer (head and texts encoded, the bytes copied). */
export function responseBytes(status: number, contentType: string, body: EncodedBody, close: boolean): Buffer {
  const beforeBytes = Buffer.byteLength(body.before)
  const length = beforeBytes + body.bytes.length + Buffer.byteLength(body.after)
  const head = responseHead(status, contentType, length, close)
  const out = answerBuffer(head.length + length)
  // The head is ASCII; so is `before` when its UTF-8 length is its length (every envelope opening is): one write.
  let at =
    beforeBytes === body.before.length
      ? out.write(head + body.before, 0, 'latin1')
      : out.write(head, 0, 'latin1') + out.write(body.before, head.length, 'utf8')
  out.set(body.bytes, at)
  at += body.bytes.length
  if (body.after.length > 0) out.write(body.after, at, 'utf8')
  return out
}

/** The bytes of a body in either form (node:http's answers). */
export function bodyBytes(body: string | EncodedBody): string | Buffer {
  if (typeof body === 'string') return body
  const out = Buffer.allocUnsafe(Buffer.byteLength(body.before) + body.bytes.length + Buffer.byteLength(body.after))
  let at = out.write(body.before, 0, 'utf8')
  at += body.bytes.copy(out, at)
  out.write(body.after, at, 'utf8')
  return out
}

/** What the readers of one front did: requests answered themselves, connections handed to node:http. */
export interface WireStats {
  leanAnswers: number
  handedOff: number
}

/**
 * Idle keep-alive connections, swept once a second: a shared coarse clock instead of socket.setTimeout(), which
 * re-arms a timer on every read and write (a measurable part of a small RPC's cost). `idleTick` counts sweeps; a
 * connection remembers the tick of its last read or write and is closed once RpcConnection.idleTimeoutMs worth of
 * sweeps passed with nothing to answer (as node:http's keepAliveTimeout, up to a second later).
 */
const SWEEP_MS = 1000
let idleTick = 0
const live = new Set<RpcConnection>()
let sweeper: NodeJS.Timeout | undefined

function track(c: RpcConnection): void {
  live.add(c)
  if (sweeper === undefined) {
    sweeper = setInterval(sweep, SWEEP_MS)
    sweeper.unref()
  }
}

function untrack(c: RpcConnection): void {
  live.delete(c)
  if (live.size === 0 && sweeper !== undefined) {
    clearInterval(sweeper)
    sweeper = undefined
  }
}

function sweep(): void {
  idleTick++
  for (const c of live) c.checkIdle(idleTick)
}

/**
 * When answers go to several connections in turn (concurrent clients), they are written once per event-loop turn,
 * in the check phase right after the poll phase that read their requests (setImmediate), not one by one as each
 * request is read: the answers to all the requests one `epoll_wait` returned then go out back to back. A client
 * waiting for several of them is woken once for the lot instead of once per answer (on this VM, waking a process on
 * the other core is a large part of a loopback write's cost), and the clients' next requests come back together too:
 * at 32 connections this cut the server's CPU per call by about a quarter. Nothing waits longer than the rest of the
 * current turn (a pending immediate keeps libuv's poll from blocking).
 *
 * A lone client calling in sequence gains nothing from that and would pay for an immediate per call (several µs
 * here), so while consecutive answers go to the same connection they are written at once, as they are made.
 */
const queued: RpcConnection[] = []
let writeScheduled = false
/** The id of the connection the last answer went to (batching starts when answers alternate between them). */
let lastAnswered = 0
let connections = 0

function queueWrite(c: RpcConnection): void {
  queued.push(c)
  if (!writeScheduled) {
    writeScheduled = true
    setImmediate(writeQueued)
  }
}

function writeQueued(): void {
  writeScheduled = false
  // Connections queued while writing (none today: writes do not answer requests) wait for the next turn.
  const n = queued.length
  for (let i = 0; i < n; i++) queued[i].writeOut()
  queued.splice(0, n)
}

/** A response slot, so pipelined requests are answered in order even when one of them completes later. */
interface Slot {
  text: string | Buffer | undefined
  close: boolean
}

/**
 * One client connection in fast mode. Created for every accepted socket; hands itself over to node:http (through
 * `handOff`) at the first request it does not serve.
 */
export class RpcConnection {
  /**
   * A request head must be complete this long after its first byte (node:http's headersTimeout, 70 s here): the
   * idle timeout alone would let a client sending a byte a minute hold the connection for days.
   */
  static headersTimeoutMs = 70_000
  /** A request body must be complete this long after its head (node:http's requestTimeout, 300 s). */
  static requestTimeoutMs = 300_000
  /** An idle connection (no request, no answer pending) is closed after this long (node:http's keepAliveTimeout). */
  static idleTimeoutMs = KEEP_ALIVE_MS

  /** Bytes received and not yet consumed (a partial head). */
  private pending: Buffer | undefined
  /** When the partial head in `pending` began (ms, Date.now()). */
  private pendingSince = 0
  /** A parsed head waiting for its body: the chunks so far and their total length. */
  private head: KnownHead | undefined
  private bodyChunks: Buffer[] = []
  private bodyBytes = 0
  /** When the head waiting for its body was read (ms). */
  private headSince = 0
  private readonly slots: Slot[] = []
  /** Set once the connection goes to node:http, or a `Connection: close` request was read. */
  private done = false
  /** The client half-closed: end after the last answer. */
  private ended = false
  private handOffWanted = false
  /** The sweep tick of the last read or write (idle detection). */
  private seen = idleTick
  /** Answers ready and not yet written (see queueWrite): written in order, in one write, at the end of the turn. */
  private readonly out: (string | Buffer)[] = []
  /** True while this connection is in the write queue. */
  private queued = false
  private readonly id = ++connections
  /** True while a read is being handled: the answers it completes (pipelined requests) are written together. */
  private reading = false
  /** The last head read and its parse: clients send the same head again and again (only the body changes). */
  private lastHeadText = ''
  private lastHead: KnownHead | undefined

  constructor(
    private readonly socket: Socket,
    private readonly endpoint: () => RpcEndpoint,
    private readonly host: string,
    private readonly handOff: (socket: Socket) => void,
    private readonly stats: WireStats,
  ) {
    socket.setNoDelay(true)
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    track(this)
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return
    this.seen = idleTick
    this.reading = true
    try {
      this.read(chunk)
    } finally {
      this.reading = false
      if (this.out.length > 0 && !this.queued) this.release()
    }
  }

  /** Sends the collected answers on their way: now, or with this turn's other answers (see queueWrite). */
  private release(): void {
    const alone = lastAnswered === this.id || lastAnswered === 0
    lastAnswered = this.id
    if (alone) return this.writeOut()
    this.queued = true
    queueWrite(this)
  }

  /** Writes the answers collected so far, in one write (pipelined requests' answers too), without cork/uncork. */
  writeOut(): void {
    this.queued = false
    const out = this.out
    if (out.length === 0) return
    const data = out.length === 1 ? out[0] : Buffer.concat(out.map((x) => (typeof x === 'string' ? Buffer.from(x) : x)))
    out.length = 0
    if (!this.socket.destroyed) this.socket.write(data)
  }

  private read(chunk: Buffer): void {
    if (this.head) {
      if (Date.now() - this.headSince > RpcConnection.requestTimeoutMs) return void this.socket.destroy()
      this.bodyChunks.push(chunk)
      this.bodyBytes += chunk.length
      if (this.bodyBytes < this.head.contentLength) return
      chunk = this.bodyChunks.length === 1 ? this.bodyChunks[0] : Buffer.concat(this.bodyChunks)
      this.bodyChunks = []
      this.bodyBytes = 0
      const head = this.head
      this.head = undefined
      this.serve(head, chunk.toString('utf8', 0, head.contentLength))
      chunk = chunk.subarray(head.contentLength)
      if (chunk.length === 0 || this.done) return
    }
    let continued = false // chunk starts with an earlier partial head
    if (this.pending) {
      continued = true
      if (Date.now() - this.pendingSince > RpcConnection.headersTimeoutMs) return void this.socket.destroy()
      chunk = Buffer.concat([this.pending, chunk])
      this.pending = undefined
    }
    let at = 0
    while (at < chunk.length && !this.done) {
      const he = chunk.indexOf(CRLFCRLF, at)
      if (he < 0 || he - at > MAX_HEAD_BYTES) {
        if (chunk.length - at > MAX_HEAD_BYTES) return this.giveUp(chunk.subarray(at))
        if (!continued || at !== 0) this.pendingSince = Date.now()
        this.pending = chunk.subarray(at)
        return
      }
      const text = chunk.toString('latin1', at, he)
      let head: KnownHead | undefined
      if (text === this.lastHeadText) head = this.lastHead
      else {
        const h = parseHead(text)
        if (h) {
          const q = h.path.indexOf('?')
          head = { ...h, route: q < 0 ? h.path : h.path.slice(0, q) }
          this.lastHeadText = text
          this.lastHead = head
        }
      }
      if (!head || !this.endpoint().claimsRpc(head.route)) return this.giveUp(chunk.subarray(at))
      const bodyAt = he + 4
      const end = bodyAt + head.contentLength
      if (end > chunk.length) {
        // Wait for the rest of the body; keep what has arrived.
        this.head = head
        this.headSince = Date.now()
        this.bodyChunks = [chunk.subarray(bodyAt)]
        this.bodyBytes = chunk.length - bodyAt
        return
      }
      this.serve(head, chunk.toString('utf8', bodyAt, end))
      at = end
    }
  }

  private serve(head: KnownHead, body: string): void {
    const slot: Slot = { text: undefined, close: head.close }
    this.slots.push(slot)
    this.stats.leanAnswers++
    if (head.close) this.done = true // nothing after a Connection: close request is read
    this.endpoint().answerRpc(body, this.host, head.route === '/jsonrpc', (status, contentType, text) => {
      slot.text =
        typeof text === 'string'
          ? responseText(status, contentType, text, head.close)
          : responseBytes(status, contentType, text, head.close)
      this.flush()
    })
  }

  /** Sends the answers that are ready, in request order (see release and queueWrite). */
  private flush(): void {
    const s = this.socket
    while (this.slots.length > 0 && this.slots[0].text !== undefined) {
      const slot = this.slots.shift()!
      if (s.destroyed) continue
      this.seen = idleTick
      this.out.push(slot.text!)
      if (slot.close) {
        this.writeOut()
        s.end()
        return
      }
    }
    if (!this.reading && this.out.length > 0 && !this.queued) this.release()
    if (this.slots.length > 0) return
    if (this.handOffWanted) this.transfer()
    else if (this.ended && !s.destroyed) {
      this.writeOut()
      s.end()
    }
  }

  /** The request at the start of `rest` is not ours: node:http takes the connection once earlier answers are out. */
  private giveUp(rest: Buffer): void {
    this.done = true
    this.handOffWanted = true
    this.socket.pause()
    this.pending = rest
    if (this.slots.length === 0) this.transfer()
  }

  private transfer(): void {
    const s = this.socket
    this.handOffWanted = false
    this.writeOut() // answers to earlier requests go first
    s.removeListener('data', this.onData)
    s.removeListener('end', this.onEnd)
    s.removeListener('error', this.onError)
    s.removeListener('close', this.onClose)
    untrack(this)
    if (s.destroyed) return
    const rest = this.pending
    this.pending = undefined
    this.stats.handedOff++
    if (!this.ended) {
      s.pause()
      if (rest && rest.length > 0) s.unshift(rest)
      this.handOff(s)
      // node:http reads the unshifted bytes first (flushed on resume, before the next read from the handle).
      process.nextTick(() => s.resume())
    } else {
      // The client's FIN was already read (its end is emitted while paused when the stream's buffer is empty), so
      // the stream takes no bytes back: node:http gets what is held as a data event, then the end, and answers
      // before it closes (httpAllowHalfOpen on its server).
      this.handOff(s)
      process.nextTick(() => {
        if (rest && rest.length > 0) s.emit('data', rest)
        s.emit('end')
      })
    }
  }

  private readonly onEnd = (): void => {
    this.ended = true
    this.done = true
    if (this.handOffWanted) return // transfer() passes the end on
    if (this.slots.length === 0 && !this.socket.destroyed) {
      this.writeOut() // answers still queued for this turn go first
      this.socket.end()
    }
  }

  /** Called by the sweeper: idle (or a request stalled half-way) for KEEP_ALIVE_MS closes the connection. */
  checkIdle(tick: number): void {
    // An RPC still being answered (event.from blocks) keeps it open, as does an answer still draining to the client.
    // `seen` was taken some time after sweep number `seen`: only whole sweeps after it count (never early).
    if ((tick - this.seen - 1) * SWEEP_MS < RpcConnection.idleTimeoutMs) return
    if (this.slots.length === 0 && this.out.length === 0 && this.socket.writableLength === 0) this.socket.destroy()
    else this.seen = tick
  }

  private readonly onClose = (): void => {
    untrack(this)
  }

  private readonly onError = (): void => {
    this.socket.destroy()
  }
}
