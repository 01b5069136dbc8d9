/** Small pure parts of the client: redaction, the in-flight limiter, plugin version rules, pickles, host swaps. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  Limiter,
  PICKLED_NO_ARGS,
  REDACTED,
  Redactor,
  XenAPIError,
  isCompatibleVersion,
  isRetryablePluginError,
  normaliseFingerprint,
  parseTaskResult,
  swapHost,
  unpickleString,
} from '../src/index.js'
import { jsonConverter } from '../src/convert.js'
import { fromWire, getMessage, parseXapiDate } from '@xenstack/xapi-wire'

describe('Redactor', () => {
  test('removes password positions, *password* keys and known secrets everywhere', () => {
    const r = new Redactor()
    r.add('pa55')
    assert.deepEqual(r.params('session.login_with_password', ['root', 'pa55', '1.2', 'x']), [
      'root',
      REDACTED,
      '1.2',
      'x',
    ])
    assert.deepEqual(r.params('pool.join', ['10.0.0.1', 'root', 'other']), ['10.0.0.1', 'root', REDACTED])
    assert.deepEqual(r.params('host.call_plugin', ['h', 'p', 'f', { db_password: 'x', url: 'a' }]), [
      'h',
      'p',
      'f',
      { db_password: REDACTED, url: 'a' },
    ])
    assert.equal(r.text('login pa55 failed'), `login ${REDACTED} failed`)
    const e = r.error(new Error('bad pa55')) as Error
    assert.ok(!e.message.includes('pa55') && !String(e.stack).includes('pa55'))
  })
})

describe('Limiter', () => {
  test('runs at most max at once, in FIFO order, and frees the slot of an aborted waiter', async () => {
    const l = new Limiter(2)
    let running = 0
    let peak = 0
    const order: number[] = []
    const job = (i: number) => async () => {
      running++
      peak = Math.max(peak, running)
      await new Promise((r) => setImmediate(r))
      order.push(i)
      running--
      return i
    }
    const ac = new AbortController()
    const aborted = l.run(job(99), ac.signal)
    const all = Promise.all([0, 1, 2, 3, 4].map((i) => l.run(job(i))))
    // 99 took a slot immediately (there was room), so abort has no effect on it
    ac.abort()
    assert.equal(await aborted, 99)
    assert.deepEqual(await all, [0, 1, 2, 3, 4])
    assert.ok(peak <= 2)
    const l2 = new Limiter(1)
    const blocker = l2.run(() => new Promise((r) => setTimeout(r, 20)))
    const ac2 = new AbortController()
    const waiting = l2.run(async () => 'never', ac2.signal)
    assert.equal(l2.queued, 1)
    ac2.abort(new Error('gave up'))
    await assert.rejects(waiting, /gave up/)
    assert.equal(l2.queued, 0)
    await blocker
    assert.equal(l2.inFlight, 0)
  })
})

describe('plugins', () => {
  test('version compatibility is same major, minor >= required', () => {
    assert.ok(isCompatibleVersion('2.1', '2.1'))
    assert.ok(isCompatibleVersion('2.3', '2.1'))
    assert.ok(!isCompatibleVersion('2.0', '2.1'))
    assert.ok(!isCompatibleVersion('3.1', '2.1'))
    assert.ok(!isCompatibleVersion('1.9', '2.1'))
    assert.ok(!isCompatibleVersion('garbage', '2.1'))
  })
  test('protocol-0 pickles of strings are read; plain strings pass through', () => {
    assert.equal(unpickleString("S'2.1'\np0\n."), '2.1')
    assert.equal(unpickleString('V2.1\np0\n.'), '2.1')
    assert.equal(unpickleString('2.1'), '2.1')
    assert.ok(PICKLED_NO_ARGS.startsWith('(dp0'))
  })
  test("os-xenapi's retry rule", () => {
    assert.ok(
      isRetryablePluginError(new XenAPIError('XENAPI_PLUGIN_FAILURE', ['download', 'RetryableError', 'x'], 'm')),
    )
    assert.ok(isRetryablePluginError(new XenAPIError('XENAPI_PLUGIN_FAILURE', ['signal: SIGKILL', '', ''], 'm')))
    assert.ok(!isRetryablePluginError(new XenAPIError('XENAPI_PLUGIN_FAILURE', ['download', 'ValueError', 'x'], 'm')))
    assert.ok(!isRetryablePluginError(new XenAPIError('XENAPI_MISSING_PLUGIN', ['x'], 'm')))
  })
})

describe('JSON-RPC result conversion', () => {
  test('only datetimes change; the result equals fromWire on the same value', () => {
    const type = getMessage('VM.get_record')!.message.result
    const wire = () => ({
      uuid: 'u',
      memory_static_max: 4294967296,
      snapshot_time: '20250319T04:16:24Z',
      other_config: { a: 'b' },
      VCPUs_max: 2,
    })
    const fixed = jsonConverter(type)!(wire()) as Record<string, unknown>
    assert.deepEqual(fixed, fromWire(wire(), type))
    assert.ok(fixed.snapshot_time instanceof Date)
    assert.equal((fixed.snapshot_time as Date).toISOString(), '2025-03-19T04:16:24.000Z')
    const dt = jsonConverter({ kind: 'datetime' })!
    for (const s of ['19700101T00:00:00Z', '20251231T23:59:59Z', '2025-03-19T04:16:24Z', '20250319T04:16:24.5+01:00']) {
      assert.equal((dt(s) as Date).getTime(), parseXapiDate(s).getTime(), s)
    }
    assert.equal(jsonConverter({ kind: 'set', of: { kind: 'ref', class: 'VM' } }), null)
  })
})

describe('helpers', () => {
  test('swapHost keeps scheme and port', () => {
    assert.equal(swapHost('https://10.0.0.2:8443', '10.0.0.1'), 'https://10.0.0.1:8443')
    assert.equal(swapHost('http://h2', 'master.example'), 'http://master.example')
    assert.equal(swapHost('http://127.0.0.2:9000', 'fd00::1'), 'http://[fd00::1]:9000')
  })
  test('fingerprints normalise', () => {
    assert.equal(normaliseFingerprint('sha256/AB:cd:01'), 'abcd01')
  })
  test('task results are decoded from their XML-RPC form and converted by type', () => {
    assert.equal(parseTaskResult('<value>OpaqueRef:abc</value>', { kind: 'ref', class: 'VM' }), 'OpaqueRef:abc')
    assert.deepEqual(
      parseTaskResult('<value><array><data><value>OpaqueRef:a</value></data></array></value>', {
        kind: 'set',
        of: { kind: 'ref', class: 'VM' },
      }),
      ['OpaqueRef:a'],
    )
    assert.equal(parseTaskResult('<value>42</value>', { kind: 'int' }), 42)
    assert.equal(parseTaskResult('', { kind: 'void' }), undefined)
  })
})
