/**
 * A tiny real HTTP(S) server speaking just enough XAPI (JSON-RPC on /jsonrpc, XML-RPC on /) for transport-level
 * tests: framing, fallback, timeouts, in-flight bounds and TLS. Behaviour tests of XAPI semantics run against
 * @xenstack/xapi-sim instead.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'

export type Handler = (method: string, params: unknown[]) => unknown | Promise<unknown>

export class XapiFailure {
  constructor(readonly description: string[]) {}
}

export interface FakeXapiOptions {
  /** Answer /jsonrpc with 404 (an XML-RPC-only server). */
  noJsonRpc?: boolean
  tls?: { key: string; cert: string }
}

export interface FakeXapi {
  url: string
  /** Every request seen: path, method name, params. */
  requests: { path: string; method: string; params: unknown[]; body: string }[]
  inFlight: number
  peakInFlight: number
  close(): Promise<void>
}

function xmlValue(v: unknown): string {
  if (v === null || v === undefined) return '<value></value>'
  if (typeof v === 'string') return `<value>${v.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</value>`
  if (typeof v === 'number') return Number.isInteger(v) ? `<value>${v}</value>` : `<value><double>${v}</double></value>`
  if (typeof v === 'boolean') return `<value><boolean>${v ? 1 : 0}</boolean></value>`
  if (Array.isArray(v)) return `<value><array><data>${v.map(xmlValue).join('')}</data></array></value>`
  return `<value><struct>${Object.entries(v as object)
    .map(([k, x]) => `<member><name>${k}</name>${xmlValue(x)}</member>`)
    .join('')}</struct></value>`
}

/** Very small XML-RPC methodCall reader: method name and untagged/string params (enough for these tests). */
function parseXmlCall(body: string): { method: string; params: unknown[] } {
  const method = /<methodName>([^<]*)<\/methodName>/.exec(body)?.[1] ?? ''
  const params: unknown[] = []
  for (const m of body.matchAll(/<param><value>(?:<string>)?([^<]*)/g)) params.push(m[1])
  return { method, params }
}

export async function startFakeXapi(handler: Handler, opts: FakeXapiOptions = {}): Promise<FakeXapi> {
  const state: FakeXapi = {
    url: '',
    requests: [],
    inFlight: 0,
    peakInFlight: 0,
    close: async () => undefined,
  }
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const path = req.url ?? '/'
        state.inFlight++
        state.peakInFlight = Math.max(state.peakInFlight, state.inFlight)
        try {
          if (path === '/jsonrpc') {
            if (opts.noJsonRpc) {
              res.writeHead(404, { 'content-type': 'text/html' }).end('<html>404</html>')
              return
            }
            const call = JSON.parse(body) as { method: string; params: unknown[]; id: number }
            state.requests.push({ path, method: call.method, params: call.params, body })
            let out: unknown
            try {
              out = { jsonrpc: '2.0', result: await handler(call.method, call.params), id: call.id }
            } catch (e) {
              if (!(e instanceof XapiFailure)) throw e
              const [code, ...data] = e.description
              out = { jsonrpc: '2.0', error: { code: 1, message: code, data }, id: call.id }
            }
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out))
            return
          }
          const call = parseXmlCall(body)
          state.requests.push({ path, method: call.method, params: call.params, body })
          let envelope: unknown
          try {
            envelope = { Status: 'Success', Value: await handler(call.method, call.params) }
          } catch (e) {
            if (!(e instanceof XapiFailure)) throw e
            envelope = { Status: 'Failure', ErrorDescription: e.description }
          }
          res
            .writeHead(200, { 'content-type': 'text/xml' })
            .end(
              `<?xml version="1.0"?><methodResponse><params><param>${xmlValue(envelope)}</param></params></methodResponse>`,
            )
        } catch (e) {
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
          res.end(String(e))
        } finally {
          state.inFlight--
        }
      })()
    })
  }
  const server: Server = opts.tls ? createHttpsServer(opts.tls, onRequest) : createHttpServer(onRequest)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  state.url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections?.()
      server.close(() => r())
    })
  return state
}

/** A login-aware handler wrapper: answers session.* itself and passes the rest on. */
export function withSessions(rest: Handler, password = 'secret'): Handler {
  let n = 0
  return async (method, params) => {
    if (method === 'session.login_with_password') {
      if (params[1] !== password) throw new XapiFailure(['SESSION_AUTHENTICATION_FAILED', String(params[0]), 'bad'])
      return `OpaqueRef:session-${++n}`
    }
    if (method === 'session.logout') return ''
    return rest(method, params)
  }
}
