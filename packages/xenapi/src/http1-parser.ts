/**
 * An incremental HTTP/1.1 response reader (RFC 9112) for the RPC connection pool: status line, headers, and the
 * body framed by Content-Length, chunked transfer coding (extensions and trailers read and dropped) or the end of
 * the connection. Interim 1xx answers are skipped. It keeps only what a XenAPI call needs from the head — status,
 * content type and whether the connection may be reused — and rejects what it cannot frame safely (conflicting
 * lengths, bad chunk sizes, oversized heads) with an Http1ProtocolError instead of guessing.
 */

/** A malformed or unframeable HTTP answer. The connection it came on is not reused. */
export class Http1ProtocolError extends Error {
  override readonly name = 'Http1ProtocolError'
  readonly code = 'ERR_XENAPI_HTTP_PROTOCOL'
}

const enum State {
  Head,
  LengthBody,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
  Done,
}

const CRLF2 = Buffer.from('\r\n\r\n')
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/
const MAX_LINE = 8 * 1024

/**
 * A Content-Length value, checked against one seen before. A list of equal values is allowed (a proxy may have merged
 * copies); anything else cannot frame the body safely.
 */
function contentLength(value: string, previous: number): number {
  const parts = value.includes(',') ? value.split(',').map((s) => s.trim()) : [value]
  if (!parts.every((p) => /^\d{1,15}$/.test(p)) || parts.some((p) => p !== parts[0])) {
    throw new Http1ProtocolError(`bad Content-Length: ${JSON.stringify(value)}`)
  }
  const n = Number(parts[0])
  if (previous >= 0 && previous !== n) throw new Http1ProtocolError('conflicting Content-Length headers')
  return n
}

export class ResponseParser {
  status = 0
  contentType = ''
  /** The server lets the connection be reused after this answer. */
  keepAlive = true
  /** The server's `Keep-Alive: timeout=N` hint in ms, when it gave one. */
  keepAliveHintMs: number | undefined
  /** Bytes after the end of the answer (a server that answered more than it was asked): the connection is spoilt. */
  trailingGarbage = false

  private state = State.Head
  private head: Buffer | undefined
  private chunks: Buffer[] = []
  private received = 0
  private left = 0
  private line = ''
  private begun = false

  constructor(private readonly maxHeaderSize = 64 * 1024) {}

  /** Ready for the next answer on the same connection. */
  reset(): void {
    this.status = 0
    this.contentType = ''
    this.keepAlive = true
    this.keepAliveHintMs = undefined
    this.trailingGarbage = false
    this.state = State.Head
    this.head = undefined
    this.chunks = []
    this.received = 0
    this.left = 0
    this.line = ''
    this.begun = false
  }

  get done(): boolean {
    return this.state === State.Done
  }

  /** True once any byte of an answer has arrived (a connection that fails after that has seen its request run). */
  get started(): boolean {
    return this.begun
  }

  /** Feeds bytes from the socket; true when the answer is complete. */
  feed(data: Buffer): boolean {
    if (data.length > 0) this.begun = true
    let i = 0
    while (i < data.length) {
      switch (this.state) {
        case State.Head:
          i = this.readHead(data, i)
          break
        case State.LengthBody:
        case State.ChunkData: {
          // `left` bytes of a Content-Length body or of one chunk
          const n = Math.min(this.left, data.length - i)
          this.take(data, i, i + n)
          i += n
          this.left -= n
          if (this.left === 0) this.state = this.state === State.LengthBody ? State.Done : State.ChunkDataEnd
          break
        }
        case State.ChunkSize:
        case State.ChunkDataEnd:
        case State.Trailer:
          i = this.readLine(data, i)
          break
        case State.UntilClose:
          this.take(data, i, data.length)
          i = data.length
          break
        case State.Done:
          this.trailingGarbage = true
          return true
      }
    }
    return this.state === State.Done
  }

  /** The connection ended: completes a body that runs until the close; false when the answer was cut short. */
  end(): boolean {
    if (this.state === State.UntilClose) this.state = State.Done
    return this.state === State.Done
  }

  /** The body as text (XenAPI answers are UTF-8). */
  body(): string {
    const c = this.chunks
    if (c.length === 0) return ''
    if (c.length === 1) return c[0]!.toString('utf8')
    return Buffer.concat(c, this.received).toString('utf8')
  }

  private take(data: Buffer, from: number, to: number): void {
    if (to <= from) return
    this.chunks.push(from === 0 && to === data.length ? data : data.subarray(from, to))
    this.received += to - from
  }

  private readHead(data: Buffer, i: number): number {
    const prev = this.head
    const buf = prev ? Buffer.concat([prev, data.subarray(i)]) : data
    const from = prev ? 0 : i
    const end = buf.indexOf(CRLF2, prev ? Math.max(0, prev.length - 3) : i)
    if (end < 0 || end - from > this.maxHeaderSize) {
      if (end >= 0 || buf.length - from > this.maxHeaderSize) {
        throw new Http1ProtocolError(`HTTP answer head is larger than ${this.maxHeaderSize} bytes`)
      }
      this.head = prev ? buf : Buffer.from(data.subarray(i)) // a copy: keeps no socket chunk alive
      return data.length
    }
    this.head = undefined
    this.parseHead(buf.toString('latin1', from, end))
    // Where the body starts in `data` (the head may have begun in an earlier packet).
    return prev ? i + end + 4 - prev.length : end + 4
  }

  private parseHead(head: string): void {
    let eol = head.indexOf('\r\n')
    if (eol < 0) eol = head.length
    const statusLine = head.slice(0, eol)
    if (!STATUS_LINE.test(statusLine)) {
      throw new Http1ProtocolError(`not an HTTP/1.x status line: ${JSON.stringify(head.slice(0, 80))}`)
    }
    const http10 = statusLine.charCodeAt(7) === 48 // HTTP/1.0
    const status = Number(statusLine.slice(9, 12))
    let length = -1
    let chunked = false
    let otherCoding = false
    let connection: string | undefined
    let contentType = ''
    let keepAliveHint: number | undefined
    let pos = eol + 2
    while (pos < head.length) {
      let next = head.indexOf('\r\n', pos)
      if (next < 0) next = head.length
      const colon = head.indexOf(':', pos)
      if (colon < 0 || colon > next || colon === pos) {
        throw new Http1ProtocolError(`malformed HTTP header line: ${JSON.stringify(head.slice(pos, next))}`)
      }
      // Only five headers matter here; their name lengths pick the few lines worth lower-casing.
      const n = colon - pos
      if (n === 10 || n === 12 || n === 14 || n === 17) {
        const name = head.slice(pos, colon).toLowerCase()
        const value = head.slice(colon + 1, next).trim()
        if (name === 'content-length') length = contentLength(value, length)
        else if (name === 'content-type') contentType = value
        else if (name === 'connection') connection = connection === undefined ? value : `${connection},${value}`
        else if (name === 'keep-alive') {
          const t = /(?:^|[,\s])timeout=(\d+)/i.exec(value)
          if (t) keepAliveHint = Number(t[1]) * 1000
        } else if (name === 'transfer-encoding') {
          // Only a final `chunked` frames the body; any other coding runs to the end of the connection.
          chunked = /(?:^|,)\s*chunked\s*$/i.test(value)
          otherCoding = !chunked && value !== ''
        }
      }
      pos = next + 2
    }
    if (status < 200) return // 100 Continue, 103 Early Hints …: the real answer follows; keep reading heads.
    this.status = status
    this.contentType = contentType
    this.keepAliveHintMs = keepAliveHint
    this.keepAlive = http10
      ? connection !== undefined && /(?:^|,)\s*keep-alive\s*(?:,|$)/i.test(connection)
      : connection === undefined || !/(?:^|,)\s*close\s*(?:,|$)/i.test(connection)
    if (status === 204 || status === 304) {
      this.state = State.Done
    } else if (chunked) {
      // A Content-Length beside chunked is ignored, but the connection is not trusted afterwards (RFC 9112 §6.3).
      if (length >= 0) this.keepAlive = false
      this.state = State.ChunkSize
    } else if (otherCoding || length < 0) {
      this.keepAlive = false
      this.state = State.UntilClose
    } else {
      this.left = length
      this.state = length === 0 ? State.Done : State.LengthBody
    }
  }

  /** Reads one CRLF-terminated line of the chunked framing (a size line, the CRLF after data, or a trailer). */
  private readLine(data: Buffer, i: number): number {
    const nl = data.indexOf(10, i)
    if (nl < 0) {
      this.line += data.toString('latin1', i, data.length)
      if (this.line.length > MAX_LINE) throw new Http1ProtocolError('chunked framing line is too long')
      return data.length
    }
    let line = this.line + data.toString('latin1', i, nl)
    this.line = ''
    if (line.endsWith('\r')) line = line.slice(0, -1)
    switch (this.state) {
      case State.ChunkSize: {
        const semi = line.indexOf(';')
        const hex = (semi < 0 ? line : line.slice(0, semi)).trim()
        if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) throw new Http1ProtocolError(`bad chunk size: ${JSON.stringify(line)}`)
        const size = parseInt(hex, 16)
        if (size === 0) {
          this.state = State.Trailer
        } else {
          this.left = size
          this.state = State.ChunkData
        }
        break
      }
      case State.ChunkDataEnd:
        if (line !== '') throw new Http1ProtocolError('chunk data longer than its size')
        this.state = State.ChunkSize
        break
      case State.Trailer:
        if (line === '') this.state = State.Done
        break
    }
    return nl + 1
  }
}
