// Hostile input: XML-RPC and JSON-RPC request bodies to the XAPI simulator over real HTTP (keep-alive). Bodies are
// mutated real calls (login, getters, VM.start, event.from, unknown methods) or generated junk. Every answer is a
// well-formed XAPI response (HTTP 200 with the Success/Failure envelope, or JSON-RPC's result/error) or XAPI's
// transport error (HTTP 500 "Malformed_method_request", as xapi-protocol.md §3.3 says) or a 4xx; an answer the
// simulator produced from an internal exception fails the case; and the server keeps answering a real login.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { startSimServer } from '@xenstack/xapi-sim'
import {
  fuzz,
  formatFuzzStats,
  isFullRun,
  JSON_TOKENS,
  mutateText,
  randomString,
  randomValue,
  type Rng,
} from '@xenstack/testkit'

const PASSWORD = 'Fuzz-Passw0rd'
const agent = new Agent({ keepAlive: true, maxSockets: 1 })

function post(url: string, path: string, body: string): Promise<{ status: number; text: string }> {
  const u = new URL(path, url)
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      { method: 'POST', agent, headers: { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    // a hang detector, as generous as the fuzz runner's 30 s hang limit (an answer takes ms, seconds under load)
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
    req.end(body)
  })
}

const xmlValue = (v: unknown): string =>
  typeof v === 'string'
    ? `<value><string>${v.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</string></value>`
    : typeof v === 'number'
      ? `<value><${Number.isInteger(v) ? 'int' : 'double'}>${v}</${Number.isInteger(v) ? 'int' : 'double'}></value>`
      : typeof v === 'boolean'
        ? `<value><boolean>${v ? 1 : 0}</boolean></value>`
        : Array.isArray(v)
          ? `<value><array><data>${v.map(xmlValue).join('')}</data></array></value>`
          : v && typeof v === 'object'
            ? `<value><struct>${Object.entries(v)
                .map(
                  ([k, x]) =>
                    `<member><name>${k.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</name>${xmlValue(x)}</member>`,
                )
                .join('')}</struct></value>`
            : '<value><nil/></value>'
const xmlCall = (method: string, params: unknown[]) =>
  `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params
    .map((p) => `<param>${xmlValue(p)}</param>`)
    .join('')}</params></methodCall>`

const METHODS = [
  'session.login_with_password',
  'session.logout',
  'VM.get_all',
  'VM.get_all_records',
  'VM.start',
  'VM.get_record',
  'host.get_all',
  'event.from',
  'pool.get_all_records',
  'system.listMethods',
  'Async.VM.start',
  'VM_get_all',
  'task.create',
  'No.such_method',
  '',
]
const XML_TOKENS = [
  '<value>',
  '</value>',
  '<struct>',
  '<member>',
  '<name>',
  '<array><data>',
  '<i4>',
  '<int>99999999999999999999</int>',
  '<double>NaN</double>',
  '<dateTime.iso8601>x</dateTime.iso8601>',
  '<base64>!!</base64>',
  '&amp;',
  '&#0;',
  '&bogus;',
  '<![CDATA[',
  '<!DOCTYPE x [<!ENTITY e "x">]>',
  '<!--',
  '<',
  '>',
  '/',
]
// JSON-RPC's envelope members, spliced where they do not belong.
const JSONRPC_TOKENS = [...JSON_TOKENS, '"jsonrpc":"2.0",', '"id":', '"params":', '"method":']

function params(rng: Rng, session: string): unknown[] {
  const ps = Array.from({ length: rng.int(0, 3) }, () => randomValue(rng, 2))
  if (rng.chance(0.6)) ps.unshift(rng.chance(0.8) ? session : 'OpaqueRef:' + randomString(rng, 10))
  return ps
}

function body(rng: Rng, session: string): { path: string; text: string } {
  const method = rng.chance(0.9) ? rng.pick(METHODS) : randomString(rng, 20)
  if (rng.chance(0.5)) {
    const valid = xmlCall(method, method === 'session.login_with_password' ? ['root', PASSWORD] : params(rng, session))
    return { path: '/', text: rng.chance(0.4) ? valid : mutateText(rng, valid, XML_TOKENS) }
  }
  const call: Record<string, unknown> = { method, params: params(rng, session), id: rng.pick([1, 'x', 0]) }
  if (rng.chance(0.5)) call.jsonrpc = '2.0'
  const valid = JSON.stringify(call)
  return { path: '/jsonrpc', text: rng.chance(0.4) ? valid : mutateText(rng, valid, JSONRPC_TOKENS) }
}

/** True when the answer is one XAPI can give: an envelope, a Malformed_method_request page or a 4xx. */
function checkAnswer(path: string, r: { status: number; text: string }, sent: string): string {
  const ctx = `for ${JSON.stringify(sent.slice(0, 300))}: HTTP ${r.status} ${r.text.slice(0, 300)}`
  if (r.status >= 400 && r.status < 500) return 'http-4xx'
  if (r.status === 500) {
    assert.match(
      r.text,
      /^<html><body><h1>HTTP 500<\/h1>Malformed_method_request/,
      `a 500 that is not XAPI's transport error ${ctx}`,
    )
    return 'malformed'
  }
  assert.equal(r.status, 200, ctx)
  if (path === '/jsonrpc') {
    const j = JSON.parse(r.text) as Record<string, unknown>
    assert.ok('id' in j && ('result' in j || 'error' in j), `a JSON-RPC envelope ${ctx}`)
    return j.error === null || j.error === undefined ? 'success' : 'xapi-error'
  }
  assert.match(r.text, /^<\?xml version="1.0"\?>\s*<methodResponse><params><param>/, `an XML-RPC methodResponse ${ctx}`)
  if (r.text.includes('<name>Status</name><value>Failure</value>')) return 'xapi-error'
  return 'success'
}

test('XAPI simulator: 10,000 hostile XML-RPC and JSON-RPC bodies over HTTP get XAPI answers; it keeps serving', async (t) => {
  const sim = await startSimServer({ hosts: 1, vms: 2, password: PASSWORD })
  t.after(async () => {
    agent.destroy()
    await sim.close()
  })
  const login = async () => {
    const r = await post(
      sim.url,
      '/jsonrpc',
      JSON.stringify({ method: 'session.login_with_password', params: ['root', PASSWORD], id: 1 }),
    )
    assert.equal(r.status, 200)
    return (JSON.parse(r.text) as { result: string }).result
  }
  const session = await login()
  assert.match(session, /^OpaqueRef:/)
  const stats = await fuzz({
    name: 'XAPI RPC bodies',
    seed: 14,
    budgetMs: 10_000, // CPU time per case, client and the in-process simulator together
    run: async (rng) => {
      const b = body(rng, session)
      return checkAnswer(b.path, await post(sim.url, b.path, b.text), b.text)
    },
  })
  console.log(formatFuzzStats(stats))
  // Still serving: a fresh login and a call on it.
  const fresh = await login()
  const r = await post(sim.url, '/jsonrpc', JSON.stringify({ method: 'VM.get_all', params: [fresh], id: 2 }))
  assert.ok(Array.isArray((JSON.parse(r.text) as { result: unknown }).result))
  if (isFullRun(stats)) assert.ok((stats.outcomes['success'] ?? 0) > stats.cases / 50)
  if (isFullRun(stats)) assert.ok((stats.outcomes['malformed'] ?? 0) > stats.cases / 20)
})
