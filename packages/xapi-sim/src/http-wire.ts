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

/** Writes a response: status, content type and the complete body. */
export type Reply = (status: number, contentType: string, body: string) => void

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

/** The response bytes node:http would write for the same writeHead/end (same fields, same order). */
export function responseText(status: number, contentType: string, body: string, close: boolean): string {
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\ncontent-type: ${contentType}\r\n` +
    `access-control-allow-origin: *\r\ncontent-length: ${Buffer.byteLength(body)}\r\nDate: ${httpDate()}\r\n` +
    (close
      ? 'Connection: close\r\n\r\n'
      : `Connection: keep-alive\r\nKeep-Alive: timeout=${KEEP_ALIVE_MS / 1000}\r\n\r\n`) +
    body
  )
}

/** What the readers of one front did: requests answered themselves, connections handed to node:http. */
export interface WireStats {
  leanAnswers: number
  handedOff: number
}

/** A response slot, so pipelined requests are answered in order even when one of them completes later. */
interface Slot {
  text: string | undefined
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

  /** Bytes received and not yet consumed (a partial head). */
  private pending: Buffer | undefined
  /** When the partial head in `pending` began (ms, Date.now()). */
  private pendingSince = 0
  /** A parsed head waiting for its body: the chunks so far and their total length. */
  private head: Head | undefined
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

  constructor(
    private readonly socket: Socket,
    private readonly endpoint: () => RpcEndpoint,
    private readonly host: string,
    private readonly handOff: (socket: Socket) => void,
    private readonly stats: WireStats,
  ) {
    socket.setNoDelay(true)
    socket.setTimeout(KEEP_ALIVE_MS)
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('timeout', this.onTimeout)
    socket.on('error', this.onError)
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return
    this.socket.cork()
    try {
      this.read(chunk)
    } finally {
      this.socket.uncork()
    }
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
      const head = parseHead(chunk.toString('latin1', at, he))
      if (!head || !this.endpoint().claimsRpc(head.path.split('?', 1)[0])) return this.giveUp(chunk.subarray(at))
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

  private serve(head: Head, body: string): void {
    const slot: Slot = { text: undefined, close: head.close }
    this.slots.push(slot)
    this.stats.leanAnswers++
    if (head.close) this.done = true // nothing after a Connection: close request is read
    const path = head.path.split('?', 1)[0]
    this.endpoint().answerRpc(body, this.host, path === '/jsonrpc', (status, contentType, text) => {
      slot.text = responseText(status, contentType, text, head.close)
      this.flush()
    })
  }

  /** Writes the answers that are ready, in request order. */
  private flush(): void {
    const s = this.socket
    while (this.slots.length > 0 && this.slots[0].text !== undefined) {
      const slot = this.slots.shift()!
      if (s.destroyed) continue
      s.write(slot.text!)
      if (slot.close) {
        s.end()
        return
      }
    }
    if (this.slots.length > 0) return
    if (this.handOffWanted) this.transfer()
    else if (this.ended && !s.destroyed) s.end()
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
    s.removeListener('data', this.onData)
    s.removeListener('end', this.onEnd)
    s.removeListener('timeout', this.onTimeout)
    s.removeListener('error', this.onError)
    s.setTimeout(0)
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
    if (this.slots.length === 0 && !this.socket.destroyed) this.socket.end()
  }

  private readonly onTimeout = (): void => {
    // Idle (or a request stalled half-way): close. An RPC still being answered (event.from blocks) keeps it open.
    if (this.slots.length === 0) this.socket.destroy()
  }

  private readonly onError = (): void => {
    this.socket.destroy()
  }
}
