/**
 * Fault injection wired into a simulator, and the admin endpoint outside the XAPI namespace (`/_sim/…`).
 *
 * Where each fault kind acts:
 *  - SESSION_INVALID, HOST_IS_SLAVE and latency act in the dispatcher (a call hook), so they reach both transports
 *    with XAPI's real error vectors: SESSION_INVALID [session], HOST_IS_SLAVE [master address]. In-process calls
 *    are never faulted.
 *  - master_change acts in the dispatcher too: the master moves to another host before the call runs, and the
 *    dispatcher's own pool check answers HOST_IS_SLAVE to a call that reached the old master.
 *  - reset and http500 act on the HTTP exchange: the RPC body is read, its method decides, then the connection is
 *    reset (TCP RST) or a 500 page is sent; rules with a `path` act on the disk handlers the same way (latency too).
 * Hooks are installed only while rules of their kind exist, so a simulator without faults keeps its fast path.
 *
 * Admin endpoint (JSON in and out):
 *   GET    /_sim/faults                 → {rules: [...with matched/injected counters], totals: {KIND: n}}
 *   POST   /_sim/faults                 ← a rule or a list of rules → {ids: [...]}
 *   DELETE /_sim/faults[/<id>]          → removes one rule, or all
 *   POST   /_sim/sessions/expire        ← {session: ref} or {all: true} → {expired: n}
 *   POST   /_sim/flush                  → persists the state now (when the simulator has a state directory)
 *   GET    /_sim/info                   → {pool, hosts: [{name, address, plugins_dir}], sessions, faults}
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { XapiError } from './errors.js'
import { FaultInjector, FaultRuleError, parseFaultRule, type FaultAction, type FaultKind } from './faults.js'
import { httpError, type HttpContext } from './http.js'
import type { Simulator } from './simulator.js'

const DISPATCH_KINDS: readonly FaultKind[] = ['SESSION_INVALID', 'HOST_IS_SLAVE', 'latency', 'master_change']
const SESSIONLESS_KINDS: readonly FaultKind[] = ['HOST_IS_SLAVE', 'latency', 'master_change']
const TRANSPORT_KINDS: readonly FaultKind[] = ['reset', 'http500']
const ALL_KINDS: readonly FaultKind[] = [...DISPATCH_KINDS, ...TRANSPORT_KINDS]

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface AdminHooks {
  /** Persists state now (installed by the persistence layer). */
  flush?: () => Promise<void>
  /** Extra facts for /_sim/info. */
  info?: () => Record<string, unknown>
}

/** Connects an injector to a simulator; returns a function disconnecting it. */
export function installFaults(sim: Simulator, faults: FaultInjector): () => void {
  let removeHook: (() => void) | undefined
  let removeMw: (() => void) | undefined

  const hook = async (info: { method: string; params: unknown[]; host: string; transport: string }) => {
    if (info.transport === 'internal') return
    // Calls that take no session never see SESSION_INVALID (logins, system.*); they still see the other kinds.
    const sessionless = /^(session\.(login|slave_local_login)|system\.)/.test(info.method)
    const a = faults.forCall(info.method, sessionless ? SESSIONLESS_KINDS : DISPATCH_KINDS)
    if (!a) return
    if (a.kind === 'latency') return void (await sleep(a.ms))
    if (a.kind === 'SESSION_INVALID') throw new XapiError('SESSION_INVALID', String(info.params[0] ?? ''))
    if (a.kind === 'HOST_IS_SLAVE') throw new XapiError('HOST_IS_SLAVE', sim.masterAddress)
    if (a.kind === 'master_change') moveMaster(sim, info.host)
  }

  const middleware = async (req: IncomingMessage, res: ServerResponse, ctx: HttpContext): Promise<boolean> => {
    const path = ctx.url.pathname
    if (path.startsWith('/_sim/')) return false
    // Disk handlers and other HTTP paths: rules with a `path`.
    const httpAction = faults.forHttp(path)
    if (httpAction) {
      if (httpAction.kind === 'latency') await sleep(httpAction.ms)
      else return applyTransport(httpAction, req, res, sim)
    }
    if (req.method !== 'POST' || !faults.has(TRANSPORT_KINDS)) return false
    if (routeClaims(sim, path)) return false
    // An RPC: read the body to learn the method, then either fault it or hand it to the normal RPC handler.
    const body = await readBody(req)
    const method = methodOf(body, path === '/jsonrpc')
    const a = method === undefined ? undefined : faults.forCall(method, TRANSPORT_KINDS)
    if (a) return applyTransport(a, req, res, sim)
    const replay = Readable.from([body]) as unknown as IncomingMessage
    ;(sim.http as unknown as { rpc(r: IncomingMessage, s: ServerResponse, h: string, j: boolean): void }).rpc(
      replay,
      res,
      ctx.host,
      path === '/jsonrpc',
    )
    return true
  }

  const sync = () => {
    const wantHook = faults.has(DISPATCH_KINDS)
    if (wantHook && !removeHook) removeHook = sim.messages.addHook(hook)
    if (!wantHook && removeHook) {
      removeHook()
      removeHook = undefined
    }
    const wantMw = faults.has(TRANSPORT_KINDS) || faults.has(ALL_KINDS, true)
    if (wantMw && !removeMw) removeMw = sim.http.use(middleware)
    if (!wantMw && removeMw) {
      removeMw()
      removeMw = undefined
    }
  }
  faults.onChange = sync
  sync()
  return () => {
    faults.onChange = undefined
    removeHook?.()
    removeMw?.()
  }
}

/**
 * Makes the next host (by name, after the current master, skipping `reached` — the host this call was sent to, so the
 * call itself meets HOST_IS_SLAVE) the pool master, as pool.designate_new_master does.
 */
export function moveMaster(sim: Simulator, reached: string): string | undefined {
  const current = sim.master
  const hosts = [...sim.db.all('host')]
    .sort(([, a], [, b]) => String(a.name_label).localeCompare(String(b.name_label)))
    .map(([ref]) => ref)
  const from = hosts.indexOf(current)
  for (let i = 1; i <= hosts.length; i++) {
    const next = hosts[(from + i) % hosts.length]!
    if (next === current || next === (reached || current)) continue
    sim.db.set(sim.pool, 'master', next)
    return next
  }
  return undefined
}

function routeClaims(sim: Simulator, path: string): boolean {
  const find = (sim.http as unknown as { findRoute(m: string, p: string): unknown }).findRoute
  return typeof find === 'function' && find.call(sim.http, 'POST', path) !== undefined
}

function applyTransport(a: FaultAction, req: IncomingMessage, res: ServerResponse, sim: Simulator): true {
  if (a.kind === 'reset') {
    // A TCP RST, so clients see ECONNRESET (what their retry rules test for), not an orderly close.
    const sock = req.socket as typeof req.socket & { resetAndDestroy?: () => void }
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy()
    else sock.destroy()
    return true
  }
  req.resume()
  if (a.kind === 'http500') httpError(res, 500, `fault injected by xapi-sim (rule ${a.rule})`)
  else if (a.kind === 'SESSION_INVALID' || a.kind === 'HOST_IS_SLAVE') {
    const body = a.kind === 'HOST_IS_SLAVE' ? `HOST_IS_SLAVE ${sim.masterAddress}\n` : 'SESSION_INVALID\n'
    res.writeHead(a.kind === 'HOST_IS_SLAVE' ? 302 : 401, { 'content-type': 'text/plain' })
    res.end(body)
  }
  return true
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

function methodOf(body: Buffer, json: boolean): string | undefined {
  const s = body.toString('utf8')
  if (json) {
    try {
      const m = (JSON.parse(s) as { method?: unknown }).method
      return typeof m === 'string' ? m : undefined
    } catch {
      return undefined
    }
  }
  return /<methodName>\s*([^<\s]+)\s*<\/methodName>/.exec(s)?.[1]
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = (await readBody(req)).toString('utf8').trim()
  if (body === '') return undefined
  try {
    return JSON.parse(body)
  } catch (e) {
    throw new FaultRuleError('(body)', `expected JSON: ${(e as Error).message}`)
  }
}

/** Registers `/_sim/…` on the simulator. */
export function installAdmin(sim: Simulator, faults: FaultInjector, hooks: AdminHooks = {}): void {
  const handler = async (req: IncomingMessage, res: ServerResponse, ctx: HttpContext): Promise<void> => {
    const path = ctx.url.pathname.replace(/\/+$/, '')
    const method = req.method ?? 'GET'
    try {
      if (path === '/_sim/faults' && method === 'GET')
        return sendJson(res, 200, { rules: faults.list(), totals: faults.totals() })
      if (path === '/_sim/faults' && method === 'POST') {
        const body = await readJson(req)
        const list = Array.isArray(body) ? body : [body]
        const rules = list.map((r, i) => parseFaultRule(r, Array.isArray(body) ? `rules[${i}]` : 'rule'))
        return sendJson(res, 200, { ids: rules.map((r) => faults.add(r)) })
      }
      if (path === '/_sim/faults' && method === 'DELETE') {
        const n = faults.list().length
        faults.clear()
        return sendJson(res, 200, { removed: n })
      }
      if (path.startsWith('/_sim/faults/') && method === 'DELETE') {
        const id = decodeURIComponent(path.slice('/_sim/faults/'.length))
        if (!faults.remove(id)) return sendJson(res, 404, { error: `no fault rule with id ${id}` })
        return sendJson(res, 200, { removed: 1 })
      }
      if (path === '/_sim/sessions/expire' && method === 'POST') {
        const body = ((await readJson(req)) ?? {}) as { session?: unknown; all?: unknown }
        if (body.all === true) {
          const refs = sim.db.refs('session')
          for (const r of refs) sim.sessions.expire(r)
          return sendJson(res, 200, { expired: refs.length })
        }
        if (typeof body.session !== 'string')
          return sendJson(res, 400, { error: 'expected {"session": "OpaqueRef:…"} or {"all": true}' })
        const known = sim.db.has('session', body.session)
        sim.sessions.expire(body.session)
        return sendJson(res, known ? 200 : 404, { expired: known ? 1 : 0 })
      }
      if (path === '/_sim/flush' && method === 'POST') {
        if (!hooks.flush) return sendJson(res, 409, { error: 'this simulator has no state directory (--state)' })
        await hooks.flush()
        return sendJson(res, 200, { flushed: true })
      }
      if (path === '/_sim/info' && method === 'GET') {
        return sendJson(res, 200, {
          pool: sim.db.refs('pool')[0],
          hosts: [...sim.db.all('host')].map(([ref, h]) => ({ ref, name: h.name_label, address: h.address })),
          sessions: sim.sessions.size,
          faults: faults.totals(),
          ...hooks.info?.(),
        })
      }
      req.resume()
      sendJson(res, 404, { error: `no admin endpoint ${method} ${path}` })
    } catch (e) {
      if (e instanceof FaultRuleError) return sendJson(res, 400, { error: e.message })
      sendJson(res, 500, { error: (e as Error).message })
    }
  }
  for (const m of ['GET', 'POST', 'DELETE']) sim.http.route(m, '/_sim/', handler)
}
