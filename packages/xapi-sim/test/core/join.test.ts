/** pool.join between two simulators in one process; the joined host's address is then served as a member. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSimulator } from '../../src/index.js'

test('pool.join moves a standalone host into the master pool; its address then redirects to the master', async (t) => {
  const master = createSimulator({
    password: 'pw',
    pool: { name: 'big', hosts: [{ name: 'm', address: '127.0.7.1' }] },
  })
  const joiner = createSimulator({
    password: 'pw2',
    pool: { name: 'solo', hosts: [{ name: 'j', address: '127.0.7.2' }], templates: false },
  })
  const lm = await master.listen({ port: 0 })
  const lj = await joiner.listen({ port: lm.port })
  t.after(async () => {
    await joiner.close()
    await master.close()
  })
  const json = async (base: string, method: string, params: unknown[]) => {
    const r = await fetch(`${base}/jsonrpc`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', method, params, id: 1 }),
    })
    return (await r.json()) as { result?: unknown; error?: { message: string; data: string[] } }
  }
  const s = (await json(lj.url, 'session.login_with_password', ['root', 'pw2'])).result as string
  const bad = await json(lj.url, 'pool.join', [s, '127.0.7.1', 'root', 'wrong'])
  assert.equal(bad.error?.message, 'SESSION_AUTHENTICATION_FAILED')
  const ok = await json(lj.url, 'pool.join', [s, '127.0.7.1', 'root', 'pw'])
  assert.ok(!ok.error, JSON.stringify(ok.error))
  const ms = (await json(lm.url, 'session.login_with_password', ['root', 'pw'])).result as string
  const hosts = (await json(lm.url, 'host.get_all_records', [ms])).result as Record<string, { name_label: string }>
  assert.deepEqual(
    Object.values(hosts)
      .map((h) => h.name_label)
      .sort(),
    ['j', 'm'],
  )
  const pifs = (await json(lm.url, 'PIF.get_all_records_where', [ms, 'field "IP"="127.0.7.2"'])).result as object
  assert.equal(Object.keys(pifs).length, 1)
  const redirected = await json(lj.url, 'session.login_with_password', ['root', 'pw'])
  assert.deepEqual(redirected.error, { code: 1, message: 'HOST_IS_SLAVE', data: ['127.0.7.1'] })
})
