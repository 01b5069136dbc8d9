/** Raw HTTP helpers for the core tests: requests through fetch to a running simulator, returning exact bytes. */
import assert from 'node:assert/strict'
import { createSimulator, type PoolDescription, type Simulator, type SimulatorOptions } from '../../src/index.js'

export const PASSWORD = 'secret-pw'

export interface Running {
  sim: Simulator
  url: string
  port: number
  /** JSON-RPC 2.0 call; returns the parsed response. */
  json(method: string, params: unknown[], base?: string): Promise<JsonReply>
  /** JSON-RPC 2.0 call that must succeed; returns the result. */
  ok<T = unknown>(method: string, ...params: unknown[]): Promise<T>
  /** JSON-RPC 2.0 call that must fail; returns [code, ...params]. */
  err(method: string, ...params: unknown[]): Promise<string[]>
  /** POSTs a raw body; returns status, content type and body text. */
  post(
    path: string,
    body: string,
    base?: string,
  ): Promise<{ status: number; type: string | null; body: string; headers: Headers }>
  /** A session logged in over JSON-RPC. */
  login(originator?: string): Promise<string>
  close(): Promise<void>
}

export interface JsonReply {
  jsonrpc?: string
  result?: unknown
  error?: { code: number; message: string; data: string[] } | string[] | null
  id: unknown
}

export async function start(
  pool: PoolDescription = { hosts: 2, vms: 2 },
  options: SimulatorOptions = {},
): Promise<Running> {
  const sim = createSimulator({ password: PASSWORD, pool, ...options })
  const l = await sim.listen({ port: 0 })
  const post = async (path: string, body: string, base = l.url) => {
    const r = await fetch(base + path, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text(), headers: r.headers }
  }
  const json = async (method: string, params: unknown[], base = l.url) => {
    const r = await post('/jsonrpc', JSON.stringify({ jsonrpc: '2.0', method, params, id: 7 }), base)
    assert.equal(r.status, 200, r.body)
    assert.equal(r.type, 'application/json')
    return JSON.parse(r.body) as JsonReply
  }
  let session = ''
  const ensure = async () => {
    if (!session) session = (await json('session.login_with_password', ['root', PASSWORD])).result as string
    return session
  }
  const running: Running = {
    sim,
    url: l.url,
    port: l.port,
    json,
    post,
    async ok<T>(method: string, ...params: unknown[]) {
      const r = await json(method, [await ensure(), ...params])
      assert.ok(!r.error, `${method} failed: ${JSON.stringify(r.error)}`)
      return r.result as T
    },
    async err(method: string, ...params: unknown[]) {
      const r = await json(method, [await ensure(), ...params])
      assert.ok(r.error && !Array.isArray(r.error), `${method} should have failed, got ${JSON.stringify(r.result)}`)
      const e = r.error as { message: string; data: string[] }
      return [e.message, ...e.data]
    },
    async login(originator = '') {
      const r = await json('session.login_with_password', ['root', PASSWORD, '1.1', originator])
      assert.ok(!r.error, JSON.stringify(r.error))
      return r.result as string
    },
    close: () => sim.close(),
  }
  return running
}

/** An XML-RPC methodCall with string/array params (what the tests send raw). */
export function xmlCall(method: string, params: string[]): string {
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params
    .map((p) => `<param>${p.startsWith('<value') ? p : `<value>${p}</value>`}</param>`)
    .join('')}</params></methodCall>`
}

/** Waits until `pred()` holds (polling the event loop), failing after `ms` (generous: a loaded 2-core machine). */
export async function until(pred: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
