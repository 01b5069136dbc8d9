/**
 * The HTTP layer of the Glance and Keystone clients: node:http/https with TLS verified by default (system CAs, or
 * the CA bundle given), JSON bodies, streamed request bodies with backpressure, a per-request timeout, and errors
 * that name the method, the URL and what the server said (OpenStack's JSON error body or the text of an HTML one).
 * Header values marked secret (the Keystone token) never appear in errors.
 */
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

export interface TlsOptions {
  /** PEM CA bundle to verify the server with (instead of the system CAs). */
  ca?: string | Buffer
  /** Skip certificate verification. Off by default; only for labs with throwaway certificates. */
  insecure?: boolean
}

export interface HttpRequest {
  method: string
  url: string
  headers?: OutgoingHttpHeaders
  /** JSON-serialisable value (sent as application/json unless a content-type header says otherwise). */
  json?: unknown
  /** A raw body: bytes or a stream (sent with backpressure). */
  body?: Buffer | Readable
  timeoutMs?: number
  signal?: AbortSignal
}

export interface HttpResponse {
  status: number
  headers: IncomingMessage['headers']
  /** The body, read whole (answers of these APIs are small JSON; downloads use `stream`). */
  text: string
}

/** An OpenStack API answered with an error status, or could not be reached. */
export class OpenStackHttpError extends Error {
  constructor(
    message: string,
    readonly method: string,
    readonly url: string,
    readonly status?: number,
    /** The service's own message (from its JSON or HTML error body). */
    readonly serviceMessage?: string,
  ) {
    super(message)
    this.name = 'OpenStackHttpError'
  }
}

/** Glance/Keystone/webob error bodies: {"error":{"message"}}, {"message"}, {"explanation"}, or an HTML page. */
export function serviceMessageOf(text: string): string {
  const t = text.trim()
  if (!t) return ''
  try {
    const j = JSON.parse(t) as Record<string, any>
    const e = (j.error ?? j) as Record<string, any>
    const m = e.message ?? e.explanation ?? e.title ?? e.detail
    // webob's messages carry <br /> line breaks and, for schema errors, a long dump after a blank line
    if (typeof m === 'string' && m)
      return m
        .replace(/<br\s*\/?>/gi, '\n')
        .trim()
        .split(/\n\s*\n/)[0]
        .replace(/\s+/g, ' ')
        .trim()
  } catch {
    // not JSON
  }
  return t
    .replace(/<title>[^<]*<\/title>/i, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 500)
}

/** URL without query string (a marker or filter is noise in an error; a token never goes in a URL). */
const shownUrl = (url: string): string => url.split('?')[0]

function send(req: HttpRequest, tls: TlsOptions, onResponse: (res: IncomingMessage) => void): Promise<void> {
  const u = new URL(req.url)
  const headers: OutgoingHttpHeaders = { accept: 'application/json', ...(req.headers ?? {}) }
  let payload: Buffer | undefined
  if (req.json !== undefined) {
    payload = Buffer.from(JSON.stringify(req.json))
    headers['content-type'] ??= 'application/json'
  } else if (Buffer.isBuffer(req.body)) payload = req.body
  if (payload) headers['content-length'] = String(payload.length)
  const isHttps = u.protocol === 'https:'
  if (!isHttps && u.protocol !== 'http:')
    return Promise.reject(
      new OpenStackHttpError(
        `${req.method} ${shownUrl(req.url)}: only http and https URLs are supported`,
        req.method,
        req.url,
      ),
    )
  const options = {
    method: req.method,
    headers,
    timeout: req.timeoutMs ?? 60_000,
    signal: req.signal,
    ...(isHttps ? { ca: tls.ca, rejectUnauthorized: tls.insecure !== true } : {}),
  }
  return new Promise<void>((resolve, reject) => {
    const r = (isHttps ? httpsRequest : httpRequest)(u, options, (res) => {
      onResponse(res)
      resolve()
    })
    r.on('timeout', () => r.destroy(new Error(`no answer within ${options.timeout} ms`)))
    r.on('error', (e) =>
      reject(
        new OpenStackHttpError(
          `${req.method} ${shownUrl(req.url)}: ${(e as Error).message}`,
          req.method,
          shownUrl(req.url),
        ),
      ),
    )
    if (payload) r.end(payload)
    else if (req.body) {
      pipeline(req.body as Readable, r).catch((e: Error) => r.destroy(e))
    } else r.end()
  })
}

/** Sends a request and reads the whole answer. Rejects on transport errors and on status >= 400. */
export async function httpCall(req: HttpRequest, tls: TlsOptions = {}): Promise<HttpResponse> {
  let res!: IncomingMessage
  await send(req, tls, (r) => (res = r))
  const chunks: Buffer[] = []
  try {
    for await (const c of res) chunks.push(c as Buffer)
  } catch (e) {
    throw new OpenStackHttpError(
      `${req.method} ${shownUrl(req.url)}: ${(e as Error).message}`,
      req.method,
      shownUrl(req.url),
    )
  }
  const text = Buffer.concat(chunks).toString('utf8')
  const status = res.statusCode ?? 0
  if (status >= 400) {
    const m = serviceMessageOf(text)
    throw new OpenStackHttpError(
      `${req.method} ${shownUrl(req.url)} answered HTTP ${status}${m ? `: ${m}` : ''}`,
      req.method,
      shownUrl(req.url),
      status,
      m,
    )
  }
  return { status, headers: res.headers, text }
}

/** Sends a request and returns the answer's body as a stream (for downloads). Rejects on status >= 400. */
export async function httpStream(req: HttpRequest, tls: TlsOptions = {}): Promise<IncomingMessage> {
  let res!: IncomingMessage
  await send(req, tls, (r) => (res = r))
  const status = res.statusCode ?? 0
  if (status >= 400) {
    const chunks: Buffer[] = []
    for await (const c of res) chunks.push(c as Buffer)
    const m = serviceMessageOf(Buffer.concat(chunks).toString('utf8'))
    throw new OpenStackHttpError(
      `${req.method} ${shownUrl(req.url)} answered HTTP ${status}${m ? `: ${m}` : ''}`,
      req.method,
      shownUrl(req.url),
      status,
      m,
    )
  }
  return res
}

export function parseJson<T>(res: HttpResponse, what: string): T {
  try {
    return JSON.parse(res.text) as T
  } catch {
    throw new Error(`${what}: the answer is not JSON: ${res.text.slice(0, 200)}`)
  }
}
