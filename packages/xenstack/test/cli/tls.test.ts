/**
 * TLS from the CLI: a self-signed certificate in front of the simulator (an in-test TLS terminator, openssl for the
 * certificate). Verified by default; trusted with --ca or --fingerprint; --insecure works and says so.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createServer as createTlsServer, type Server } from 'node:tls'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { runCli } from './run.js'

const PASSWORD = 'cli-tls-Secr3t!'
const scratch = scratchDirs()
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }
let sim: SimServer | undefined
let proxy: Server | undefined
let url = ''
let caFile = ''
let fingerprint = ''

before(async () => {
  if (!hasExecutable('openssl')) return
  const dir = scratch('xenstack-cli-tls-')
  caFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      caFile,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  )
  fingerprint = execFileSync('openssl', ['x509', '-in', caFile, '-noout', '-fingerprint', '-sha256'], {
    encoding: 'utf8',
  })
    .trim()
    .split('=')[1]
  sim = await startSimServer({ hosts: 1, vms: 1, password: PASSWORD })
  const port = Number(new URL(sim.url).port)
  proxy = createTlsServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (client) => {
    const upstream = netConnect(port, '127.0.0.1')
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((r) => proxy!.listen(0, '127.0.0.1', r))
  url = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`
})
after(async () => {
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)))
  await sim?.close()
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
