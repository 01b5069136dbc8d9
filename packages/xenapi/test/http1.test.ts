/**
 * The RPC connection pool (http1.ts) and its answer reader (http1-parser.ts): framing read byte by byte, and the pool
 * against real sockets whose server side the test scripts — keep-alive reuse, servers that close (idle, mid-answer,
 * `Connection: close`), deadlines, aborts, the connection bound, idle expiry and closing the pool.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { defaultLogger, XapiTransportError } from '../src/index.js'
import { Http1Pool, Http1ProtocolError, Http1TimeoutError, SocketClosedError } from '../src/http1.js'
import { ResponseParser } from '../src/http1-parser.js'
import { transportFailureKind } from '../src/retry.js'

/** Feeds `text` to a fresh parser one byte at a time; returns the parser once the answer is complete. */
function parseByteByByte(text: string | Buffer): ResponseParser {
  const p = new ResponseParser()
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text)
  for (let i = 0; i < bytes.length; i++) {
    const done = p.feed(bytes.subarray(i, i + 1))
    assert.equal(done, i === bytes.length - 1, `complete only at the last byte (byte ${i})`)
  }
  return p
}

describe('ResponseParser', () => {
  test('Content-Length answer, fed whole and byte by byte, with a multi-byte character split across packets', () => {
    const body = '{"result":"naïve ☃ 𝄞"}'
    const answer = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
    const whole = new ResponseParser()
    assert.equal(whole.feed(Buffer.from(answer)), true)
    assert.deepEqual(
      [whole.status, whole.contentType, whole.body(), whole.keepAlive],
      [200, 'application/json', body, true],
    )
    const split = parseByteByByte(answer)
    assert.equal(split.body(), body)
  })

  test('chunked answers with extensions and trailers; interim 1xx answers are skipped', () => {
    const answer =
      'HTTP/1.1 100 Continue\r\n\r\n' +
      'HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n' +
      '5;name=value\r\n<a>xy\r\n' +
      'A\r\n0123456789\r\n' +
      '0\r\nX-Trailer: t\r\n\r\n'
    for (const p of [
      parseByteByByte(answer),
      (() => {
        const q = new ResponseParser()
        assert.equal(q.feed(Buffer.from(answer)), true)
        return q
      })(),
    ]) {
      assert.equal(p.status, 200)
      assert.equal(p.contentType, 'text/xml')
      assert.equal(p.body(), '<a>xy0123456789')
      assert.equal(p.keepAlive, true)
    }
  })

  test('a body without a length runs to the close; HTTP/1.0 and Connection: close are not reused', () => {
    const p = new ResponseParser()
    assert.equal(p.feed(Buffer.from('HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<partial')), false)
    assert.equal(p.feed(Buffer.from(' answer/>')), false)
    assert.equal(p.end(), true)
    assert.equal(p.body(), '<partial answer/>')
    assert.equal(p.keepAlive, false)

    const closing = parseByteByByte('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok')
    assert.equal(closing.keepAlive, false)
    const kept = parseByteByByte('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok')
    assert.equal(kept.keepAlive, true)
    const cut = new ResponseParser()
    cut.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort'))
    assert.equal(cut.end(), false, 'a Content-Length body cut short is not an answer')
  })

  test('the keep-alive hint, 204 without a body, and bytes past the answer', () => {
    const hinted = parseByteByByte('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=65, max=100\r\nContent-Length: 0\r\n\r\n')
    assert.equal(hinted.keepAliveHintMs, 65_000)
    const empty = parseByteByByte('HTTP/1.1 204 No Content\r\n\r\n')
    assert.equal(empty.body(), '')
    const extra = new ResponseParser()
    assert.equal(extra.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSURPRISE')), true)
    assert.equal(extra.body(), 'ok')
    assert.equal(extra.trailingGarbage, true)
    const both = parseByteByByte(
      'HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    )
    assert.equal(both.body(), 'ok', 'chunked wins over Content-Length')
    assert.equal(both.keepAlive, false, 'but the connection is not trusted afterwards')
  })

  test('what cannot be framed safely is an Http1ProtocolError naming the problem', () => {
    const cases: [string, RegExp][] = [
      ['SSH-2.0-OpenSSH_9.2\r\n\r\n', /not an HTTP\/1.x status line: "SSH-2.0/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n', /conflicting Content-Length/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', /bad Content-Length: "-1"/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n', /bad Content-Length: "2, 3"/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /bad chunk size: "zz"/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n', /chunk data longer than its size/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /malformed HTTP header line: "no colon here"/],
    ]
    for (const [text, message] of cases) {
      assert.throws(
        () => new ResponseParser().feed(Buffer.from(text)),
        (e: unknown) => {
          assert.ok(e instanceof Http1ProtocolError, String(e))
          assert.equal(e.code, 'ERR_XENAPI_HTTP_PROTOCOL')
          assert.match(e.message, message)
          return true
        },
      )
    }
    const big = new ResponseParser(1024)
    assert.throws(() => {
      big.feed(Buffer.from('HTTP/1.1 200 OK\r\n'))
      for (let i = 0; i < 100; i++) big.feed(Buffer.from(`X-Padding-${i}: ${'p'.repeat(20)}\r\n`))
    }, /head is larger than 1024 bytes/)
  })

  test('Content-Length answers equal ones listed twice (a proxy merging copies)', () => {
    assert.equal(parseByteByByte('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok').body(), 'ok')
  })
})

/** A real TCP server; `onRequest` gets each complete request (head and body) and the socket to answer on. */
interface ScriptedServer {
  url: string
  connections: number
  requests: { head: string; body: string }[]
  /** Sockets the server has seen closed by the client (or itself). */
  closed: number
  close(): Promise<void>
}

const servers: Server[] = []
after(() => {
  for (const s of servers) s.close()
})

async function scripted(onRequest: (socket: Socket, body: string, n: number) => void): Promise<ScriptedServer> {
  const state: ScriptedServer = {
    url: '',
    connections: 0,
    requests: [],
    closed: 0,
    close: () => new Promise((r) => server.close(() => r())),
  }
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    state.connections++
    sockets.add(socket)
    socket.on('close', () => {
      state.closed++
      sockets.delete(socket)
    })
    socket.on('error', () => undefined)
    let buf = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      for (;;) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.subarray(0, end).toString('latin1')
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0)
        if (buf.length < end + 4 + len) return
        const body = buf.subarray(end + 4, end + 4 + len).toString('utf8')
        buf = buf.subarray(end + 4 + len)
        state.requests.push({ head, body })
        onRequest(socket, body, state.requests.length)
      }
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const close = state.close
  state.close = async () => {
    for (const s of sockets) s.destroy()
    await close()
  }
  return state
}

const ok = (socket: Socket, body: string, extra = ''): void => {
  socket.write(
    `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
}

const logger = { ...defaultLogger, warn: () => undefined }
const waitFor = async (what: string, cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), `timed out waiting for ${what}`)
}

describe('Http1Pool', () => {
  test('one request per POST with the exact byte length; sequential calls reuse one keep-alive socket', async () => {
    const s = await scripted((socket, body) => ok(socket, `echo:${body}`))
    const pool = new Http1Pool(s.url, {}, logger)
    const a = await pool.post('/jsonrpc', 'application/json', '{"name":"☃"}', 5_000)
    const b = await pool.post('/', 'text/xml', '<x/>', Infinity) // no deadline, not a 1 ms one
    assert.deepEqual([a.status, a.contentType, a.body], [200, 'text/plain', 'echo:{"name":"☃"}'])
    assert.equal(b.body, 'echo:<x/>')
    assert.equal(s.connections, 1)
    assert.match(s.requests[0]!.head, /^POST \/jsonrpc HTTP\/1\.1\r\n/)
    assert.match(s.requests[0]!.head, /\r\nHost: 127\.0\.0\.1:\d+\r\n/)
    assert.match(s.requests[0]!.head, /\r\nContent-Length: 14$/) // ☃ is three bytes
    assert.match(s.requests[1]!.head, /^POST \/ HTTP\/1\.1\r\nHost: [^\r]+\r\nContent-Type: text\/xml\r\n/)
    await pool.destroy()
    await waitFor('the server to see the socket closed', () => s.closed === 1)
  })

  test('a socket the server closed while idle is dropped; the next call opens a new one', async () => {
    const s = await scripted((socket, body) => {
      ok(socket, body)
      socket.end() // answers, then closes, as a server at its idle limit does
    })
    const pool = new Http1Pool(s.url, {}, logger)
    assert.equal((await pool.post('/', 'text/xml', 'one', 5_000)).body, 'one')
    await waitFor('the client to notice the close', () => pool.connections === 0)
    assert.equal((await pool.post('/', 'text/xml', 'two', 5_000)).body, 'two')
    assert.equal(s.connections, 2)
    await pool.destroy()
  })

  test('Connection: close and a too-short Keep-Alive hint are honoured: no reuse', async () => {
    const s = await scripted((socket, body, n) =>
      ok(socket, body, n === 1 ? 'Connection: close\r\n' : 'Keep-Alive: timeout=1\r\n'),
    )
    const pool = new Http1Pool(s.url, {}, logger)
    for (const body of ['a', 'b', 'c']) assert.equal((await pool.post('/', 'text/xml', body, 5_000)).body, body)
    assert.equal(s.connections, 3)
    await pool.destroy()
  })

  test('a server closing mid-answer fails the call with a reset the session layer recognises', async () => {
    const s = await scripted((socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial')
      socket.destroy()
    })
    const pool = new Http1Pool(s.url, {}, logger)
    await assert.rejects(pool.post('/', 'text/xml', 'x', 5_000), (e: unknown) => {
      assert.ok(e instanceof SocketClosedError)
      assert.match(e.message, /closed the connection in the middle of an answer/)
      return true
    })
    const wrapped = new XapiTransportError('VM.get_record: failed', 'VM.get_record', s.url, undefined, {
      cause: new SocketClosedError('x'),
    })
    assert.equal(transportFailureKind(wrapped), 'reset')
    await pool.destroy()
  })

  test('a malformed answer fails the call with the protocol error and the socket is not reused', async () => {
    const s = await scripted((socket, body) =>
      body === 'bad' ? socket.write('HTTP/1.1 2xx nope\r\n\r\n') : ok(socket, body),
    )
    const pool = new Http1Pool(s.url, {}, logger)
    await assert.rejects(pool.post('/', 'text/xml', 'bad', 5_000), Http1ProtocolError)
    assert.equal((await pool.post('/', 'text/xml', 'good', 5_000)).body, 'good')
    assert.equal(s.connections, 2)
    await pool.destroy()
  })

  test('a call past its deadline fails with Http1TimeoutError and closes its socket; an abort likewise', async () => {
    const s = await scripted(() => undefined) // never answers
    const pool = new Http1Pool(s.url, {}, logger)
    await assert.rejects(pool.post('/', 'text/xml', 'slow', 100), (e: unknown) => {
      assert.ok(e instanceof Http1TimeoutError)
      assert.match(e.message, /no answer within 100 ms/)
      return true
    })
    await waitFor('the timed-out socket to close', () => s.closed === 1)
    const ac = new AbortController()
    const p = pool.post('/', 'text/xml', 'aborted', 60_000, ac.signal)
    await waitFor('the second request', () => s.requests.length === 2)
    ac.abort(new Error('caller gave up'))
    await assert.rejects(p, /caller gave up/)
    await waitFor('the aborted socket to close', () => s.closed === 2)
    await assert.rejects(pool.post('/', 'text/xml', 'x', 1_000, ac.signal), /caller gave up/)
    assert.equal(s.requests.length, 2, 'an already-aborted signal sends nothing')
    await pool.destroy()
  })

  test('connections: 1 queues calls onto the one socket in order', async () => {
    const s = await scripted((socket, body) => setTimeout(() => ok(socket, body), 5))
    const pool = new Http1Pool(s.url, { connections: 1 }, logger)
    const answers = await Promise.all(['1', '2', '3', '4'].map((b) => pool.post('/', 'text/xml', b, 5_000)))
    assert.deepEqual(
      answers.map((a) => a.body),
      ['1', '2', '3', '4'],
    )
    assert.equal(s.connections, 1)
    assert.deepEqual(
      s.requests.map((r) => r.body),
      ['1', '2', '3', '4'],
    )
    await pool.destroy()
  })

  test('idle sockets close after keepAliveTimeout', async () => {
    const s = await scripted((socket, body) => ok(socket, body))
    const pool = new Http1Pool(s.url, { keepAliveTimeout: 50 }, logger)
    await pool.post('/', 'text/xml', 'x', 5_000)
    await waitFor('the idle socket to close', () => s.closed === 1 && pool.connections === 0)
    await pool.destroy()
  })

  test('a refused connection keeps its code (the session layer retries only once the pool has answered)', async () => {
    const s = await scripted(() => undefined)
    await s.close()
    const pool = new Http1Pool(s.url, {}, logger)
    await assert.rejects(pool.post('/', 'text/xml', 'x', 5_000), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'ECONNREFUSED')
      return true
    })
    await pool.destroy()
  })

  test('close() lets the call in flight finish and refuses new ones; destroy() fails calls in flight', async () => {
    const s = await scripted((socket, body) => setTimeout(() => ok(socket, body), 50))
    const pool = new Http1Pool(s.url, {}, logger)
    const inFlight = pool.post('/', 'text/xml', 'finishing', 5_000)
    await waitFor('the request', () => s.requests.length === 1)
    const closed = pool.close()
    await assert.rejects(pool.post('/', 'text/xml', 'late', 5_000), /is closed/)
    assert.equal((await inFlight).body, 'finishing')
    await closed
    assert.equal(pool.connections, 0)

    const never = await scripted(() => undefined)
    const pool2 = new Http1Pool(never.url, {}, logger)
    const stuck = pool2.post('/', 'text/xml', 'stuck', 60_000)
    await waitFor('the request', () => never.requests.length === 1)
    await pool2.destroy()
    await assert.rejects(stuck, SocketClosedError)
  })

  test('idle keep-alive sockets do not keep the process alive', async () => {
    const s = await scripted((socket, body) => ok(socket, body))
    const here = fileURLToPath(new URL('../src/http1.js', import.meta.url))
    // The child makes a call and never closes the pool (keepAliveTimeout 10 minutes): it must still exit.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Http1Pool } from ${JSON.stringify(here)}
         const pool = new Http1Pool(${JSON.stringify(s.url)}, { keepAliveTimeout: 600000 }, console)
         const a = await pool.post('/', 'text/xml', 'from child', 5000)
         console.log(a.body, pool.connections)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null]
    clearTimeout(killer)
    assert.equal(signal, null, 'the child had to be killed: an idle socket kept it alive')
    assert.equal(code, 0)
    assert.equal(out.trim(), 'from child 1', 'it exited with its keep-alive socket still open')
  })
})
