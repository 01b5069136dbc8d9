/**
 * The HTTP front: one listening socket per pool member address (same port), XAPI's routing by (method, longest
 * path prefix) with XML-RPC on every unclaimed POST and JSON-RPC on /jsonrpc, CORS, and extension points for the
 * disk handlers and fault injection (routes and middleware).
 *
 * Connections start on the lean RPC reader of http-wire.ts (keep-alive POSTs with a Content-Length, the calls every
 * client makes); the first request it does not serve moves the connection to node:http, which handles everything
 * else (routes, middleware, chunked bodies, 100-continue, bad requests).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import {
  bodyBytes,
  RpcConnection,
  type EncodedBody,
  type Reply,
  type RpcEndpoint,
  type WireStats,
} from './http-wire.js'
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
// methodResponse() around a success envelope, split at its value (for values cached as bytes).
const RESPONSE_OPEN = `<?xml version="1.0"?><methodResponse><params><param>${SUCCESS_OPEN}`
const RESPONSE_CLOSE = `${SUCCESS_CLOSE}</param></params></methodResponse>`

export class HttpFront implements RpcEndpoint {
  private routes: Route[] = []
  private readonly middleware: HttpMiddleware[] = []
  private readonly servers: NetServer[] = []
  /** node:http servers that never listen: they get the connections the RPC reader hands over. */
  private readonly httpServers: Server[] = []
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
      const http = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res, host))
      http.headersTimeout = 70_000
      // A client that half-closes right after a request still gets the answer (as from the lean reader): node:http's
      // default ends the socket at the client's FIN, which loses an answer not yet written when the request reached
      // node:http through a hand-over (its bytes and the FIN are then read in one go).
      ;(http as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true // undocumented, in node:http since 0.x
      // Starts node:http's header/request timeout checks, which it otherwise starts on listening.
      http.emit('listening')
      const handOff = (s: Socket) => http.emit('connection', s)
      const endpoint = () => this.rpcEndpoint()
      // allowHalfOpen as node:http's own server: a client that half-closes still gets its answers.
      const server = createNetServer({ allowHalfOpen: true, noDelay: true }, (s: Socket) => {
        this.sockets.add(s)
        s.on('close', () => this.sockets.delete(s))
        new RpcConnection(s, endpoint, host, handOff, this.wireStats)
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e: NodeJS.ErrnoException) =>
          reject(new Error(`xapi-sim: cannot listen on ${address}:${actual}: ${e.code ?? e.message}`)),
        )
        server.listen(actual, address, () => resolve())
      })
      if (actual === 0) actual = (server.address() as AddressInfo).port
      this.servers.push(server)
      this.httpServers.push(http)
    }
    return actual
  }

  async close(): Promise<void> {
    const servers = this.servers.splice(0)
    for (const h of this.httpServers.splice(0)) h.close() // not listening: only stops its timeout checks
    for (const s of this.sockets) s.destroy()
    this.sockets.clear()
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
  }

  /** The front answering this simulator's addresses: a joined member's requests are its master's. */
  private rpcEndpoint(): RpcEndpoint {
    const joined = this.sim.joinedTo
    return joined ? joined.sim.http.memberEndpoint(joined.host) : this
  }

  /** This front's RPC answering as `host` (a joined simulator's address, served by its new master). */
  private memberEndpoint(host: string): RpcEndpoint {
    return {
      claimsRpc: (path) => this.claimsRpc(path),
      answerRpc: (body, _host, json, reply) => this.answerRpc(body, host, json, reply),
    }
  }

  /**
   * Whether the lean reader answers plain RPCs (default). False sends every new request to node:http — the
   * benchmark's before/after comparison in one run, and a way out should the reader ever be suspected.
   */
  leanRpc = true

  /** Requests the lean reader answered and connections it handed to node:http (the benchmark prints them). */
  readonly wireStats: WireStats = { leanAnswers: 0, handedOff: 0 }

  /**
   * True when a POST to `path` is a plain RPC the lean reader may answer: no middleware (faults), no route claiming
   * the path, and no `beforeAnswer` hold (answers that wait for the disk go through node:http's rpc()).
   */
  claimsRpc(path: string): boolean {
    return (
      this.leanRpc &&
      this.middleware.length === 0 &&
      this.beforeAnswer === undefined &&
      this.sim.joinedTo === undefined &&
      !this.findRoute('POST', path)
    )
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

  /**
   * Called before an RPC answer is sent; a promise holds the answer back until it settles (server.ts's `syncWrites`:
   * the changes the call made are on disk before the caller hears of them, so a SIGKILL loses nothing answered).
   */
  beforeAnswer?: () => Promise<void> | undefined

  /** Answers an RPC request (XML-RPC, or JSON-RPC when `json`) read through node:http; also used by the admin endpoint. */
  rpc(req: IncomingMessage, res: ServerResponse, host: string, json: boolean): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('error', () => res.destroy())
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8')
      const reply = replyThrough(res)
      this.answerRpc(body, host, json, (status, contentType, text) => {
        const held = this.beforeAnswer?.()
        if (!held) return reply(status, contentType, text)
        // a failed write answers HTTP 500: the caller must not believe a change that is not on disk
        held.then(
          () => reply(status, contentType, text),
          (e: Error) => reply(500, 'text/html', errorPage(500, `state not written: ${e.message}`)),
        )
      })
    })
  }

  /** Answers an RPC body through `reply` (either HTTP layer); never throws. */
  answerRpc(body: string, host: string, json: boolean, reply: Reply): void {
    try {
      if (json) this.jsonRpc(body, host, reply)
      else this.xmlRpc(body, host, reply)
    } catch (e) {
      reply(500, 'text/html', errorPage(500, e instanceof Error ? e.message : String(e)))
    }
  }

  private xmlRpc(body: string, host: string, reply: Reply): void {
    let call
    try {
      call = decodeMethodCall(body)
    } catch (e) {
      return reply(500, 'text/html', errorPage(500, `Malformed_method_request: ${(e as Error).message}`))
    }
    const out = this.sim.messages.call(call.method, call.params, host, 'xmlrpc')
    const raw = call.method.startsWith('system.')
    if (out instanceof Promise) void out.then((o) => reply(200, 'text/xml', this.xmlBody(o, raw)))
    else reply(200, 'text/xml', this.xmlBody(out, raw))
  }

  private xmlBody(o: CallOutcome, raw: boolean): string | EncodedBody {
    let v: string
    if (o.ok && o.xmlBytes && !raw) return { before: RESPONSE_OPEN, bytes: o.xmlBytes(), after: RESPONSE_CLOSE }
    if (o.ok) {
      const enc = o.xml ? o.xml() : this.sim.encoders.encode(o.value, o.type)
      v = raw ? enc : SUCCESS_OPEN + enc + SUCCESS_CLOSE
    } else {
      v =
        '<value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>' +
        encodeUntyped(o.errorDescription) +
        '</member></struct></value>'
    }
    return methodResponse(v)
  }

  private jsonRpc(body: string, host: string, reply: Reply): void {
    const malformed = (why: string) => reply(500, 'text/html', errorPage(500, `Malformed_method_request${why}`))
    let req: { jsonrpc?: unknown; method?: unknown; params?: unknown; id?: unknown }
    try {
      req = JSON.parse(body) as typeof req
    } catch (e) {
      return malformed(`: ${(e as Error).message}`)
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req)) return malformed('')
    const v2 = req.jsonrpc === '2.0'
    if (req.jsonrpc !== undefined && !v2) return malformed(': unsupported jsonrpc version')
    const id = req.id
    if (!(typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id))))
      return malformed(': id must be an integer or a string')
    if (typeof req.method !== 'string') return malformed(': method must be a string')
    let params: unknown[]
    if (Array.isArray(req.params)) params = req.params
    else if (v2 && (req.params === undefined || req.params === null)) params = []
    else if (v2 && typeof req.params === 'object') params = [req.params]
    else return malformed(': params must be an array')
    const out = this.sim.messages.call(req.method, params, host, 'jsonrpc')
    if (out instanceof Promise) void out.then((o) => reply(200, 'application/json', jsonBody(o, v2, id)))
    else reply(200, 'application/json', jsonBody(out, v2, id))
  }
}

/** A Reply writing to a node:http response (headers as the RPC reader writes them). */
function replyThrough(res: ServerResponse): Reply {
  return (status, contentType, encoded) => {
    if (res.destroyed) return
    if (res.headersSent) return void res.destroy()
    const body = bodyBytes(encoded)
    res.writeHead(status, [
      'content-type',
      contentType,
      'access-control-allow-origin',
      '*',
      'content-length',
      String(Buffer.byteLength(body)),
    ])
    res.end(body)
  }
}

function jsonBody(o: CallOutcome, v2: boolean, id: string | number): string | EncodedBody {
  const idj = typeof id === 'number' ? String(id) : JSON.stringify(id)
  let body: string
  if (o.ok && o.jsonBytes) {
    return v2
      ? { before: '{"jsonrpc":"2.0","result":', bytes: o.jsonBytes(), after: `,"id":${idj}}` }
      : { before: '{"result":', bytes: o.jsonBytes(), after: `,"error":null,"id":${idj}}` }
  }
  if (o.ok) {
    const r = o.json ? o.json() : JSON.stringify(o.value === undefined ? '' : o.value)
    body = v2 ? `{"jsonrpc":"2.0","result":${r},"id":${idj}}` : `{"result":${r},"error":null,"id":${idj}}`
  } else {
    const [code, ...data] = o.errorDescription
    body = v2
      ? `{"jsonrpc":"2.0","error":{"code":1,"message":${JSON.stringify(code)},"data":${JSON.stringify(data)}},"id":${idj}}`
      : `{"result":null,"error":${JSON.stringify(o.errorDescription)},"id":${idj}}`
  }
  return body
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function errorPage(status: number, message: string): string {
  return `<html><body><h1>HTTP ${status}</h1>${escapeHtml(message)}</body></html>`
}

/** An HTML error page, as XAPI answers transport errors. */
export function httpError(res: ServerResponse, status: number, message: string): void {
  const body = errorPage(status, message)
  if (res.headersSent) return void res.destroy()
  res.writeHead(status, { 'content-type': 'text/html', ...CORS, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}
