/**
 * The XAPI port's HTTP/1.1 layer from raw sockets: the lean RPC reader (split packets, pipelining, Connection: close,
 * half-close) and its hand-over to node:http for everything else (chunked bodies, 100-continue, routes, bad requests,
 * oversized heads), also in the middle of a keep-alive connection.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { parseHead, responseText, RpcConnection } from '../src/http-wire.js'
import { start, PASSWORD, type Running } from './core/rpc.js'

interface Response {
  status: number
  headers: Map<string, string>
  body: string
}

/** Parses complete HTTP/1.1 responses from `bytes`; the rest (an incomplete one) is ignored. */
function parseResponses(bytes: Buffer, closed: boolean): Response[] {
  const out: Response[] = []
  let at = 0
  for (;;) {
    const he = bytes.indexOf('\r\n\r\n', at)
    if (he < 0) return out
    const [statusLine, ...fields] = bytes.toString('latin1', at, he).split('\r\n')
    const headers = new Map<string, string>()
    for (const f of fields) {
      const i = f.indexOf(':')
      headers.set(f.slice(0, i).toLowerCase(), f.slice(i + 1).trim())
    }
    const status = Number(statusLine.split(' ')[1])
    let bodyAt = he + 4
    let body: string
    if (status === 100) {
      body = ''
    } else if (headers.has('content-length')) {
      const end = bodyAt + Number(headers.get('content-length'))
      if (end > bytes.length) return out
      body = bytes.toString('utf8', bodyAt, end)
      bodyAt = end
    } else if (headers.get('transfer-encoding') === 'chunked') {
      const parts: Buffer[] = []
      for (;;) {
        const le = bytes.indexOf('\r\n', bodyAt)
        if (le < 0) return out
        const size = parseInt(bytes.toString('latin1', bodyAt, le), 16)
        if (le + 2 + size + 2 > bytes.length) return out
        parts.push(bytes.subarray(le + 2, le + 2 + size))
        bodyAt = le + 2 + size + 2
        if (size === 0) break
      }
      body = Buffer.concat(parts).toString('utf8')
    } else {
      if (!closed) return out
      body = bytes.toString('utf8', bodyAt)
      bodyAt = bytes.length
    }
    out.push({ status, headers, body })
    at = bodyAt
  }
}

/** A raw keep-alive client: writes exact bytes, reads responses as they come. */
class RawClient {
  private bytes = Buffer.alloc(0)
  closed = false
  private readonly socket: Socket
  private readonly connected: Promise<void>

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1')
    this.socket.setNoDelay(true)
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
    this.socket.on('data', (d: Buffer) => (this.bytes = Buffer.concat([this.bytes, d])))
    this.socket.on('error', () => undefined)
    this.socket.on('close', () => (this.closed = true))
  }

  async write(data: string | Buffer): Promise<void> {
    await this.connected
    await new Promise<void>((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())))
  }

  /** Half-closes (FIN) the client side. */
  end(): void {
    this.socket.end()
  }

  responses(): Response[] {
    return parseResponses(this.bytes, this.closed)
  }

  /** Waits (with a generous deadline, for loaded machines) until `n` responses arrived; returns them. */
  async waitFor(n: number, what: string): Promise<Response[]> {
    const deadline = Date.now() + 20_000
    while (this.responses().length < n) {
      if (Date.now() > deadline || (this.closed && this.responses().length < n))
        assert.fail(`${what}: expected ${n} response(s), got ${this.bytes.toString('latin1').slice(0, 600)}`)
      await new Promise((r) => setTimeout(r, 5))
    }
    return this.responses()
  }

  async waitClosed(what: string): Promise<void> {
    const deadline = Date.now() + 20_000
    while (!this.closed) {
      if (Date.now() > deadline) assert.fail(`${what}: the server did not close the connection`)
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  destroy(): void {
    this.socket.destroy()
  }
}

function jsonRequest(method: string, params: unknown[], id: number, extra = ''): string {
  const body = JSON.stringify({ jsonrpc: '2.0', method, params, id })
  return (
    `POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  )
}

function xmlRequest(method: string, params: string[]): string {
  const body =
    `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>` +
    params.map((p) => `<param><value>${p}</value></param>`).join('') +
    '</params></methodCall>'
  return `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

let shared: Running | undefined
async function sim(): Promise<Running> {
  shared ??= await start({ hosts: 1, vms: 1 })
  return shared
}
test.after(() => shared?.close())

test('parseHead: only plain HTTP/1.1 POSTs with one Content-Length and a Host are the fast path', () => {
  const ok = 'POST /jsonrpc HTTP/1.1\r\nHost: a\r\nContent-Length: 12'
  assert.deepEqual(parseHead(ok), { path: '/jsonrpc', contentLength: 12, close: false })
  assert.deepEqual(parseHead('POST /?x=1 HTTP/1.1\r\nhost:a\r\ncontent-length:0\r\nConnection: close'), {
    path: '/?x=1',
    contentLength: 0,
    close: true,
  })
  const refused = [
    'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0',
    'POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 0',
    'POST / HTTP/1.1\r\nContent-Length: 0', // no Host: node:http answers 400
    'POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0',
    'POST / HTTP/1.1\r\nHost: a', // no Content-Length
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-continue',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nUpgrade: h2c\r\nConnection: Upgrade',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: keep-alive, TE',
    'POST / HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\nContent-Length: 1',
    'POST / HTTP/1.1\r\nHost: a\r\n folded\r\nContent-Length: 1',
    'POST / HTTP/1.1\r\nHost: a\nX: y\r\nContent-Length: 1',
    'POST / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\nContent-Length: 1',
    'POST  / HTTP/1.1\r\nHost: a\r\nContent-Length: 1',
    'POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1',
  ]
  for (const h of refused) assert.equal(parseHead(h), undefined, JSON.stringify(h))
  // The answer has node:http's fields in node:http's order.
  assert.match(
    responseText(200, 'text/xml', 'é', false),
    /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/xml\r\naccess-control-allow-origin: \*\r\ncontent-length: 2\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=65\r\n\r\né$/,
  )
})

test('split packets: a request arriving byte by byte and a body split inside a UTF-8 character', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  try {
    const login = jsonRequest('session.login_with_password', ['root', PASSWORD], 1)
    for (const ch of login) await c.write(ch)
    const [first] = await c.waitFor(1, 'login byte by byte')
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('connection'), 'keep-alive')
    const session = (JSON.parse(first.body) as { result: string }).result
    assert.match(session, /^OpaqueRef:/)
    // A name with multi-byte characters, the body cut in the middle of one, the head cut before its CRLFCRLF.
    const vm = r.sim.db.find('VM', (v) => v.name_label === 'vm-1')!
    const name = 'ünïcødé ☃ name'
    const req = Buffer.from(jsonRequest('VM.set_name_label', [session, vm, name], 2))
    const snow = req.indexOf(Buffer.from('☃'))
    const headEnd = req.indexOf('\r\n\r\n')
    await c.write(req.subarray(0, headEnd + 2))
    await new Promise((res) => setTimeout(res, 20))
    await c.write(req.subarray(headEnd + 2, snow + 1))
    await new Promise((res) => setTimeout(res, 20))
    await c.write(req.subarray(snow + 1))
    const [, second] = await c.waitFor(2, 'split body')
    assert.deepEqual(JSON.parse(second.body), { jsonrpc: '2.0', result: '', id: 2 })
    assert.equal(r.sim.db.get(vm)!.name_label, name)
  } finally {
    c.destroy()
  }
})

test('pipelining: answers come in request order, also behind a call that blocks (event.from)', async () => {
  const r = await sim()
  const session = await r.login('pipelining')
  const c = new RawClient(r.port)
  try {
    const token = (await r.ok<{ token: string }>('event.from', ['pool'], '', 0)).token
    const before = { ...r.sim.http.wireStats }
    // event.from on a class nothing changes in blocks for its 0.3 s timeout; the two calls after it are instant.
    await c.write(
      jsonRequest('event.from', [session, ['pbd'], token, 0.3], 1) +
        jsonRequest('system.listMethods', [], 2) +
        xmlRequest('session.get_this_host', [session, session]),
    )
    const rs = await c.waitFor(3, 'three pipelined requests')
    assert.deepEqual(
      rs.map((x) => x.status),
      [200, 200, 200],
    )
    assert.equal(JSON.parse(rs[0].body).id, 1)
    assert.ok(Array.isArray(JSON.parse(rs[0].body).result.events), rs[0].body)
    assert.equal(JSON.parse(rs[1].body).id, 2)
    assert.equal(rs[2].headers.get('content-type'), 'text/xml')
    assert.match(rs[2].body, /<value>Success<\/value>.*OpaqueRef:/)
    // All three were the lean reader's; nothing went to node:http.
    assert.deepEqual(r.sim.http.wireStats, { leanAnswers: before.leanAnswers + 3, handedOff: before.handedOff })
  } finally {
    c.destroy()
  }
})

test('answers to several connections at once (written together per turn) each go to their own client, in order', async () => {
  const r = await sim()
  const session = await r.login('batched')
  const token = (await r.ok<{ token: string }>('event.from', ['pool'], '', 0)).token
  const clients = Array.from({ length: 6 }, () => new RawClient(r.port))
  try {
    // Every client sends at the same moment, so the server reads several connections in one turn and their answers
    // alternate between connections (the path that queues writes to the end of the turn). Client 0 starts with a
    // blocking event.from whose answer comes turns later, with a call pipelined behind it; client 1 closes with
    // Connection: close; client 2 half-closes after its requests; the rest pipeline three calls each.
    await Promise.all(
      clients.map((c, i) => {
        if (i === 0)
          return c.write(
            jsonRequest('event.from', [session, ['pbd'], token, 0.3], 100) + jsonRequest('system.listMethods', [], 101),
          )
        if (i === 1)
          return c.write(jsonRequest('session.get_this_host', [session, session], 110, 'Connection: close\r\n'))
        return c.write(
          jsonRequest('session.get_this_host', [session, session], i * 10) +
            xmlRequest('session.get_this_host', [session, session]) +
            jsonRequest('system.listMethods', [], i * 10 + 2),
        )
      }),
    )
    clients[2].end()
    for (let i = 2; i < clients.length; i++) {
      const rs = await clients[i].waitFor(3, `client ${i}`)
      assert.equal(rs.length, 3)
      assert.equal(JSON.parse(rs[0].body).id, i * 10)
      assert.match(JSON.parse(rs[0].body).result as string, /^OpaqueRef:/)
      assert.equal(rs[1].headers.get('content-type'), 'text/xml')
      assert.match(rs[1].body, /<value>Success<\/value>.*OpaqueRef:/)
      assert.equal(JSON.parse(rs[2].body).id, i * 10 + 2)
    }
    await clients[2].waitClosed('the half-closed client')
    await clients[1].waitClosed('Connection: close')
    assert.deepEqual(
      clients[1].responses().map((x) => [x.headers.get('connection'), JSON.parse(x.body).id]),
      [['close', 110]],
    )
    const rs0 = await clients[0].waitFor(2, 'event.from, then a call behind it')
    assert.deepEqual(
      rs0.map((x) => JSON.parse(x.body).id),
      [100, 101],
    )
    assert.ok(Array.isArray(JSON.parse(rs0[0].body).result.events), rs0[0].body)
  } finally {
    for (const c of clients) c.destroy()
  }
})

test('Connection: close is answered with Connection: close and the connection ends; nothing after it is read', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  try {
    await c.write(
      jsonRequest('system.listMethods', [], 1, 'Connection: close\r\n') + jsonRequest('system.listMethods', [], 2),
    )
    await c.waitClosed('Connection: close')
    const rs = c.responses()
    assert.equal(rs.length, 1)
    assert.equal(rs[0].headers.get('connection'), 'close')
    assert.equal(JSON.parse(rs[0].body).id, 1)
  } finally {
    c.destroy()
  }
})

test('a client that half-closes after a pipelined request still gets every answer, then the end', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  try {
    await c.write(jsonRequest('system.listMethods', [], 1) + jsonRequest('system.listMethods', [], 2))
    c.end()
    await c.waitClosed('half-close')
    assert.deepEqual(
      c.responses().map((x) => JSON.parse(x.body).id),
      [1, 2],
    )
  } finally {
    c.destroy()
  }
})

test('node:http takes over mid-connection: chunked body, Expect: 100-continue, a GET, then RPCs again', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  try {
    const before = { ...r.sim.http.wireStats }
    await c.write(jsonRequest('system.listMethods', [], 1))
    await c.waitFor(1, 'fast-path request')
    assert.equal(r.sim.http.wireStats.leanAnswers, before.leanAnswers + 1)
    // A chunked JSON-RPC body: not the fast path's, node:http's chunked decoding serves it on the same connection.
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'system.listMethods', params: [], id: 2 })
    const half = Math.floor(body.length / 2)
    await c.write(
      'POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${half.toString(16)}\r\n${body.slice(0, half)}\r\n${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`,
    )
    const [, chunked] = await c.waitFor(2, 'chunked request')
    assert.equal(chunked.status, 200)
    assert.equal(JSON.parse(chunked.body).id, 2)
    assert.equal(r.sim.http.wireStats.handedOff, before.handedOff + 1, 'the chunked request moved the connection')
    // 100-continue: the interim response first, then the answer.
    const x = xmlRequest('system.listMethods', []).replace('\r\n\r\n', '\r\nExpect: 100-continue\r\n\r\n')
    const headEnd = x.indexOf('\r\n\r\n') + 4
    await c.write(x.slice(0, headEnd))
    const rs = await c.waitFor(3, '100 Continue')
    assert.equal(rs[2].status, 100)
    await c.write(x.slice(headEnd))
    const [, , , xml] = await c.waitFor(4, 'answer after 100 Continue')
    assert.equal(xml.status, 200)
    assert.match(xml.body, /<value>session\.login_with_password<\/value>/)
    // A GET nobody serves: 404 from node:http; the connection stays usable for RPC.
    await c.write('GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    const [, , , , notFound] = await c.waitFor(5, 'GET')
    assert.equal(notFound.status, 404)
    await c.write(jsonRequest('system.listMethods', [], 6))
    const all = await c.waitFor(6, 'RPC after the hand-over')
    assert.equal(JSON.parse(all[5].body).id, 6)
    assert.equal(c.closed, false)
    // From the hand-over on, node:http answers this connection (the lean reader answered only the first request).
    assert.deepEqual(r.sim.http.wireStats, { leanAnswers: before.leanAnswers + 1, handedOff: before.handedOff + 1 })
  } finally {
    c.destroy()
  }
})

test('bad requests get 400 and the connection is closed, also after good ones; oversized heads get 431', async () => {
  const r = await sim()
  const cases: [string, string, number][] = [
    ['a bad header line', 'POST / HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\nContent-Length: 0\r\n\r\n', 400],
    ['two Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 2\r\n\r\nxx', 400],
    ['no Host', 'POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n', 400],
    ['garbage', 'HELLO\r\n\r\n', 400],
    [
      'a 20 KiB header',
      `POST / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20 * 1024)}\r\nContent-Length: 0\r\n\r\n`,
      431,
    ],
    ['a 20 KiB head without its end', `POST / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20 * 1024)}`, 431],
  ]
  for (const [what, bytes, status] of cases) {
    const c = new RawClient(r.port)
    try {
      await c.write(jsonRequest('system.listMethods', [], 1))
      await c.waitFor(1, `${what}: the good request first`)
      await c.write(bytes)
      await c.waitClosed(what)
      const rs = c.responses()
      assert.equal(rs.length, 2, `${what}: ${rs.map((x) => x.status).join(',')}`)
      assert.equal(rs[1].status, status, what)
      assert.equal(rs[1].headers.get('connection'), 'close', what)
    } finally {
      c.destroy()
    }
  }
})

test('a route and fault middleware take the request to node:http; RPCs on the same connection still work', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  const seen: string[] = []
  const removeRoute = r.sim.http.route('POST', '/claimed', (req, res) => {
    seen.push(req.url ?? '')
    res.writeHead(201, { 'content-length': '2' })
    res.end('ok')
  })
  try {
    await c.write(xmlRequest('system.listMethods', []))
    await c.waitFor(1, 'XML-RPC')
    await c.write('POST /claimed?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi')
    const [, routed] = await c.waitFor(2, 'routed POST')
    assert.equal(routed.status, 201)
    assert.deepEqual(seen, ['/claimed?x=1'])
    await c.write(jsonRequest('system.listMethods', [], 3))
    const rs = await c.waitFor(3, 'RPC after a route')
    assert.equal(JSON.parse(rs[2].body).id, 3)
  } finally {
    removeRoute()
    c.destroy()
  }
  // Middleware (as fault injection installs it) sees every request, including the first one of a new connection.
  const c2 = new RawClient(r.port)
  const removeMw = r.sim.http.use((req, res) => {
    if (req.headers['x-fail'] !== 'yes') return false
    res.writeHead(500, { 'content-length': '0' })
    res.end()
    return true
  })
  try {
    await c2.write(jsonRequest('system.listMethods', [], 1, 'X-Fail: yes\r\n'))
    const [failed] = await c2.waitFor(1, 'middleware')
    assert.equal(failed.status, 500)
    await c2.write(jsonRequest('system.listMethods', [], 2))
    const [, passed] = await c2.waitFor(2, 'through middleware')
    assert.equal(JSON.parse(passed.body).id, 2)
  } finally {
    removeMw()
    c2.destroy()
  }
})

test('leanRpc = false: every new request goes to node:http, with the same answers', async () => {
  const r = await sim()
  const before = { ...r.sim.http.wireStats }
  r.sim.http.leanRpc = false
  const c = new RawClient(r.port)
  try {
    await c.write(jsonRequest('system.listMethods', [], 1) + jsonRequest('system.listMethods', [], 2))
    const rs = await c.waitFor(2, 'two requests through node:http')
    assert.deepEqual(
      rs.map((x) => [x.status, x.headers.get('content-type'), JSON.parse(x.body).id]),
      [
        [200, 'application/json', 1],
        [200, 'application/json', 2],
      ],
    )
    assert.deepEqual(r.sim.http.wireStats, { leanAnswers: before.leanAnswers, handedOff: before.handedOff + 1 })
  } finally {
    r.sim.http.leanRpc = true
    c.destroy()
  }
})

test('a hand-over waits for earlier answers: blocking call, then a chunked request, then the client half-closes', async () => {
  const r = await sim()
  const session = await r.login('hand-over-order')
  const token = (await r.ok<{ token: string }>('event.from', ['pool'], '', 0)).token
  const c = new RawClient(r.port)
  try {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'system.listMethods', params: [], id: 2 })
    await c.write(
      jsonRequest('event.from', [session, ['pbd'], token, 0.3], 1) +
        'POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    )
    c.end()
    await c.waitClosed('half-close after the hand-over')
    const rs = c.responses()
    assert.deepEqual(
      rs.map((x) => [x.status, JSON.parse(x.body).id]),
      [
        [200, 1],
        [200, 2],
      ],
    )
    assert.ok(Array.isArray(JSON.parse(rs[0].body).result.events), rs[0].body)
  } finally {
    c.destroy()
  }
})

test('a request for node:http sent with the FIN in one go is answered before the close', async () => {
  const r = await sim()
  const c = new RawClient(r.port)
  try {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'system.listMethods', params: [], id: 7 })
    await c.write(
      'POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    )
    c.end()
    await c.waitClosed('chunked request, then FIN')
    assert.deepEqual(
      c.responses().map((x) => [x.status, JSON.parse(x.body).id]),
      [[200, 7]],
    )
  } finally {
    c.destroy()
  }
})

test('a head or a body that trickles in past its deadline closes the connection; a later split head is not affected', async () => {
  const r = await sim()
  const saved = [RpcConnection.headersTimeoutMs, RpcConnection.requestTimeoutMs]
  RpcConnection.headersTimeoutMs = 300
  RpcConnection.requestTimeoutMs = 300
  try {
    const req = jsonRequest('system.listMethods', [], 1)
    const headEnd = req.indexOf('\r\n\r\n') + 4
    for (const [what, cut] of [
      ['head', 20],
      ['body', headEnd + 5],
    ] as const) {
      const c = new RawClient(r.port)
      try {
        await c.write(req.slice(0, cut))
        // A byte every 100 ms keeps the connection from being idle, but the request is not complete in time.
        for (let i = cut; i < cut + 8 && !c.closed; i++) {
          await new Promise((res) => setTimeout(res, 100))
          await c.write(req[i]).catch(() => undefined)
        }
        await c.waitClosed(`a ${what} past its deadline`)
        assert.equal(c.responses().length, 0, what)
      } finally {
        c.destroy()
      }
    }
    // The deadline runs from the head's first byte: a connection that answered a split head long ago still serves
    // the next split head.
    const c = new RawClient(r.port)
    try {
      const pause = () => new Promise((res) => setTimeout(res, 30))
      await c.write(req.slice(0, 20))
      await pause()
      await c.write(req.slice(20))
      await c.waitFor(1, 'first split head')
      await new Promise((res) => setTimeout(res, 400))
      await c.write(req.slice(0, 20))
      await pause()
      await c.write(req.slice(20))
      const rs = await c.waitFor(2, 'second split head, later than the deadline after the first')
      assert.equal(rs[1].status, 200)
    } finally {
      c.destroy()
    }
  } finally {
    ;[RpcConnection.headersTimeoutMs, RpcConnection.requestTimeoutMs] = saved
  }
})

test('an idle keep-alive connection is closed after the idle timeout; one waiting for its answer is not', async () => {
  const r = await sim()
  const saved = RpcConnection.idleTimeoutMs
  RpcConnection.idleTimeoutMs = 1000
  const idle = new RawClient(r.port)
  const waiting = new RawClient(r.port)
  try {
    await idle.write(jsonRequest('session.login_with_password', ['root', PASSWORD], 1))
    const session = (JSON.parse((await idle.waitFor(1, 'login'))[0].body) as { result: string }).result
    const t0 = Date.now()
    // event.from blocks 3 s (nothing changes in the pool's VMs meanwhile): longer than the idle timeout.
    await waiting.write(jsonRequest('event.from', [session, ['pool'], '', 0.1], 2))
    const token = (JSON.parse((await waiting.waitFor(1, 'first event.from'))[0].body) as { result: { token: string } })
      .result.token
    await waiting.write(jsonRequest('event.from', [session, ['pool'], token, 3.0], 3))
    await idle.waitClosed('idle connection')
    const idleFor = Date.now() - t0
    assert.ok(idleFor >= 900, `closed after ${idleFor} ms, before the idle timeout`)
    assert.equal(waiting.closed, false, 'the connection waiting for event.from was closed')
    const [, answer] = await waiting.waitFor(2, 'blocked event.from')
    assert.equal(answer.status, 200)
    assert.deepEqual((JSON.parse(answer.body) as { result: { events: unknown[] } }).result.events, [])
    // Once answered, it is idle too.
    await waiting.waitClosed('connection idle after its answer')
  } finally {
    RpcConnection.idleTimeoutMs = saved
    idle.destroy()
    waiting.destroy()
  }
})
