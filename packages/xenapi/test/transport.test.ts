/**
 * Transport-level behaviour against a real HTTP(S) server written in the test (fake-xapi.ts): request framing on
 * both transports, auto fallback, call timeouts, the in-flight bound, TLS verification and secret redaction.
 */
import assert from 'node:assert/strict'
import { inspect } from 'node:util'
import { after, describe, test } from 'node:test'
import { hasExecutable, makeSelfSignedCert, requirePrerequisite } from '@xenstack/testkit'
import {
  CertificatePinError,
  XapiTimeoutError,
  XapiTransportError,
  XenAPIError,
  connect,
  type Logger,
} from '../src/index.js'
import { XapiFailure, startFakeXapi, withSessions, type FakeXapi } from './fake-xapi.js'

const servers: FakeXapi[] = []
after(async () => {
  await Promise.all(servers.map((s) => s.close()))
})

async function fake(...args: Parameters<typeof startFakeXapi>): Promise<FakeXapi> {
  const s = await startFakeXapi(...args)
  servers.push(s)
  return s
}

const vmRecord = { uuid: 'u-1', name_label: 'vm one', memory_static_max: 4294967296, VCPUs_max: 2 }

describe('JSON-RPC transport', () => {
  test('frames calls as JSON-RPC 2.0 on /jsonrpc with the session first, and logs out on close', async () => {
    const s = await fake(withSessions(async (method) => (method === 'VM.get_record' ? vmRecord : '')))
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'json-rpc' })
    const rec = (await xapi.call('VM.get_record', 'OpaqueRef:vm1')) as Record<string, unknown>
    assert.equal(rec.name_label, 'vm one')
    assert.equal(rec.memory_static_max, 4294967296)
    await xapi.close()
    const [login, get, logout] = s.requests
    assert.equal(login!.path, '/jsonrpc')
    assert.equal(login!.method, 'session.login_with_password')
    assert.deepEqual(login!.params, ['root', 'secret', '1.2', 'xenstack'])
    assert.equal(JSON.parse(get!.body).jsonrpc, '2.0')
    assert.deepEqual(get!.params, ['OpaqueRef:session-1', 'OpaqueRef:vm1'])
    assert.equal(logout!.method, 'session.logout')
    assert.deepEqual(logout!.params, ['OpaqueRef:session-1'])
  })

  test('XAPI failures become XenAPIError with code, params and method', async () => {
    const s = await fake(
      withSessions(async () => {
        throw new XapiFailure(['HANDLE_INVALID', 'VM', 'OpaqueRef:nope'])
      }),
    )
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'json-rpc' })
    try {
      await assert.rejects(xapi.call('VM.get_record', 'OpaqueRef:nope'), (e: unknown) => {
        assert.ok(e instanceof XenAPIError)
        assert.equal(e.code, 'HANDLE_INVALID')
        assert.deepEqual(e.params, ['VM', 'OpaqueRef:nope'])
        assert.equal(e.method, 'VM.get_record')
        return true
      })
    } finally {
      await xapi.close()
    }
  })
})

describe('XML-RPC transport', () => {
  test('posts to / and converts record ints sent as strings to numbers', async () => {
    const s = await fake(
      withSessions(async (method) =>
        method === 'VM.get_record' ? { ...vmRecord, memory_static_max: '4294967296', VCPUs_max: '2' } : '',
      ),
    )
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'xml-rpc' })
    try {
      const rec = (await xapi.call('VM.get_record', 'OpaqueRef:vm1')) as Record<string, unknown>
      assert.equal(rec.memory_static_max, 4294967296)
      assert.equal(rec.VCPUs_max, 2)
      assert.ok(s.requests.every((r) => r.path === '/'))
      assert.ok(s.requests[1]!.body.includes('<methodName>VM.get_record</methodName>'))
    } finally {
      await xapi.close()
    }
  })

  test('auto falls back to XML-RPC once when /jsonrpc is not served, and stays there', async () => {
    const s = await fake(
      withSessions(async () => 'ok'),
      { noJsonRpc: true },
    )
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'auto' })
    try {
      assert.equal(await xapi.call('pool.get_name_label', 'OpaqueRef:p'), 'ok')
      assert.equal(await xapi.call('pool.get_name_label', 'OpaqueRef:p'), 'ok')
      assert.equal(xapi.transportKind, 'xml-rpc')
      // login went to /jsonrpc (404), then /; nothing else tried JSON-RPC again.
      assert.deepEqual(
        s.requests.map((r) => r.path),
        ['/', '/', '/'],
      )
    } finally {
      await xapi.close()
    }
  })
})

describe('timeouts and the in-flight bound', () => {
  test('a call that gets no answer fails with XapiTimeoutError naming the method; the connection still works', async () => {
    let release!: () => void
    const stuck = new Promise<void>((r) => (release = r))
    after(() => release())
    const s = await fake(withSessions(async (method) => (method === 'host.get_servertime' ? stuck : 'fine')))
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'json-rpc', timeout: 300 })
    try {
      await assert.rejects(xapi.call('host.get_servertime', 'OpaqueRef:h'), (e: unknown) => {
        assert.ok(e instanceof XapiTimeoutError)
        assert.ok(e instanceof XapiTransportError)
        assert.equal(e.method, 'host.get_servertime')
        assert.match(e.message, /300 ms/)
        return true
      })
      assert.equal(await xapi.callWith('pool.get_name_label', ['OpaqueRef:p'], { timeout: 5000 }), 'fine')
    } finally {
      await xapi.close()
    }
  })

  test('no more than maxConcurrentCalls reach the server at once; the rest queue and all complete', async () => {
    const s = await fake(
      withSessions(async (_m, params) => {
        await new Promise((r) => setTimeout(r, 20))
        return params[1]
      }),
    )
    const xapi = await connect({ url: s.url, password: 'secret', transport: 'json-rpc', maxConcurrentCalls: 4 })
    try {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => xapi.call('VM.get_name_label', `r${i}`)))
      assert.deepEqual(
        results,
        Array.from({ length: 40 }, (_, i) => `r${i}`),
      )
      assert.ok(s.peakInFlight <= 4, `server saw ${s.peakInFlight} calls at once`)
      assert.ok(xapi.limiter.peak <= 4)
    } finally {
      await xapi.close()
    }
  })
})

describe('secrets', () => {
  test('the password appears in no error and no log line', async () => {
    const password = 'hunter2-Sup3rS3cret'
    const lines: string[] = []
    const logger: Logger = { debug: (m) => lines.push(m), warn: (m) => lines.push(m) }
    const s = await fake(
      withSessions(async (method, params) => {
        // a server that echoes its arguments in the error, the worst case
        throw new XapiFailure(['INTERNAL_ERROR', `${method} failed with ${JSON.stringify(params)}`])
      }, password),
    )
    await assert.rejects(connect({ url: s.url, password: 'wrong-' + password, transport: 'json-rpc', logger }), (e) => {
      assert.ok(e instanceof XenAPIError)
      assert.equal(e.code, 'SESSION_AUTHENTICATION_FAILED')
      assert.ok(!JSON.stringify(e).includes(password) && !String(e.stack).includes(password))
      return true
    })
    const xapi = await connect({ url: s.url, password, transport: 'json-rpc', logger })
    try {
      await assert.rejects(xapi.call('pool.join', '10.0.0.1', 'root', password), (e) => {
        assert.ok(e instanceof XenAPIError)
        const all = `${e.message} ${JSON.stringify(e.params)} ${e.stack}`
        assert.ok(!all.includes(password), all)
        assert.ok(all.includes('******'))
        return true
      })
      await assert.rejects(xapi.call('VM.add_to_other_config', 'OpaqueRef:v', 'root_password', password))
    } finally {
      await xapi.close()
    }
    assert.ok(lines.length > 0)
    for (const l of lines) assert.ok(!l.includes(password), l)
    // nor in a dump of the client object (a password in the URL included)
    const viaUrl = await connect({ url: s.url.replace('//', `//root:${password}@`), transport: 'json-rpc', logger })
    try {
      const dump = inspect(viaUrl, { depth: 4, showHidden: true })
      assert.ok(!dump.includes(password), 'util.inspect shows the password')
    } finally {
      await viaUrl.close()
    }
  })
})

describe('TLS', () => {
  test('pinned fingerprint accepted, unknown rejected, system CAs reject a self-signed cert, custom CA and insecure accepted', async (t) => {
    if (!requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))) return
    const cert = makeSelfSignedCert()
    after(() => cert.dispose())
    const s = await fake(
      withSessions(async () => 'ok'),
      { tls: { key: cert.key, cert: cert.cert } },
    )
    assert.match(s.url, /^https:/)

    const pinned = await connect({ url: s.url, password: 'secret', tls: { fingerprint: cert.fingerprint } })
    assert.equal(await pinned.call('pool.get_name_label', 'OpaqueRef:p'), 'ok')
    await pinned.close()

    const other = 'sha256/' + 'ab'.repeat(32)
    await assert.rejects(connect({ url: s.url, password: 'secret', tls: { fingerprint: other } }), (e: unknown) => {
      assert.ok(e instanceof XapiTransportError)
      assert.ok(e.cause instanceof CertificatePinError, String(e.cause))
      return true
    })

    await assert.rejects(connect({ url: s.url, password: 'secret' }), (e: unknown) => {
      assert.ok(e instanceof XapiTransportError)
      assert.match(String((e.cause as Error)?.message ?? e.message), /self.signed|certificate/i)
      return true
    })

    const withCa = await connect({ url: s.url, password: 'secret', tls: { ca: cert.cert } })
    assert.equal(await withCa.call('pool.get_name_label', 'OpaqueRef:p'), 'ok')
    await withCa.close()

    const warnings: string[] = []
    const logger: Logger = { warn: (m) => warnings.push(m) }
    for (let i = 0; i < 2; i++) {
      const insecure = await connect({ url: s.url, password: 'secret', tls: { insecure: true }, logger })
      assert.equal(await insecure.call('pool.get_name_label', 'OpaqueRef:p'), 'ok')
      await insecure.close()
    }
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!, /verification is DISABLED/)
  })
})
