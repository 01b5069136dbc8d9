/**
 * Optional pool.join of listed hosts, against two simulators in this process (a pool and a standalone host, each on
 * a loopback address of its own): the dry run joins nothing, one run joins the host and waits until the pool lists
 * it, a second run changes nothing; a wrong password fails naming the host, without the password.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { startSimServer, validateScenario, type SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { joinHosts, parseJoinList, poolHosts } from '../../../src/integration/dom0/index.js'
import { Secret } from '../../../src/node/index.js'

const PASSWORD = 'pj-' + randomBytes(6).toString('hex')

async function standalone(name: string, address: string, host: string): Promise<SimServer> {
  const scenario = validateScenario(
    { name, pools: [{ name, version: '7.1.0', hosts: [{ name: host, address }], compute_vm_per_host: false }] },
    name,
  )
  return startSimServer({ scenario, password: PASSWORD, listen: `${address}:0` })
}

test('the join list: addresses and URLs; anything else is refused by name', () => {
  assert.deepEqual(parseJoinList('10.0.0.5, http://127.0.0.9:8080\nxs3.example'), [
    { address: '10.0.0.5', url: 'https://10.0.0.5' },
    { address: '127.0.0.9', url: 'http://127.0.0.9:8080' },
    { address: 'xs3.example', url: 'https://xs3.example' },
  ])
  assert.throws(() => parseJoinList('root@10.0.0.5'), /"root@10\.0\.0\.5" is neither an address nor an http\(s\) URL/)
})

test('pool.join of a listed host: dry run, join, second run unchanged, wrong password named', async () => {
  // loopback addresses unique to this run, so a concurrent test's simulators are not in the way
  const b = 2 + (randomBytes(1)[0] % 200)
  const [poolAddr, joinAddr] = [`127.31.${b}.1`, `127.31.${b}.2`]
  const pool = await standalone('pool', poolAddr, 'xa1')
  const loner = await standalone('loner', joinAddr, 'xb1')
  let xapi: Xapi | undefined
  try {
    xapi = await connect({ url: pool.url, username: 'root', password: PASSWORD })
    const target = [{ address: joinAddr, url: loner.url }]
    const opts = { username: 'root', password: new Secret(PASSWORD) }

    const dry = await joinHosts(xapi, target, { ...opts, dryRun: true })
    assert.deepEqual(
      dry.map((c) => c.result),
      ['changed'],
    )
    assert.deepEqual(
      (await poolHosts(xapi)).map((h) => h.name),
      ['xa1'],
    )

    await assert.rejects(
      joinHosts(xapi, target, { ...opts, password: new Secret('wrong-' + PASSWORD) }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`pool\\.join of ${joinAddr.replace(/\./g, '\\.')}`))
        assert.ok(!e.message.includes(PASSWORD), 'no password in the message')
        return true
      },
    )

    const done = await joinHosts(xapi, target, opts)
    assert.deepEqual(
      done.map((c) => c.result),
      ['changed'],
    )
    assert.deepEqual(
      (await poolHosts(xapi)).map((h) => [h.name, h.address]),
      [
        ['xa1', poolAddr],
        ['xb1', joinAddr],
      ],
    )
    const again = await joinHosts(xapi, target, opts)
    assert.deepEqual(
      again.map((c) => c.result),
      ['unchanged'],
    )
  } finally {
    await xapi?.close()
    await loner.close()
    await pool.close()
  }
})
