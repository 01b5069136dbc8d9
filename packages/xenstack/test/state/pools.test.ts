// XenServer pools in the state store: the password only encrypted at rest and redacted on read, TLS verification on
// by default, nodes naming their pool, and a working connection to a (simulated) pool through connectPool and the
// engine's per-pool connections.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSimulator } from '@xenstack/xapi-sim'
import { scratchDirs } from '@xenstack/testkit'
import { PoolConnections, connectPool, tlsOptions } from '../../src/state/pools.js'
import { StateStore } from '../../src/state/store.js'
import { REDACTED } from '../../src/state/secrets.js'
import { storedStateText } from './databases.js'

const tmp = scratchDirs()
const PASSWORD = 'pool-secret-Zq81'

test('a pool keeps its password encrypted, reads it redacted, and reveals it only when asked', () => {
  const home = tmp('xenstack-pools-')
  const store = StateStore.open({ dataDir: home })
  try {
    const added = store.pools.add({ name: 'xs1', url: 'https://10.0.0.5', username: 'root', password: PASSWORD })
    assert.equal(added.password, REDACTED)
    assert.deepEqual(added.tls, { verify: true })
    assert.equal(added.url, 'https://10.0.0.5')
    assert.equal(store.pools.get('xs1', { reveal: true })!.password, PASSWORD)
    assert.deepEqual(
      store.pools.list().map((p) => [p.name, p.password]),
      [['xs1', REDACTED]],
    )
    const raw = store.db.prepare('SELECT password FROM pools').get() as { password: string }
    assert.match(raw.password, /^enc:v1:/)
    store.close()
    // Nothing stored holds the password in plain text.
    assert.ok(!storedStateText(home).includes(PASSWORD), 'the stored state holds the password in plain text')
  } finally {
    try {
      store.close()
    } catch {
      /* closed above */
    }
  }
})

test('pool fields are checked with messages naming the pool and the field', () => {
  const store = StateStore.open({ dataDir: tmp('xenstack-pools-') })
  try {
    const base = { name: 'p', url: 'https://h', username: 'root', password: 'x' }
    assert.throws(() => store.pools.add({ ...base, name: 'bad name' }), /pool name "bad name" is invalid/)
    assert.throws(() => store.pools.add({ ...base, url: 'ftp://h' }), /pool "p": url "ftp:\/\/h" must use https/)
    assert.throws(
      () => store.pools.add({ ...base, url: 'https://root:pw@h' }),
      /pool "p": url must not carry credentials/,
    )
    assert.throws(() => store.pools.add({ ...base, password: '' }), /pool "p": password is required/)
    assert.throws(() => store.pools.add({ ...base, password: REDACTED }), /redacted placeholder/)
    assert.throws(() => store.pools.add({ ...base, tls: { fingerprint: 'abc' } }), /tls.fingerprint must be a SHA-256/)
    assert.throws(() => store.pools.add({ ...base, tls: { ca: 'not pem' } }), /tls.ca must be PEM/)
    const fp = 'AB:'.repeat(31) + 'AB'
    const p = store.pools.add({ ...base, tls: { fingerprint: fp } })
    assert.equal(p.tls.fingerprint, 'ab'.repeat(32))
    assert.deepEqual(tlsOptions(p.tls), { fingerprint: 'ab'.repeat(32) })
    assert.deepEqual(tlsOptions({ verify: false }), { insecure: true })
    assert.deepEqual(tlsOptions({ verify: true }), {})
    assert.throws(() => store.pools.add(base), /pool "p" already exists/)
    assert.throws(() => store.pools.update('nope', { username: 'x' }), /pool "nope" does not exist/)
  } finally {
    store.close()
  }
})

test('update keeps what is not given; remove is refused while a node names the pool', () => {
  const store = StateStore.open({ dataDir: tmp('xenstack-pools-') })
  try {
    store.pools.add({ name: 'xs', url: 'https://a', username: 'root', password: PASSWORD, tls: { verify: false } })
    const u = store.pools.update('xs', { url: 'https://b:8443' })
    assert.equal(u.url, 'https://b:8443')
    assert.deepEqual(u.tls, { verify: false })
    assert.equal(store.pools.get('xs', { reveal: true })!.password, PASSWORD)
    store.pools.update('xs', { password: 'new-one' })
    assert.equal(store.pools.get('xs', { reveal: true })!.password, 'new-one')
    store.environments.create({ name: 'env1', release: 'r', settings: {} })
    store.environments.addNode('env1', { name: 'compute-1', roles: ['compute'], data: { pool: 'xs' } })
    assert.deepEqual(store.pools.nodesUsing('xs'), ['env1/compute-1'])
    assert.throws(() => store.pools.remove('xs'), /Can't remove pool "xs": node env1\/compute-1 belongs to it/)
    store.environments.removeNode('env1', 'compute-1')
    store.pools.remove('xs')
    assert.equal(store.pools.get('xs'), undefined)
  } finally {
    store.close()
  }
})

test('connectPool logs in to the pool; PoolConnections reuses one connection per pool and logs out on close', async () => {
  const sim = createSimulator({ password: PASSWORD, pool: { hosts: 1, templates: false } })
  const { url } = await sim.listen({ port: 0, members: false })
  const store = StateStore.open({ dataDir: tmp('xenstack-pools-') })
  try {
    store.pools.add({ name: 'sim', url, username: 'root', password: PASSWORD })
    store.pools.add({ name: 'wrong', url, username: 'root', password: 'not-it' })
    const xapi = await connectPool(store, 'sim')
    const hosts = (await xapi.call('host.get_all')) as string[]
    assert.equal(hosts.length, 1)
    await xapi.close()
    await assert.rejects(connectPool(store, 'wrong'), (e: Error) => {
      assert.match(e.message, /pool "wrong" \(http:\/\/127\.0\.0\.1:\d+\): cannot log in as root/)
      assert.ok(!e.message.includes('not-it'), 'the error shows the password')
      return true
    })
    const sessionsBefore = (await sessionCount(sim)).length
    const conns = new PoolConnections(store)
    assert.equal(conns.get('sim'), conns.get('sim'))
    await conns.get('sim').call('pool.get_all')
    await conns.get('sim').call('host.get_all')
    assert.equal((await sessionCount(sim)).length, sessionsBefore + 1)
    await conns.close()
    assert.equal((await sessionCount(sim)).length, sessionsBefore)
  } finally {
    store.close()
    await sim.close()
  }
})

async function sessionCount(sim: ReturnType<typeof createSimulator>): Promise<string[]> {
  return [...sim.db.all('session')].map(([ref]) => ref)
}
