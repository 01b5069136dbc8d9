/**
 * Behaviour of the client against @xenstack/xapi-sim on both transports: login and logout, typed calls and result
 * conversion, master redirect, re-login after the server expired the session, call timeouts, the in-flight bound,
 * tasks (success, failure, cancel, progress), events (add, mod, del) with the object cache, and TLS (pinned and
 * rejected) through a TLS terminator in front of the simulator.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { hasExecutable, makeSelfSignedCert, requirePrerequisite, startTlsTerminator } from '@xenstack/testkit'
import { XapiError, createSimulator, type Simulator } from '@xenstack/xapi-sim'
import {
  CertificatePinError,
  ErrorCode,
  XapiTimeoutError,
  XapiTransportError,
  XenAPIError,
  connect,
  type Xapi,
  type XapiEvent,
} from '../src/index.js'

const PASSWORD = 'sim-Passw0rd'

let sim: Simulator
let url: string
let port: number

before(async () => {
  sim = createSimulator({ password: PASSWORD, pool: { hosts: 2, vms: 3 } })
  const l = await sim.listen()
  url = l.url
  port = l.port
})
after(async () => {
  await sim.close()
})

for (const transport of ['json-rpc', 'xml-rpc'] as const) {
  describe(`against the simulator over ${transport}`, () => {
    let xapi: Xapi
    before(async () => {
      xapi = await connect({ url, password: PASSWORD, transport })
    })
    after(async () => {
      await xapi.close()
    })

    test('typed calls return converted records: ints as numbers, datetimes as Date', async () => {
      const vms = await xapi.VM.get_all_records()
      const guests = Object.entries(vms).filter(([, r]) => !r.is_a_template && !r.is_control_domain)
      assert.equal(guests.length, 3)
      const [ref, rec] = guests[0]!
      assert.match(ref, /^OpaqueRef:/)
      assert.equal(typeof rec.memory_static_max, 'number')
      assert.ok(rec.memory_static_max > 0)
      assert.equal(typeof rec.VCPUs_max, 'number')
      const metrics = await xapi.VM_metrics.get_record(rec.metrics)
      assert.ok(metrics.last_updated instanceof Date)
      assert.equal(await xapi.VM.get_name_label(ref), rec.name_label)
      assert.equal(xapi.transportKind, transport)
    })

    test('XAPI errors carry code, params and method', async () => {
      await assert.rejects(xapi.VM.get_record('OpaqueRef:does-not-exist'), (e: unknown) => {
        assert.ok(e instanceof XenAPIError)
        assert.equal(e.code, ErrorCode.HANDLE_INVALID)
        assert.equal(e.method, 'VM.get_record')
        assert.ok(e.params.includes('OpaqueRef:does-not-exist'))
        return true
      })
    })

    test('logs in again once when the server has expired the session, and retries the call', async () => {
      const old = xapi.sessionId!
      const killer = await connect({ url, password: PASSWORD, transport })
      // a session can log itself out only; log the client's session out through the wire as XAPI would expire it
      await killer.close()
      const r = await sim.call('session.logout', [old])
      assert.ok(r.ok, JSON.stringify(r))
      const pools = await xapi.pool.get_all()
      assert.equal(pools.length, 1)
      assert.notEqual(xapi.sessionId, old)
    })

    test('Async calls wait for the task, return its converted result and destroy it', async () => {
      const [vm] = (await xapi.VM.get_all()).filter(async () => true)
      const templates = Object.entries(await xapi.VM.get_all_records()).filter(([, r]) => r.is_a_template)
      const [tpl] = templates[0]!
      const clone = await xapi.async.VM.clone(tpl, `clone-${transport}`)
      assert.match(clone, /^OpaqueRef:/)
      assert.equal(await xapi.VM.get_name_label(clone), `clone-${transport}`)
      await xapi.VM.destroy(clone)
      const tasks = Object.values(await xapi.task.get_all_records())
      assert.ok(!tasks.some((t) => t.name_label === 'Async.VM.clone'), 'the task was destroyed')
      assert.ok(vm)
    })

    test('a failing Async call rejects with the task error', async () => {
      const running = Object.entries(await xapi.VM.get_all_records()).find(
        ([, r]) => r.power_state === 'Running' && !r.is_control_domain,
      )
      assert.ok(running)
      await assert.rejects(xapi.async.VM.start(running[0], false, false), (e: unknown) => {
        assert.ok(e instanceof XenAPIError)
        assert.equal(e.code, ErrorCode.VM_BAD_POWER_STATE)
        assert.equal(e.method, 'Async.VM.start')
        return true
      })
    })

    test('aborting an Async call sends task.cancel; progress is reported on the way', async () => {
      // A long operation that honours cancellation the way XAPI's do: it checks for a cancel request as it goes.
      let stop = false
      const restore = sim.messages.override('VM.clean_reboot', async (ctx) => {
        if (!ctx.task) return
        sim.db.set(ctx.task, 'progress', 0.5)
        while (!stop) {
          if (sim.tasks.cancelRequested(ctx.task)) throw new XapiError('TASK_CANCELLED', ctx.task)
          await new Promise((r) => setTimeout(r, 5))
        }
      })
      try {
        const running = Object.entries(await xapi.VM.get_all_records()).find(
          ([, r]) => r.power_state === 'Running' && !r.is_control_domain,
        )!
        const ac = new AbortController()
        const progress: number[] = []
        const p = xapi.callAsyncWith('VM.clean_reboot', [running[0]], {
          signal: ac.signal,
          onProgress: (x) => {
            progress.push(x)
            if (x === 0.5) ac.abort()
          },
        })
        await assert.rejects(p, (e: unknown) => {
          assert.ok(e instanceof XenAPIError)
          assert.equal(e.code, ErrorCode.TASK_CANCELLED)
          return true
        })
        assert.ok(progress.includes(0.5))
      } finally {
        stop = true
        restore()
      }
    })

    test('watch yields add, mod and del events with converted snapshots', async () => {
      const ac = new AbortController()
      const it = xapi.watch(['network'], { signal: ac.signal })
      // the first batch (empty token) is every existing network as `add`
      const first = await it.next()
      assert.equal((first.value as XapiEvent).operation, 'add')
      // XAPI coalesces per object since the token (created and deleted in one window = nothing), so each change is
      // made only once the previous one has been seen.
      const net = await xapi.network.create({ name_label: `net-${transport}`, other_config: {}, MTU: 1500 } as never)
      const seen: XapiEvent[] = []
      for await (const ev of it) {
        if (ev.operation === 'reset' || ev.ref !== net) continue
        seen.push(ev)
        if (ev.operation === 'add') await xapi.network.set_name_label(net, `renamed-${transport}`)
        else if (ev.operation === 'mod') await xapi.network.destroy(net)
        else break
      }
      ac.abort()
      assert.deepEqual(
        seen.map((e) => e.operation),
        ['add', 'mod', 'del'],
      )
      assert.equal(seen[0]!.snapshot?.name_label, `net-${transport}`)
      assert.equal(typeof seen[0]!.snapshot?.MTU, 'number')
      assert.equal(seen[1]!.snapshot?.name_label, `renamed-${transport}`)
      assert.equal(seen[2]!.snapshot, undefined)
    })

    test('the object cache follows creations, changes and deletions', async () => {
      const cache = xapi.cache(['network'])
      await cache.ready
      const before = cache.all('network').length
      assert.ok(before >= 1)
      const added = new Promise<string>((r) => cache.once('add', (o) => r(o.$ref)))
      const net = await xapi.network.create({ name_label: `cached-${transport}`, other_config: {} } as never)
      assert.equal(await added, net)
      const removed = new Promise<string>((r) => cache.on('remove', (o) => o.$ref === net && r(o.$ref)))
      await xapi.network.destroy(net)
      await removed
      assert.equal(cache.get(net), undefined)
      await cache.close()
    })
  })
}

describe('pool master redirect', () => {
  test('a login at a pool member follows HOST_IS_SLAVE to the master, keeping scheme and port', async () => {
    const member = `http://127.0.0.2:${port}`
    const xapi = await connect({ url: member, password: PASSWORD, transport: 'json-rpc' })
    try {
      assert.equal(xapi.url, url)
      assert.equal((await xapi.host.get_all()).length, 2)
    } finally {
      await xapi.close()
    }
  })
})

describe('master change while connected', () => {
  test('after pool.designate_new_master, the next call meets HOST_IS_SLAVE and moves to the new master', async () => {
    const own = createSimulator({ password: PASSWORD, pool: { hosts: 2, vms: 0 } })
    const l = await own.listen()
    const xapi = await connect({ url: l.url, password: PASSWORD, transport: 'json-rpc' })
    try {
      const hosts = await xapi.host.get_all()
      const member = hosts.find((h) => h !== own.master)!
      const memberAddress = await xapi.host.get_address(member)
      await xapi.pool.designate_new_master(member)
      const before = xapi.sessionId
      assert.equal((await xapi.host.get_all()).length, 2)
      assert.equal(xapi.url, `http://${memberAddress}:${l.port}`)
      // the session lives in the pool's database and moves with the master: kept, no second session
      assert.equal(xapi.sessionId, before)
      assert.equal(own.sessions.size, 1)
    } finally {
      await xapi.close()
      await own.close()
    }
  })
})

describe('timeouts and the in-flight bound on the simulator', () => {
  test('withOptions applies a timeout to typed calls', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const remove = sim.messages.addHook(async (info) => {
      if (info.method === 'host.get_servertime') await gate
    })
    const xapi = await connect({ url, password: PASSWORD, transport: 'xml-rpc' })
    try {
      const [host] = await xapi.host.get_all()
      await assert.rejects(xapi.withOptions({ timeout: 200 }).host.get_servertime(host!), XapiTimeoutError)
      assert.equal(((await xapi.withOptions({ timeout: 5000 }).call('host.get_all')) as string[]).length, 2)
    } finally {
      release()
      remove()
      await xapi.close()
    }
  })

  test('a call the server holds fails with XapiTimeoutError; the session keeps working', async () => {
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const remove = sim.messages.addHook(async (info) => {
      if (info.method === 'host.get_servertime') await gate
    })
    const xapi = await connect({ url, password: PASSWORD, transport: 'json-rpc', timeout: 300 })
    try {
      const [host] = await xapi.host.get_all()
      await assert.rejects(xapi.host.get_servertime(host!), XapiTimeoutError)
      assert.equal((await xapi.host.get_all()).length, 2)
    } finally {
      release()
      remove()
      await xapi.close()
    }
  })

  test('at most maxConcurrentCalls reach the server at once', async () => {
    let inFlight = 0
    let peak = 0
    const remove = sim.messages.addHook(async (info) => {
      if (info.method !== 'VM.get_name_label') return
      inFlight++
      peak = Math.max(peak, inFlight)
      await new Promise((r) => setTimeout(r, 10))
      inFlight--
    })
    const xapi = await connect({ url, password: PASSWORD, transport: 'json-rpc', maxConcurrentCalls: 3 })
    try {
      const vms = await xapi.VM.get_all()
      const names = await Promise.all(
        Array.from({ length: 30 }, (_, i) => xapi.VM.get_name_label(vms[i % vms.length]!)),
      )
      assert.equal(names.length, 30)
      assert.ok(peak <= 3, `server saw ${peak} calls at once`)
      assert.ok(peak >= 1)
    } finally {
      remove()
      await xapi.close()
    }
  })

  test('close() logs the session out', async () => {
    const xapi = await connect({ url, password: PASSWORD, transport: 'xml-rpc' })
    const session = xapi.sessionId!
    await xapi.close()
    const r = await sim.call('session.get_uuid', [session, session])
    assert.ok(!r.ok && r.errorDescription[0] === 'SESSION_INVALID', JSON.stringify(r))
  })
})

describe('event stream recovery', () => {
  test('EVENTS_LOST restarts from a full snapshot (a reset marker, then every object as add)', async () => {
    const xapi = await connect({ url, password: PASSWORD, transport: 'json-rpc' })
    let calls = 0
    const remove = sim.messages.addHook((info) => {
      if (info.method === 'event.from' && ++calls === 2) throw new XapiError('EVENTS_LOST')
    })
    const ac = new AbortController()
    try {
      const ops: string[] = []
      let adds = 0
      for await (const ev of xapi.watch(['host'], { signal: ac.signal, pollTimeout: 1 })) {
        ops.push(ev.operation)
        if (ev.operation === 'add') adds++
        if (adds === 4) break // 2 hosts in the first snapshot, 2 again after the reset
      }
      assert.deepEqual(ops, ['add', 'add', 'reset', 'add', 'add'])
    } finally {
      ac.abort()
      remove()
      await xapi.close()
    }
  })

  test('SESSION_INVALID during a watch logs in again and the stream goes on', async () => {
    const xapi = await connect({ url, password: PASSWORD, transport: 'xml-rpc' })
    const ac = new AbortController()
    try {
      const it = xapi.watch(['network'], { signal: ac.signal, pollTimeout: 5 })
      await it.next() // first snapshot
      const before = xapi.sessionId!
      assert.ok((await sim.call('session.logout', [before])).ok)
      const net = await xapi.network.create({ name_label: 'after-relogin', other_config: {} } as never)
      for await (const ev of it) if (ev.operation !== 'reset' && ev.ref === net) break
      assert.notEqual(xapi.sessionId, before)
      await xapi.network.destroy(net)
    } finally {
      ac.abort()
      await xapi.close()
    }
  })
})

describe('secrets against the simulator', () => {
  test('a wrong password and a password parameter never show in errors or log lines', async () => {
    const lines: string[] = []
    const logger = { debug: (m: string) => lines.push(m), warn: (m: string) => lines.push(m) }
    const wrong = `${PASSWORD}-wrong`
    await assert.rejects(connect({ url, password: wrong, transport: 'xml-rpc', logger }), (e: unknown) => {
      assert.ok(e instanceof XenAPIError)
      assert.equal(e.code, ErrorCode.SESSION_AUTHENTICATION_FAILED)
      assert.ok(!`${e.message} ${e.stack} ${JSON.stringify(e.params)}`.includes(wrong))
      return true
    })
    const xapi = await connect({ url, password: PASSWORD, transport: 'json-rpc', logger })
    try {
      // pool.join on a master that is part of a pool fails; its password argument must not leak
      await assert.rejects(xapi.pool.join('127.0.0.9', 'root', PASSWORD), (e: unknown) => {
        assert.ok(e instanceof XenAPIError)
        assert.ok(!`${e.message} ${e.stack} ${JSON.stringify(e.params)}`.includes(PASSWORD))
        return true
      })
    } finally {
      await xapi.close()
    }
    assert.ok(lines.some((l) => l.includes('pool.join')))
    for (const l of lines) assert.ok(!l.includes(PASSWORD), l)
  })
})

describe('task waiting without events', () => {
  test('when event.from is unavailable, tasks are followed by polling and still complete', async () => {
    const xapi = await connect({ url, password: PASSWORD, transport: 'json-rpc' })
    const remove = sim.messages.addHook((info) => {
      if (info.method === 'event.from') throw new XapiError('MESSAGE_METHOD_UNKNOWN', 'event.from')
    })
    // a clone held until the client has polled its task once, so the task is certainly pending at the first poll
    // and done at a later one (a fixed delay could end before the first poll on a loaded machine)
    const polls: string[] = []
    const clone = sim.messages.implementation('VM.clone')!
    const restore = sim.messages.override('VM.clone', async (ctx, args) => {
      const deadline = Date.now() + 30_000
      while (polls.length === 0) {
        if (Date.now() > deadline) throw new Error('the client never polled the clone task within 30 s')
        await new Promise((r) => setTimeout(r, 10))
      }
      return clone(ctx, args)
    })
    const count = sim.messages.addHook((info) => {
      if (info.method === 'task.get_record') polls.push(info.method)
    })
    try {
      const [tpl] = Object.entries(await xapi.VM.get_all_records()).find(([, r]) => r.is_a_template)!
      const vm = await xapi.async.VM.clone(tpl, 'polled clone')
      assert.equal(await xapi.VM.get_name_label(vm), 'polled clone')
      assert.ok(polls.length >= 2, `task.get_record was called ${polls.length} times`)
      await xapi.VM.destroy(vm)
    } finally {
      restore()
      count()
      remove()
      await xapi.close()
    }
  })
})

describe('transport auto', () => {
  test('auto picks JSON-RPC when the server has it', async () => {
    const xapi = await connect({ url, password: PASSWORD })
    try {
      assert.equal((await xapi.pool.get_all()).length, 1)
      assert.equal(xapi.transportKind, 'json-rpc')
    } finally {
      await xapi.close()
    }
  })
})

describe('TLS in front of the simulator', () => {
  test('https through a TLS terminator with a self-signed certificate: pinned accepted, unknown rejected', async (t) => {
    if (!requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))) return
    const cert = makeSelfSignedCert()
    const proxy = await startTlsTerminator(cert, port)
    const httpsUrl = proxy.url
    try {
      const xapi = await connect({ url: httpsUrl, password: PASSWORD, tls: { fingerprint: cert.fingerprint } })
      try {
        assert.equal((await xapi.host.get_all()).length, 2)
        assert.equal(xapi.url, httpsUrl)
      } finally {
        await xapi.close()
      }
      await assert.rejects(
        connect({ url: httpsUrl, password: PASSWORD, tls: { fingerprint: '00'.repeat(32) } }),
        (e: unknown) => e instanceof XapiTransportError && e.cause instanceof CertificatePinError,
      )
      await assert.rejects(connect({ url: httpsUrl, password: PASSWORD }), XapiTransportError)
    } finally {
      await proxy.close()
      cert.dispose()
    }
  })
})
