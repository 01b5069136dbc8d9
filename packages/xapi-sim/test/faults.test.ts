import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FaultInjector, parseFaultRule, parseFaultFlag, FaultRuleError } from '../src/faults.js'

test('a schedule fires on exactly the matching calls it names', () => {
  const f = new FaultInjector()
  f.add({ id: 'every3', kind: 'SESSION_INVALID', method: 'VM.*', every: 3 })
  const fired = Array.from({ length: 9 }, () => f.forCall('VM.get_record')?.kind ?? '-')
  assert.deepEqual(fired, ['-', '-', 'SESSION_INVALID', '-', '-', 'SESSION_INVALID', '-', '-', 'SESSION_INVALID'])
  assert.equal(f.forCall('host.get_record'), undefined)
  assert.deepEqual(f.counters(), [{ id: 'every3', kind: 'SESSION_INVALID', matched: 9, injected: 3 }])
})

test('after, at and count bound a rule; Async. calls match the plain method', () => {
  const f = new FaultInjector()
  f.add({ kind: 'HOST_IS_SLAVE', method: 'VM.start', at: [2, 4] })
  f.add({ kind: 'reset', method: '*', after: 5, count: 2 })
  // Rules are tried in order and the first that fires wins; a call taken by rule 1 is not seen by rule 2.
  const seen = Array.from({ length: 10 }, () => f.forCall('Async.VM.start')?.kind ?? '-')
  assert.deepEqual(seen, ['-', 'HOST_IS_SLAVE', '-', 'HOST_IS_SLAVE', '-', '-', '-', 'reset', 'reset', '-'])
  assert.equal(f.totals().HOST_IS_SLAVE, 2)
  assert.equal(f.totals().reset, 2)
})

test('rates come from a seeded generator: the same seed injects the same calls', () => {
  const run = () => {
    const f = new FaultInjector({ seed: 42 })
    f.add({ kind: 'http500', rate: 0.3 })
    return Array.from({ length: 200 }, () => (f.forCall('VM.get_record') ? 1 : 0)).join('')
  }
  const a = run()
  assert.equal(a, run())
  const n = [...a].filter((c) => c === '1').length
  assert.ok(n > 30 && n < 90, `about 30% of 200 calls, got ${n}`)
})

test('HTTP rules match by path only; latency carries its delay', () => {
  const f = new FaultInjector()
  f.add({ kind: 'latency', path: '/import_raw_vdi', latency_ms: 25 })
  assert.equal(f.forCall('VDI.get_record'), undefined)
  assert.deepEqual(f.forHttp('/import_raw_vdi/'), { kind: 'latency', rule: 'f1', ms: 25 })
  assert.equal(f.forHttp('/export_raw_vdi'), undefined)
})

test('bad rules are refused naming the field and what was expected', () => {
  assert.throws(() => parseFaultRule({ kind: 'TIMEOUT' }), /fault rule fault\.kind: expected one of SESSION_INVALID/)
  assert.throws(
    () => parseFaultRule({ kind: 'reset', rate: 2 }),
    /fault\.rate: expected a number between 0 and 1, got 2/,
  )
  assert.throws(() => parseFaultRule({ kind: 'latency' }), /fault\.latency_ms: required for kind latency/)
  assert.throws(
    () => parseFaultRule({ kind: 'reset', when: 1 }),
    (e: unknown) => e instanceof FaultRuleError && e.field === 'fault.when',
  )
  assert.deepEqual(parseFaultFlag('SESSION_INVALID:VM.start@0.5'), {
    kind: 'SESSION_INVALID',
    method: 'VM.start',
    rate: 0.5,
  })
  assert.deepEqual(parseFaultFlag('latency@1+20'), { kind: 'latency', rate: 1, latency_ms: 20 })
  assert.deepEqual(parseFaultFlag('http500:/export_raw_vdi'), { kind: 'http500', path: '/export_raw_vdi', rate: 1 })
  assert.throws(() => parseFaultFlag('nonsense!'), /--fault: expected KIND/)
})

test('master_change: the next host becomes master before the call, which meets HOST_IS_SLAVE naming it; reseed repeats', async () => {
  const { createSimulator } = await import('../src/simulator.js')
  const { installFaults } = await import('../src/admin.js')
  const sim = createSimulator({ pool: { hosts: 3, vms: 0 } })
  const f = new FaultInjector()
  installFaults(sim, f)
  const session = sim.login()
  const first = sim.master
  f.add({ kind: 'master_change', method: 'host.get_all', count: 1 })
  // a call that reached the master over the wire (internal calls are never faulted)
  const o = await sim.messages.call('host.get_all', [session], first, 'jsonrpc')
  assert.notEqual(sim.master, first, 'the master moved')
  assert.deepEqual(o, { ok: false, errorDescription: ['HOST_IS_SLAVE', sim.masterAddress] })
  // the new master answers; the old one keeps answering HOST_IS_SLAVE (XAPI's own pool check, no rule left)
  assert.equal((await sim.messages.call('host.get_all', [session], sim.master, 'jsonrpc')).ok, true)
  assert.equal((await sim.messages.call('host.get_all', [session], first, 'jsonrpc')).ok, false)
  assert.equal(f.totals().master_change, 1)
  // reseed: a rate-based rule injects the same calls again
  const g = new FaultInjector({ seed: 9 })
  g.add({ kind: 'reset', rate: 0.5 })
  const a = Array.from({ length: 40 }, () => (g.forCall('VM.get_all') ? 1 : 0)).join('')
  g.reseed(9)
  assert.equal(Array.from({ length: 40 }, () => (g.forCall('VM.get_all') ? 1 : 0)).join(''), a)
})
