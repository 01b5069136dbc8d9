/**
 * TLS from the CLI: a self-signed certificate in front of the simulator (an in-test TLS terminator, openssl for the
 * certificate). Verified by default; trusted with --ca or --fingerprint; --insecure works and says so.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import {
  hasExecutable,
  makeSelfSignedCert,
  requirePrerequisite,
  scratchDirs,
  startTlsTerminator,
  type SelfSignedCert,
  type TlsTerminator,
} from '@xenstack/testkit'
import { runCli } from './run.js'

const PASSWORD = 'cli-tls-Secr3t!'
const scratch = scratchDirs()
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }
let sim: SimServer | undefined
let cert: SelfSignedCert | undefined
let proxy: TlsTerminator | undefined
let url = ''
let caFile = ''
let fingerprint = ''

before(async () => {
  if (!hasExecutable('openssl')) return
  cert = makeSelfSignedCert()
  caFile = cert.certFile
  fingerprint = cert.fingerprint
  sim = await startSimServer({ hosts: 1, vms: 1, password: PASSWORD })
  proxy = await startTlsTerminator(cert, Number(new URL(sim.url).port))
  url = proxy.url
})
after(async () => {
  await proxy?.close()
  await sim?.close()
  cert?.dispose()
})

test('an untrusted certificate is refused by default (exit 4, a hint); --ca, --fingerprint and --insecure connect', async (t) => {
  if (!requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))) return
  const refused = await runCli(['xapi', 'host-list', '--url', url], env)
  assert.equal(refused.code, 4)
  assert.match(refused.stderr, new RegExp(`^xenstack: ${url.replace(/[.]/g, '\\.')} is unreachable: .*`))
  assert.match(refused.stderr, /hint: trust the pool with --ca FILE or --fingerprint SHA256/)

  for (const trust of [
    ['--ca', caFile],
    ['--fingerprint', fingerprint],
  ]) {
    const r = await runCli(['xapi', 'host-list', '--url', url, ...trust, '--json'], env)
    assert.equal(r.code, 0, `${trust[0]}: ${r.stderr}`)
    assert.equal((JSON.parse(r.stdout) as unknown[]).length, 1)
    assert.equal(r.stderr, '')
  }
  const wrongPin = await runCli(['xapi', 'host-list', '--url', url, '--fingerprint', 'ab'.repeat(32)], env)
  assert.equal(wrongPin.code, 4)

  const insecure = await runCli(['xapi', 'host-list', '--url', url, '--insecure', '--json'], env)
  assert.equal(insecure.code, 0, insecure.stderr)
  assert.match(insecure.stderr, /^warning: TLS certificate verification is OFF for 127\.0\.0\.1:\d+/)
})

test('pool add --fingerprint stores the pin; --pool uses it with nothing else given', async (t) => {
  if (!requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))) return
  const dataDir = scratch('xenstack-cli-tls-data-')
  const add = await runCli(
    ['pool', 'add', 'tls1', '--url', url, '--fingerprint', fingerprint, '--data-dir', dataDir, '--json'],
    env,
  )
  assert.equal(add.code, 0, add.stderr)
  assert.equal(JSON.parse(add.stdout).tls.fingerprint, fingerprint.replace(/:/g, '').toLowerCase())
  const r = await runCli(['xapi', 'host-list', '--pool', 'tls1', '--data-dir', dataDir, '--json'], {
    XENSTACK_XAPI_PASSWORD: undefined,
  })
  assert.equal(r.code, 0, r.stderr)
  const untrusted = await runCli(['pool', 'add', 'tls2', '--url', url, '--data-dir', dataDir], env)
  assert.equal(untrusted.code, 4)
  assert.match(untrusted.stderr, /pool tls2 \(https:\/\/127\.0\.0\.1:\d+\) is unreachable/)
})
