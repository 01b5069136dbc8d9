// Issue 14 item 5, the state store on both backends (the lab sweep in secrets.test.ts runs on SQLite only): an
// environment with the XenServer plugin whose password settings are set and changed, a pool with its password, API
// tokens — then every row of every table, the environment export, and the database's own bytes on disk (SQLite:
// state.db, its WAL and shared memory; PostgreSQL: the database's relation files, the server's WAL written meanwhile
// and its log) are searched for each secret in every encoding. Secrets are stored only encrypted (`enc:v1:`) or hashed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { ensureShippedPlugins } from '../../src/integration/shipped.js'
import { changeSettings, createEnvironment, resolveRelease } from '../../src/plugins/environment.js'
import { exportEnvironment } from '../../src/envfile/apply.js'
import { TokenStore } from '../../src/server/auth.js'
import { BACKENDS, openStore } from '../state/databases.js'
import { needlesOf, Sweep, type Secret } from './secrets-sweep.js'

const tmp = scratchDirs()
const fresh = (what: string) => `${what}/+"${randomBytes(12).toString('base64url')}&%`

/** The PostgreSQL server's data directory when it runs on this machine (as scripts/setup.sh starts it). */
function postgresDataDir(): string | undefined {
  const root = '/var/lib/postgresql'
  if (!existsSync(root)) return undefined
  for (const version of readdirSync(root).sort().reverse()) {
    const main = join(root, version, 'main')
    if (existsSync(join(main, 'base'))) return main
  }
  return undefined
}

for (const backend of BACKENDS) {
  test(`${backend}: password settings, pool passwords and API tokens are stored only encrypted or hashed — rows and raw bytes`, async (t) => {
    const started = Date.now()
    const dataDir = tmp('xenstack-secrets-store-')
    const store = openStore(t, backend, dataDir)
    if (!store) return
    t.after(() => store.close())
    const secrets: Secret[] = [
      { what: 'XenServer password', value: fresh('Xs') },
      { what: 'XenServer password (changed)', value: fresh('Xs2') },
      { what: 'Keystone admin password', value: fresh('Ks') },
      { what: 'pool password', value: fresh('Pool') },
    ]
    const [xs, xs2, keystone, poolPassword] = secrets.map((s) => s.value)

    ensureShippedPlugins(store)
    const release = resolveRelease(store)
    const defaults = release.components.filter((c) => c.default).map((c) => c.name)
    const env = createEnvironment(store, {
      name: 'secrets',
      components: [...defaults.filter((c) => !c.startsWith('hypervisor:')), 'hypervisor:xenserver'],
      plugins: [{ name: 'xenserver' }],
      settings: {
        'xenserver.username.value': 'root',
        'xenserver.password.value': xs,
        'access.password.value': keystone,
      },
    }).name
    changeSettings(store, env, { 'xenserver.password.value': xs2 })
    store.pools.add({ name: 'secrets', url: 'https://192.0.2.10', username: 'root', password: poolPassword })
    const tokens = new TokenStore(store)
    for (const name of ['first start', 'cli', 'ops']) {
      const token = tokens.create(name)
      secrets.push({ what: `API token (${name})`, value: token })
      secrets.push({ what: `API token secret (${name})`, value: /^xst_[0-9a-f]{16}_(.+)$/.exec(token)![1] })
    }
    tokens.rotate('ops')

    // they are there for who may see them
    const revealed = store.environments.settings(env, { reveal: true }) as Record<string, any>
    assert.equal(revealed.xenserver.password.value, xs2)
    assert.equal(revealed.access.password.value, keystone)
    assert.equal(store.pools.require('secrets', { reveal: true }).password, poolPassword)
    // and nowhere else
    const sweep = new Sweep(secrets.flatMap(needlesOf))
    const shown = store.environments.settings(env) as Record<string, any>
    sweep.search('redacted read', 'environments.settings', JSON.stringify(shown))
    sweep.search('redacted read', 'pools.list', JSON.stringify(store.pools.list()))
    sweep.search('environment export', 'encrypted', exportEnvironment(store, env))
    sweep.search('environment export', 'env references', exportEnvironment(store, env, { secrets: 'env' }))

    const list =
      store.backend === 'sqlite'
        ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        : 'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1'
    let rows = 0
    const tables = store.db.prepare(list).all() as { name: string }[]
    for (const { name } of tables)
      for (const [i, row] of (store.db.prepare(`SELECT * FROM "${name}"`).all() as object[]).entries()) {
        rows++
        sweep.search('row', `${name} #${i + 1}`, JSON.stringify(row))
      }
    const pool = store.db.prepare('SELECT password FROM pools').get() as { password: string }
    assert.match(pool.password, /^enc:v1:/)

    // The raw bytes; the stored ciphertext of the pool password is searched there too: the scan must see it (it
    // proves the files searched are the ones holding the data).
    const canary = new Sweep(needlesOf({ what: 'stored ciphertext', value: pool.password }).slice(0, 1))
    const rawFiles = (kind: string, dir: string, opts: { since?: number } = {}) => {
      sweep.files(kind, dir, opts)
      canary.files(kind, dir, opts)
    }
    let raw = true
    if (store.backend === 'sqlite') rawFiles('database file', dataDir)
    else {
      const main = postgresDataDir()
      if (main) {
        const { oid } = store.db.prepare('SELECT oid FROM pg_database WHERE datname = current_database()').get() as {
          oid: number
        }
        rawFiles('database file', join(main, 'base', String(oid)))
        rawFiles('server WAL', join(main, 'pg_wal'), { since: started - 1000 })
        rawFiles('server log', '/var/log/postgresql', { since: started - 1000 })
      } else {
        raw = false
        t.diagnostic('the PostgreSQL server is not on this machine: its files are not searched (rows are)')
      }
    }
    if (raw) assert.ok(canary.findings.length > 0, 'the raw scan did not see the stored ciphertext')
    const total = Object.values(sweep.places).reduce((a, b) => a + b, 0)
    t.diagnostic(
      `${backend}: ${secrets.length} secrets in ${total} places (${Object.entries(sweep.places)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}; ${rows} rows of ${tables.length} tables); found ${sweep.findings.length}`,
    )
    assert.deepEqual(sweep.findings, [], 'secrets found')
  })
}
