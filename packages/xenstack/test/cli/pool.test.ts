import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { runCli } from './run.js'
import { storedStateText } from '../state/databases.js'

const PASSWORD = 'cli-pool-Secr3t!'
const scratch = scratchDirs()
let sim: SimServer
let dataDir: string
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }

before(async () => {
  sim = await startSimServer({ hosts: 2, vms: 2, password: PASSWORD })
  dataDir = scratch('xenstack-cli-pool-')
})
after(() => sim?.close())

test('pool add checks the login, stores the password encrypted, list/show never print it', async () => {
  const add = await runCli(['pool', 'add', 'lab1', '--url', sim.url, '--data-dir', dataDir, '--json'], env)
  assert.equal(add.code, 0, add.stderr)
  const saved = JSON.parse(add.stdout) as Record<string, any>
  assert.deepEqual(
    { name: saved.name, url: saved.url, username: saved.username, tls: saved.tls },
    { name: 'lab1', url: sim.url, username: 'root', tls: { verify: true } },
  )
  assert.ok(!storedStateText(dataDir).includes(PASSWORD), 'the password is not in the database in plain text')
  const store = StateStore.open({ dataDir })
  try {
    assert.equal(store.pools.require('lab1', { reveal: true }).password, PASSWORD)
  } finally {
    store.close()
  }
  for (const args of [
    ['pool', 'list'],
    ['pool', 'list', '--json'],
    ['pool', 'show', 'lab1'],
    ['pool', 'show', 'lab1', '--json'],
  ]) {
    const r = await runCli([...args, '--data-dir', dataDir], env)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.includes('lab1'))
    assert.ok(!r.stdout.includes(PASSWORD) && !r.stdout.includes('enc:v1:'), args.join(' '))
  }
  const show = JSON.parse((await runCli(['pool', 'show', 'lab1', '--json', '--data-dir', dataDir], env)).stdout)
  assert.deepEqual(show.nodes, [])
})

test('--pool NAME and XENSTACK_POOL connect with the stored credentials (no password in the environment)', async () => {
  const noPw = { XENSTACK_XAPI_PASSWORD: undefined, XENSTACK_POOL: undefined }
  const r = await runCli(['xapi', 'host-list', '--pool', 'lab1', '--data-dir', dataDir, '--json'], noPw)
  assert.equal(r.code, 0, r.stderr)
  assert.equal((JSON.parse(r.stdout) as unknown[]).length, 2)
  const viaEnv = await runCli(['xapi', 'host-list', '--data-dir', dataDir, '--json'], {
    ...noPw,
    XENSTACK_POOL: 'lab1',
  })
  assert.equal(viaEnv.code, 0, viaEnv.stderr)
  const unknown = await runCli(['xapi', 'host-list', '--pool', 'nope', '--data-dir', dataDir], noPw)
  assert.equal(unknown.code, 3)
  assert.match(unknown.stderr, /^xenstack: no pool profile "nope"\nhint: profiles: lab1\n$/)
})

test('pool add with a wrong password saves nothing; the password is in no output', async () => {
  const wrong = 'wrong-Passw0rd-for-the-test'
  const r = await runCli(['pool', 'add', 'bad', '--url', sim.url, '--data-dir', dataDir], {
    XENSTACK_XAPI_PASSWORD: wrong,
  })
  assert.equal(r.code, 4)
  assert.match(r.stderr, /login as root refused/)
  assert.ok(!r.stderr.includes(wrong) && !r.stdout.includes(wrong))
  const list = JSON.parse((await runCli(['pool', 'list', '--json', '--data-dir', dataDir], env)).stdout) as any[]
  assert.deepEqual(
    list.map((p) => p.name),
    ['lab1'],
  )
})

test('pool add: an unreachable URL is exit 4 unless --no-check; --insecure is stored and warned about', async () => {
  const down = await runCli(['pool', 'add', 'down', '--url', 'http://127.0.0.1:9', '--data-dir', dataDir], env)
  assert.equal(down.code, 4)
  assert.match(down.stderr, /pool down \(http:\/\/127\.0\.0\.1:9\) is unreachable/)
  const offline = await runCli(
    [
      'pool',
      'add',
      'down',
      '--url',
      'https://xs.example:443',
      '--insecure',
      '--no-check',
      '--data-dir',
      dataDir,
      '--json',
    ],
    env,
  )
  assert.equal(offline.code, 0, offline.stderr)
  assert.match(offline.stderr, /TLS verification OFF/)
  assert.equal(JSON.parse(offline.stdout).tls.verify, false)
  const again = await runCli(
    ['pool', 'add', 'down', '--url', 'https://xs.example', '--no-check', '--data-dir', dataDir],
    env,
  )
  assert.equal(again.code, 1)
  assert.match(again.stderr, /already exists\nhint: add --replace/)
  const replaced = await runCli(
    ['pool', 'add', 'down', '--url', 'https://xs2.example', '--no-check', '--replace', '--data-dir', dataDir, '--json'],
    env,
  )
  assert.equal(replaced.code, 0, replaced.stderr)
  assert.equal(JSON.parse(replaced.stdout).url, 'https://xs2.example')
  assert.equal(JSON.parse(replaced.stdout).tls.verify, true)
})

test('pool remove: removed once, then not found (exit 3)', async () => {
  const r = await runCli(['pool', 'remove', 'down', '--data-dir', dataDir], env)
  assert.equal(r.code, 0, r.stderr)
  const again = await runCli(['pool', 'remove', 'down', '--data-dir', dataDir], env)
  assert.equal(again.code, 3)
  assert.match(again.stderr, /pool "down" does not exist/)
})
