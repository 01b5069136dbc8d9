/**
 * The HTTP front: node:http servers (one per pool member address, same port), XAPI's routing by (method, longest
 * path prefix) with XML-RPC on every unclaimed POST and JSON-RPC on /jsonrpc, CORS, and extension points for the
 * disk handlers and fault injection (routes and middleware).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { XapiError } from './errors.js'
import type { CallOutcome } from './dispatch.js'
import { decodeMethodCall, encodeUntyped, methodResponse } from './xml.js'
import type { Simulator } from './simulator.js'
import type { Session } from './semantics/session.js'

export interface HttpContext {
  sim: Simulator
  /** The host ref whose address the request reached. */
  host: string
  url: URL
}

/** Handles a request; routes own the response. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, ctx: HttpContext) => void | Promise<void>
/** Runs before routing; return true when it answered (or destroyed) the request itself. */
export type HttpMiddleware = (req: IncomingMessage, res: ServerResponse, ctx: HttpContext) => boolean | Promise<boolean>

interface Route {
  method: string
  prefix: string
  handler: HttpHandler
}

const CORS = { 'access-control-allow-origin': '*' }
const SUCCESS_OPEN =
  '<value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name>'
const SUCCESS_CLOSE = '</member></struct></value>'

export class HttpFront {
  private routes: Route[] = []
  private readonly middleware: HttpMiddleware[] = []
  private readonly servers: Server[] = []
  private readonly sockets = new Set<Socket>()

  constructor(private readonly sim: Simulator) {}

  /**
   * Registers a handler for (method, path prefix); the longest matching prefix wins, as in XAPI. Returns a
   * function removing it.
   */
  route(method: string, prefix: string, handler: HttpHandler): () => void {
    const r: Route = { method: method.toUpperCase(), prefix, handler }
    this.routes.push(r)
    this.routes.sort((a, b) => b.prefix.length - a.prefix.length)
    return () => {
      this.routes = this.routes.filter((x) => x !== r)
    }
  }

  /** Adds middleware run before routing (fault injection: latency, resets, HTTP 500). */
  use(mw: HttpMiddleware): () => void {
    this.middleware.push(mw)
    return () => {
      const i = this.middleware.indexOf(mw)
      if (i >= 0) this.middleware.splice(i, 1)
    }
  }

  /**
   * The session of an HTTP request (§1.2): `session_id` from the query or a cookie, or HTTP Basic credentials
   * (which log in). Throws SESSION_INVALID / SESSION_AUTHENTICATION_FAILED.
   */
  async session(req: IncomingMessage, url: URL, host: string): Promise<Session> {
    let ref = url.searchParams.get('session_id')
    if (!ref && req.headers.cookie) {
      const m = /(?:^|;\s*)session_id=([^;]+)/.exec(req.headers.cookie)
      if (m) ref = decodeURIComponent(m[1])
    }
    if (ref) return this.sim.sessions.check(ref)
    const auth = req.headers.authorization
    if (auth?.startsWith('Basic ')) {
      const [user, ...rest] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':')
      const sref = await this.sim.sessions.login(user, rest.join(':'), 'http-basic', host)
      return this.sim.sessions.check(sref)
    }
    throw new XapiError('SESSION_INVALID', '')
  }

  /** Starts one server per address on one port (port 0: the first server picks it). */
  async listen(addresses: { address: string; host: string }[], port: number): Promise<number> {
    let actual = port
    for (const { address, host } of addresses) {
      const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res, host))
      server.headersTimeout = 70_000
      server.on('connection', (s: Socket) => {
        this.sockets.add(s)
        s.setNoDelay(true)
        s.on('close', () => this.sockets.delete(s))
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e: NodeJS.ErrnoException) =>
          reject(new Error(`xapi-sim: cannot listen on ${address}:${actual}: ${e.code ?? e.message}`)),
        )
        server.listen(actual, address, () => resolve())
      })
      if (actual === 0) actual = (server.address() as AddressInfo).port
      this.servers.push(server)
    }
    return actual
  }

  async close(): Promise<void> {
    const servers = this.servers.splice(0)
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  }

  /** Handles a request that reached `host` (public so a pool master can serve a joined simulator's address). */
  handle(req: IncomingMessage, res: ServerResponse, host: string): void {
    const joined = this.sim.joinedTo
    if (joined) return joined.sim.http.handle(req, res, joined.host)
    const rawUrl = req.url ?? '/'
    const method = req.method ?? 'GET'
    // Hot path: RPC with no middleware and no route claiming it.
    if (method === 'POST' && this.middleware.length === 0) {
      const q = rawUrl.indexOf('?')
      const path = q < 0 ? rawUrl : rawUrl.slice(0, q)
      if (!this.findRoute('POST', path)) {
        this.rpc(req, res, host, path === '/jsonrpc')
        return
      }
    }
    void this.handleSlow(req, res, host)
  }

  /** The route claiming (method, path), if any. */
  findRoute(method: string, path: string): Route | undefined {
    for (const r of this.routes) if (r.method === method && path.startsWith(r.prefix)) return r
    return undefined
  }

  private async handleSlow(req: IncomingMessage, res: ServerResponse, host: string): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      const ctx: HttpContext = { sim: this.sim, host, url }
      for (const mw of this.middleware) if (await mw(req, res, ctx)) return
      const method = req.method ?? 'GET'
      const route = this.findRoute(method, url.pathname)
      if (route) return await route.handler(req, res, ctx)
      if (method === 'POST') return this.rpc(req, res, host, url.pathname === '/jsonrpc')
      if (method === 'OPTIONS') {
        res.writeHead(200, {
          ...CORS,
          'access-control-allow-methods': 'GET, POST, PUT, OPTIONS',
          'access-control-allow-headers': 'content-type, authorization',
          'content-length': '0',
        })
        return void res.end()
      }
      httpError(res, 404, 'Not Found')
    } catch (e) {
      if (!res.headersSent) httpError(res, 500, e instanceof Error ? e.message : String(e))
      else res.destroy()
    }
  }

  /** Answers an RPC request (XML-RPC, or JSON-RPC when `json`); also used by the admin endpoint. */
  rpc(req: IncomingMessage, res: ServerResponse, host: string, json: boolean): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('error', () => res.destroy())
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8')
      try {
        if (json) this.jsonRpc(body, res, host)
        else this.xmlRpc(body, res, host)
      } catch (e) {
        if (!res.headersSent) httpError(res, 500, e instanceof Error ? e.message : String(e))
      }
    })
  }

  private xmlRpc(body: string, res: ServerResponse, host: string): void {
    let call
    try {
      call = decodeMethodCall(body)
    } catch (e) {
      return httpError(res, 500, `Malformed_method_request: ${(e as Error).message}`)
    }
    const out = this.sim.messages.call(call.method, call.params, host, 'xmlrpc')
    const raw = call.method.startsWith('system.')
    if (out instanceof Promise) void out.then((o) => this.sendXml(res, o, raw))
    else this.sendXml(res, out, raw)
  }

  private sendXml(res: ServerResponse, o: CallOutcome, raw: boolean): void {
    let v: string
    if (o.ok) {
      const enc = o.xml ? o.xml() : this.sim.encoders.encode(o.value, o.type)
      v = raw ? enc : SUCCESS_OPEN + enc + SUCCESS_CLOSE
    } else {
      v =
        '<value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>' +
        encodeUntyped(o.errorDescription) +
        '</member></struct></value>'
    }
    const body = methodResponse(v)
    if (res.destroyed) return
    res.writeHead(200, [
      'content-type',
      'text/xml',
      'access-control-allow-origin',
      '*',
      'content-length',
      String(Buffer.byteLength(body)),
    ])
    res.end(body)
  }

  private jsonRpc(body: string, res: ServerResponse, host: string): void {
    let req: { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown }
    try {
      req = JSON.parse(body) as typeof req
    } catch (e) {
      return httpError(res, 500, `Malformed_method_request: ${(e as Error).message}`)
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req))
      return httpError(res, 500, 'Malformed_method_request')
    const v2 = req.jsonrpc === '2.0'
    if (req.jsonrpc !== undefined && !v2)
      return httpError(res, 500, 'Malformed_method_request: unsupported jsonrpc version')
    const id = req.id
    if (!(typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id))))
      return httpError(res, 500, 'Malformed_method_request: id must be an integer or a string')
    if (typeof req.method !== 'string') return httpError(res, 500, 'Malformed_method_request: method must be a string')
    let params: unknown[]
    if (Array.isArray(req.params)) params = req.params
    else if (v2 && (req.params === undefined || req.params === null)) params = []
    else if (v2 && typeof req.params === 'object') params = [req.params]
    else return httpError(res, 500, 'Malformed_method_request: params must be an array')
    const out = this.sim.messages.call(req.method, params, host, 'jsonrpc')
    if (out instanceof Promise) void out.then((o) => sendJson(res, o, v2, id))
    else sendJson(res, out, v2, id)
  }
}

function sendJson(res: ServerResponse, o: CallOutcome, v2: boolean, id: string | number): void {
  const idj = typeof id === 'number' ? String(id) : JSON.stringify(id)
  let body: string
  if (o.ok) {
    const r = o.json ? o.json() : JSON.stringify(o.value === undefined ? '' : o.value)
    body = v2 ? `{"jsonrpc":"2.0","result":${r},"id":${idj}}` : `{"result":${r},"error":null,"id":${idj}}`
  } else {
    const [code, ...data] = o.errorDescription
    body = v2
      ? `{"jsonrpc":"2.0","error":{"code":1,"message":${JSON.stringify(code)},"data":${JSON.stringify(data)}},"id":${idj}}`
      : `{"result":null,"error":${JSON.stringify(o.errorDescription)},"id":${idj}}`
  }
  if (res.destroyed) return
  res.writeHead(200, [
    'content-type',
    'application/json',
    'access-control-allow-origin',
    '*',
    'content-length',
    String(Buffer.byteLength(body)),
  ])
  res.end(body)
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** An HTML error page, as XAPI answers transport errors. */
export function httpError(res: ServerResponse, status: number, message: string): void {
  const body = `<html><body><h1>HTTP ${status}</h1>${escapeHtml(message)}</body></html>`
  if (res.headersSent) return void res.destroy()
  res.writeHead(status, { 'content-type': 'text/html', ...CORS, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
