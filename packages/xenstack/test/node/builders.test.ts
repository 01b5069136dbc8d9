import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ExecutorPool, IptablesPersist, LocalExecutor, firewall, iniSettings } from '../../src/node/index.js'

test('builders: iniSettings in order (null removes), firewall order, one executor per host in a pool', async () => {
  const ini = iniSettings('/etc/nova/nova.conf', { DEFAULT: { a: '1', b: null }, xenserver: { c: '3' } })
  assert.deepEqual(
    ini.map((r) => [r.id, r.options.ensure ?? 'present']),
    [
      ['ini /etc/nova/nova.conf [DEFAULT] a', 'present'],
      ['ini /etc/nova/nova.conf [DEFAULT] b', 'absent'],
      ['ini /etc/nova/nova.conf [xenserver] c', 'present'],
    ],
  )
  const fw = firewall({ chain: 'C', jumpFrom: 'INPUT', rules: [{ chain: 'C', rule: ['-j', 'ACCEPT'] }] })
  assert.deepEqual(
    fw.map((r) => r.id),
    [
      'iptables chain filter/C',
      'iptables rule filter/C -j ACCEPT',
      'iptables rule filter/INPUT -j C',
      'iptables saved',
    ],
  )
  assert.ok(fw[3] instanceof IptablesPersist)

  const pool = new ExecutorPool()
  let created = 0
  const make = (): LocalExecutor => {
    created++
    return new LocalExecutor({ name: 'n1' })
  }
  const a = pool.get('n1', make)
  assert.equal(pool.get('n1', make), a)
  assert.equal(created, 1)
  assert.equal((await a.run(['echo', 'ok'])).stdout, 'ok\n')
  await pool.closeAll()
  assert.notEqual(pool.get('n1', make), a, 'a new executor after closeAll')
})
