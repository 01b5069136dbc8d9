/**
 * The client's retries against the simulator's injected faults (real HTTP, both transports where it matters): what is
 * retried, what is not (a call that changes state after a connection reset), the master moving mid-session, and the
 * counters a reliability report reads (`retryStats()`), each retry also logged as a warning.
 */
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { FaultInjector, createSimulator, installFaults, parseFaultRule, type Simulator } from '@xenstack/xapi-sim'
import {
  Xapi,
  XapiCallOutcomeUnknownError,
  XapiTransportError,
  XenAPIError,
  connect,
  isRepeatable,
  transportFailureKind,
} from '../src/index.js'

const PASSWORD = 'retry-Passw0rd'

let sim: Simulator
let faults: FaultInjector
let url: string

before(async () => {
  sim = createSimulator({ password: PASSWORD, pool: { hosts: 2, vms: 1 } })
  faults = new FaultInjector({ seed: 14 })
  installFaults(sim, faults)
  const l = await sim.listen()
  url = l.url
})
after(async () => {
  await sim.close()
})

function collect(): { lines: string[]; logger: { warn(m: string): void } } {
  const lines: string[] = []
  return { lines, logger: { warn: (m: string) => lines.push(m) } }
}

/** The injected count of the rule `id`. */
const injected = (id: string) => faults.list().find((r) => r.id === id)?.injected ?? 0

for (const transport of ['json-rpc', 'xml-rpc'] as const) {
  describe(`retries over ${transport}`, () => {
    let xapi: Xapi
    const log = collect()
    before(async () => {
      xapi = await connect({ url, password: PASSWORD, transport, logger: log.logger, retry: { backoffMs: 5 } })
    })
    after(async () => {
      faults.clear()
      await xapi.close()
    })

    test('a read survives connection resets and HTTP 500s, and each retry is counted and logged', async () => {
      faults.add({ id: `rst-${transport}`, kind: 'reset', method: 'VM.get_all', count: 2 })
      faults.add({ id: `500-${transport}`, kind: 'http500', method: 'VM.get_all', count: 1 })
      const vms = (await xapi.call('VM.get_all')) as string[]
      assert.ok(vms.length > 0)
      assert.equal(injected(`rst-${transport}`), 2)
      assert.equal(injected(`500-${transport}`), 1)
      const s = xapi.retryStats()
      assert.equal(s.retries.reset, 2)
      assert.equal(s.retries.http5xx, 1)
      assert.equal(log.lines.filter((l) => l.startsWith('VM.get_all') && / reset: /.test(l)).length, 2)
      assert.ok(
        log.lines.some((l) => / http5xx: .*HTTP 500/.test(l)),
        log.lines.join('\n'),
      )
    })

    test('a call that changes state is repeated after an HTTP 500 (XAPI did not dispatch it), and runs once', async () => {
      const vm = ((await xapi.call('VM.get_all')) as string[]).find((r) => !sim.db.get(r)!.is_a_template)!
      faults.add({ id: `set-${transport}`, kind: 'http500', method: 'VM.add_to_other_config', count: 1 })
      await xapi.call('VM.add_to_other_config', vm, `retry-${transport}`, 'once')
      assert.equal(injected(`set-${transport}`), 1)
      assert.equal((sim.db.get(vm)!.other_config as Record<string, string>)[`retry-${transport}`], 'once')
    })

    test('a call that changes state is not repeated after a reset: its outcome is unknown, and the error says so', async () => {
      const before = xapi.retryStats()
      const vm = ((await xapi.call('VM.get_all')) as string[]).find((r) => !sim.db.get(r)!.is_a_template)!
      faults.add({ id: `rst-set-${transport}`, kind: 'reset', method: 'VM.add_to_other_config', count: 1 })
      await assert.rejects(xapi.call('VM.add_to_other_config', vm, `reset-${transport}`, 'x'), (e: unknown) => {
        assert.ok(e instanceof XapiCallOutcomeUnknownError)
        assert.ok(e instanceof XapiTransportError)
        assert.match(e.message, /VM\.add_to_other_config: the connection to http:\/\/.* failed after the call was sent/)
        assert.match(e.message, /may or may not have run.*not repeated/)
        return true
      })
      const rule = faults.list().find((r) => r.id === `rst-set-${transport}`)!
      assert.equal(rule.matched, 1, 'sent once, never repeated')
      const after = xapi.retryStats()
      assert.equal(after.retries.reset, before.retries.reset)
      assert.equal(after.gaveUp.reset, before.gaveUp.reset + 1)
    })

    test('SESSION_INVALID twice in a row: logs in twice and the call succeeds', async () => {
      const before = xapi.retryStats().retries.SESSION_INVALID
      faults.add({ id: `si-${transport}`, kind: 'SESSION_INVALID', method: 'host.get_all', count: 2 })
      assert.equal(((await xapi.call('host.get_all')) as string[]).length, 2)
      assert.equal(injected(`si-${transport}`), 2)
      assert.equal(xapi.retryStats().retries.SESSION_INVALID, before + 2)
    })
  })
}

describe('limits, the master moving, slow calls', () => {
  test('a read that keeps failing gives up after transportRetries, with the last error', async () => {
    const xapi = await connect({ url, password: PASSWORD, logger: collect().logger, retry: { backoffMs: 1 } })
    try {
      faults.add({ id: 'always', kind: 'http500', method: 'SR.get_all' })
      await assert.rejects(xapi.call('SR.get_all'), (e: unknown) => {
        assert.ok(e instanceof XapiTransportError)
        assert.equal(e.statusCode, 500)
        return true
      })
      assert.equal(injected('always'), 5, 'the first attempt and 4 retries')
      assert.equal(xapi.retryStats().retries.http5xx, 4)
      assert.equal(xapi.retryStats().gaveUp.http5xx, 1)
    } finally {
      faults.clear()
      await xapi.close()
    }
  })

  test('master_change faults: every call follows the new master on the same session', async () => {
    const own = createSimulator({ password: PASSWORD, pool: { hosts: 3, vms: 0 } })
    const ownFaults = new FaultInjector({ seed: 1 })
    installFaults(own, ownFaults)
    const l = await own.listen()
    const log = collect()
    const xapi = await connect({ url: l.url, password: PASSWORD, logger: log.logger, retry: { backoffMs: 1 } })
    try {
      const first = own.master
      ownFaults.add({ id: 'mc', kind: 'master_change', method: 'host.get_all', every: 3, count: 3 })
      const masters = new Set<string>([first])
      for (let i = 0; i < 9; i++) {
        assert.equal(((await xapi.call('host.get_all')) as string[]).length, 3)
        masters.add(own.master)
      }
      assert.equal(ownFaults.totals().master_change, 3)
      assert.equal(masters.size, 3, 'the master went round the pool')
      assert.equal(xapi.retryStats().retries.HOST_IS_SLAVE, 3)
      const address = own.db.get(own.master)!.address as string
      assert.equal(xapi.url, `http://${address}:${l.port}`)
      assert.ok(
        log.lines.some((x) => x.includes(`HOST_IS_SLAVE: the pool master is now ${address}`)),
        log.lines.join('\n'),
      )
      // one session all along: it moved with the master
      assert.equal(own.sessions.size, 1)
      assert.equal(xapi.retryStats().retries.SESSION_INVALID, 0)
    } finally {
      await xapi.close()
      await own.close()
    }
  })

  test('a master_change rule in a one-host pool changes nothing; a path rule of that kind is refused', async () => {
    assert.throws(
      () => parseFaultRule({ kind: 'master_change', path: '/import_raw_vdi' }),
      /fault\.path: kind master_change acts on API calls/,
    )
    const one = createSimulator({ password: PASSWORD, pool: { hosts: 1, vms: 0 } })
    const f = new FaultInjector()
    installFaults(one, f)
    const l = await one.listen()
    const xapi = await connect({ url: l.url, password: PASSWORD, logger: collect().logger })
    try {
      const before = one.master
      f.add({ kind: 'master_change' })
      assert.equal(((await xapi.call('host.get_all')) as string[]).length, 1)
      assert.equal(f.totals().master_change, 1)
      assert.equal(one.master, before)
      assert.equal(xapi.retryStats().retries.HOST_IS_SLAVE, 0)
    } finally {
      await xapi.close()
      await one.close()
    }
  })

  test('latency spikes are waited out, not retried, and counted as slow calls', async () => {
    const xapi = await connect({ url, password: PASSWORD, logger: collect().logger, retry: { slowCallMs: 150 } })
    try {
      faults.add({ id: 'slow', kind: 'latency', method: 'pool.get_all', latency_ms: 200, count: 2 })
      for (let i = 0; i < 3; i++) assert.equal(((await xapi.call('pool.get_all')) as string[]).length, 1)
      assert.equal(injected('slow'), 2)
      const s = xapi.retryStats()
      assert.equal(s.slowCalls, 2)
      assert.deepEqual(Object.values(s.retries), [0, 0, 0, 0, 0])
    } finally {
      faults.clear()
      await xapi.close()
    }
  })

  test('a connection refused is retried once the pool has answered (the request never left); an XAPI error is not', async () => {
    const xapi = await connect({ url, password: PASSWORD, logger: collect().logger, retry: { backoffMs: 1 } })
    try {
      await assert.rejects(xapi.call('VM.get_record', 'OpaqueRef:nope'), (e: unknown) => e instanceof XenAPIError)
      assert.deepEqual(Object.values(xapi.retryStats().retries), [0, 0, 0, 0, 0])
    } finally {
      await xapi.close()
    }
    // A pool that answered, then went away (a restarting master): refusals are retried, then given up on.
    const gone = createSimulator({ password: PASSWORD, pool: { hosts: 1, vms: 0 } })
    const goneUrl = (await gone.listen()).url
    const log = collect()
    const client = new Xapi({
      url: goneUrl,
      password: PASSWORD,
      logger: log.logger,
      retry: { backoffMs: 1, transportRetries: 2 },
    })
    try {
      await client.call('pool.get_all')
      await gone.close()
      await assert.rejects(client.call('pool.get_all'), (e: unknown) => {
        assert.ok(e instanceof XapiTransportError)
        assert.equal(e.errno, 'ECONNREFUSED')
        return true
      })
      // The kept-alive socket the simulator closed may first fail as a reset (a read is safe to repeat); every
      // new connection is then refused.
      const { refused, reset } = client.retryStats().retries
      assert.ok(refused >= 1 && refused + reset === 2, JSON.stringify(client.retryStats().retries))
      assert.equal(client.retryStats().gaveUp.refused, 1)
      assert.equal(log.lines.length, 2, log.lines.join('\n'))
    } finally {
      await client.close()
    }
  })

  test('a connection refused before the pool ever answered fails at once: a wrong address or a host that is down', async () => {
    // a port nobody listens on: bind one, read it, close it
    const srv = createServer()
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    const closedPort = (srv.address() as AddressInfo).port
    await new Promise<void>((r) => srv.close(() => r()))
    const log = collect()
    const dead = new Xapi({
      url: `http://127.0.0.1:${closedPort}`,
      password: PASSWORD,
      logger: log.logger,
      retry: { backoffMs: 1, transportRetries: 2 },
    })
    try {
      await assert.rejects(dead.ensureSession(), (e: unknown) => {
        assert.ok(e instanceof XapiTransportError)
        assert.equal(e.errno, 'ECONNREFUSED')
        return true
      })
      assert.equal(dead.retryStats().retries.refused, 0)
      assert.equal(dead.retryStats().gaveUp.refused, 1)
      assert.deepEqual(log.lines, [])
    } finally {
      await dead.close()
    }
  })
})

test('which calls are repeatable, and which transport failures are retried', () => {
  for (const m of ['VM.get_record', 'VM.get_all_records', 'host.get_by_uuid', 'Async.VM.get_record', 'event.from'])
    assert.equal(isRepeatable(m), true, m)
  for (const m of [
    'VM.start',
    'VIF.create',
    'VM.add_to_xenstore_data',
    'host.call_plugin',
    'pool.designate_new_master',
  ])
    assert.equal(isRepeatable(m), false, m)
  const err = (status?: number, code?: string) =>
    new XapiTransportError(
      'x',
      'm',
      'u',
      status,
      code ? { cause: Object.assign(new Error(code), { code }) } : undefined,
    )
  assert.equal(transportFailureKind(err(500)), 'http5xx')
  assert.equal(transportFailureKind(err(503)), 'http5xx')
  assert.equal(transportFailureKind(err(502)), 'reset')
  assert.equal(transportFailureKind(err(404)), undefined)
  assert.equal(transportFailureKind(err(undefined, 'ECONNRESET')), 'reset')
  assert.equal(transportFailureKind(err(undefined, 'UND_ERR_SOCKET')), 'reset')
  assert.equal(transportFailureKind(err(undefined, 'ECONNREFUSED')), 'refused')
  assert.equal(transportFailureKind(err(undefined, 'CERT_HAS_EXPIRED')), undefined)
  assert.equal(transportFailureKind(new Error('ECONNRESET')), undefined)
})

test('auto: an HTTP 500 page after JSON-RPC has answered is retried on JSON-RPC, not a fall back to XML-RPC', async () => {
  const xapi = await connect({ url, password: PASSWORD, logger: collect().logger, retry: { backoffMs: 1 } })
  try {
    assert.equal(xapi.transportKind, 'json-rpc')
    faults.add({ id: 'auto-500', kind: 'http500', method: 'pool.get_all', count: 1 })
    assert.equal(((await xapi.call('pool.get_all')) as string[]).length, 1)
    assert.equal(injected('auto-500'), 1)
    assert.equal(xapi.transportKind, 'json-rpc')
    assert.equal(xapi.retryStats().retries.http5xx, 1)
  } finally {
    faults.clear()
    await xapi.close()
  }
})
