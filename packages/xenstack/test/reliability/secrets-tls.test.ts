// Issue 14 item 5, TLS to XAPI verifies by default: the simulator behind a TLS terminator with a self-signed
// certificate (as a XenServer host has out of the box), reached the ways xenstack reaches a pool — a pool of the state
// store through `connectPool` (what the engine, health checks and server use) and the CLI's `pool add` — is refused
// without a CA or a pin, naming the host and the certificate problem; accepted with the pinned SHA-256 fingerprint or
// the certificate as CA; refused with a wrong pin, naming both fingerprints; and reached unverified only with the
// explicit flag (`tls.verify: false`, `--insecure`), which is warned about. The password appears in none of the
// errors, warnings or outputs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  hasExecutable,
  makeSelfSignedCert,
  requirePrerequisite,
  scratchDirs,
  startTlsTerminator,
} from '@xenstack/testkit'
import { startSimServer } from '@xenstack/xapi-sim'
import { connectPool } from '../../src/state/pools.js'
import { openStore } from '../state/databases.js'
import { xenstack } from '../lab-fixture/cli.js'

const tmp = scratchDirs()
const PASSWORD = 'Tls-Sweep-S3cret-Pw'

test('TLS to XAPI: verified by default, pinned or CA accepted, wrong pin refused, unverified only when asked and warned', async (t) => {
  if (!requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))) return
  const tls = makeSelfSignedCert()
  t.after(() => tls.dispose())
  const { cert, fingerprint } = tls
  const sim = await startSimServer({ password: PASSWORD, listen: '127.0.0.1:0' })
  t.after(() => sim.close())
  // TLS on one port, plain TCP to the simulator behind it (XAPI's own port 443 is TLS the same way)
  const proxy = await startTlsTerminator(tls, Number(new URL(sim.url).port))
  t.after(() => proxy.close())
  const url = proxy.url
  const seen: string[] = []
  const noPassword = (text: string, where: string) => {
    seen.push(text)
    assert.ok(!text.includes(PASSWORD), `${where} shows the password`)
  }

  await t.test('a pool of the state store (connectPool, as the engine and the server reach it)', async (st) => {
    const store = openStore(st, 'sqlite', tmp('xenstack-tls-store-'))
    if (!store) return
    st.after(() => store.close())
    store.pools.add({ name: 'tls', url, username: 'root', password: PASSWORD })
    assert.equal(store.pools.require('tls').tls.verify, true, 'verification is on unless switched off')
    const warnings: string[] = []
    const logger = { warn: (m: string) => warnings.push(m) }

    const refused = await connectPool(store, 'tls', { logger }).then(
      () => assert.fail('a self-signed certificate was accepted without a CA or a pin'),
      (e: Error) => e,
    )
    const chain = `${refused.message} ${String((refused.cause as Error)?.cause ?? '')}`
    assert.match(refused.message, /pool "tls" \(https:\/\/127\.0\.0\.1:\d+\)/)
    assert.match(chain, /self[- ]signed|certificate/i, chain)
    noPassword(chain, 'the refusal')

    store.pools.update('tls', { tls: { fingerprint } })
    const pinned = await connectPool(store, 'tls', { logger })
    assert.ok((await pinned.host.get_all()).length > 0)
    await pinned.close()

    const other = fingerprint.replace(/^../, (h) => (h === 'AA' ? 'BB' : 'AA'))
    store.pools.update('tls', { tls: { fingerprint: other } })
    const wrongPin = await connectPool(store, 'tls', { logger }).then(
      () => assert.fail('a certificate that does not match the pin was accepted'),
      (e: Error) => e,
    )
    const wrongText = `${wrongPin.message} ${String((wrongPin.cause as Error)?.cause ?? '')}`
    assert.match(wrongText, /fingerprint/i)
    assert.ok(wrongText.toLowerCase().replace(/:/g, '').includes(fingerprint.toLowerCase().replace(/:/g, '')))
    noPassword(wrongText, 'the wrong-pin refusal')

    store.pools.update('tls', { tls: { fingerprint: '', ca: cert } })
    const withCa = await connectPool(store, 'tls', { logger })
    assert.ok((await withCa.host.get_all()).length > 0)
    await withCa.close()
    assert.equal(warnings.length, 0, `no warning while verifying: ${warnings.join(' | ')}`)

    store.pools.update('tls', { tls: { ca: '', verify: false } })
    const insecure = await connectPool(store, 'tls', { logger })
    assert.ok((await insecure.host.get_all()).length > 0)
    await insecure.close()
    assert.ok(
      warnings.some((w) => /verification is DISABLED/.test(w) && w.includes(new URL(url).host)),
      `a warning naming the host: ${warnings.join(' | ')}`,
    )
    warnings.forEach((w) => noPassword(w, 'the warning'))
  })

  await t.test(
    'the CLI: pool add refuses an unverified certificate; --fingerprint and --insecure (warned) work',
    async () => {
      const home = tmp('xenstack-tls-cli-')
      const add = (name: string, ...flags: string[]) =>
        xenstack(home, ['pool', 'add', name, '--url', url, '--password-stdin', ...flags], {
          stdin: PASSWORD + '\n',
          env: { DATABASE_URL: '', XENSTACK_SHIPPED_PLUGINS: 'none' },
          timeoutMs: 120_000,
        })
      const plain = await add('plain')
      noPassword(plain.stdout + plain.stderr, 'pool add (refused)')
      assert.equal(plain.code, 4, `exit 4 (connection) expected: ${plain.stderr}`)
      assert.match(plain.stderr, /certificate/i)
      const pinned = await add('pinned', '--fingerprint', fingerprint)
      noPassword(pinned.stdout + pinned.stderr, 'pool add --fingerprint')
      assert.equal(pinned.code, 0, pinned.stderr)
      assert.match(pinned.stdout, /TLS pinned/)
      assert.doesNotMatch(pinned.stderr, /warning/)
      const insecure = await add('insecure', '--insecure')
      noPassword(insecure.stdout + insecure.stderr, 'pool add --insecure')
      assert.equal(insecure.code, 0, insecure.stderr)
      assert.match(insecure.stderr, /warning: .*TLS verification OFF/)
      assert.match(insecure.stdout, /TLS NOT VERIFIED/)
    },
  )
  t.diagnostic(`${seen.length} errors, warnings and outputs checked for the password: none has it`)
})
