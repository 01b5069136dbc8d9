// The state store behaves the same on SQLite and on PostgreSQL: every repository, transactions and savepoints,
// and the deployment engine's journal (the scheduler's write-before-act path), run against both backends.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { MIGRATIONS } from '../../src/state/migrations.js'
import { StateError, StateStore } from '../../src/state/store.js'
import { translateSql } from '../../src/state/postgres.js'
import { EngineStore } from '../../src/engine/store.js'
import { deployEnvironment, type DeployableEnvironment } from '../../src/engine/deployment.js'
import { LocalExecutor } from '../../src/node/local-executor.js'
import { BACKENDS, databaseUrlFor, openStore } from './databases.js'

const tmp = scratchDirs()
const SECRET = 'Backend-S3cret-Passw0rd'

test('PostgreSQL translation: placeholders outside quotes, two-argument MIN/MAX', () => {
  assert.equal(
    translateSql(`SELECT '?', "a?" FROM t WHERE a = ? AND b = ? -- why?\nAND c = ?`),
    `SELECT '?', "a?" FROM t WHERE a = $1 AND b = $2 -- why?\nAND c = $3`,
  )
  assert.equal(
    translateSql('SET n = MIN(t.samples + 1, 20), m = MAX(x, ?)'),
    'SET n = LEAST(t.samples + 1, 20), m = GREATEST(x, $1)',
  )
  assert.equal(translateSql('SELECT MAX(id) FROM t'), 'SELECT MAX(id) FROM t')
})

for (const backend of BACKENDS) {
  test(`${backend}: migrations are applied once, recorded in order, and reopening applies nothing`, (t) => {
    const home = tmp('xenstack-backend-')
    const url = databaseUrlFor(t, backend)
    if (url === undefined) return
    const s1 = StateStore.open({ dataDir: home, databaseUrl: url })
    assert.equal(s1.backend, backend)
    assert.deepEqual(s1.appliedMigrations(), MIGRATIONS.map((m) => m.id).sort())
    const extra = { id: '0999_test_extra', statements: ['CREATE TABLE test_extra (id TEXT PRIMARY KEY, n BIGINT)'] }
    assert.deepEqual(s1.migrate([...MIGRATIONS, extra]), ['0999_test_extra'])
    s1.close()
    const s2 = StateStore.open({ dataDir: home, databaseUrl: url })
    assert.deepEqual(s2.migrate([...MIGRATIONS, extra]), [])
    // A failing migration is rolled back whole and not recorded.
    const bad = { id: '0998_bad', statements: ['CREATE TABLE half_done (id TEXT)', 'CREATE TABLE broken ('] }
    assert.throws(() => s2.migrate([...MIGRATIONS, bad]))
    assert.equal(s2.appliedMigrations().includes('0998_bad'), false)
    assert.throws(() => s2.db.prepare('SELECT * FROM half_done').all())
    s2.close()
  })

  test(`${backend}: plugins, releases, environments, nodes and pools round-trip with the same values`, (t) => {
    const home = tmp('xenstack-backend-')
    const s = openStore(t, backend, home)
    if (!s) return
    t.after(() => s.close())
    const data = {
      metadata: { name: 'p' },
      attributes: {},
      components: [],
      deploymentTasks: [],
      legacyTasks: [],
      nodeRoles: {},
      networkRoles: [],
      nodeConfig: {},
      nicConfig: {},
      bondConfig: {},
      nodeTags: {},
    }
    const p = s.plugins.add({
      name: 'p',
      version: '1.0.1',
      packageVersion: '4.0.0',
      title: 'P',
      description: 'd',
      dir: '/x',
      data,
      files: [{ path: 'a.sh', sha256: 'f'.repeat(64), size: 5_000_000_000 }],
    })
    assert.equal(p.major, '1.0')
    assert.deepEqual(p.files, [{ path: 'a.sh', sha256: 'f'.repeat(64), size: 5_000_000_000 }])
    assert.throws(
      () => s.plugins.add({ ...p }),
      (e: StateError) => e.code === 'conflict',
    )

    s.releases.upsert({ name: 'R', version: '1', operatingSystem: 'Ubuntu', source: 'builtin', data: { a: 1 } })
    s.releases.upsert({ name: 'R', version: '2', operatingSystem: 'Ubuntu', source: 'builtin', data: { a: 2 } })
    assert.deepEqual(
      s.releases.list().map((r) => [r.name, r.version, r.data]),
      [['R', '2', { a: 2 }]],
    )

    s.environments.create({
      name: 'env1',
      release: 'R',
      components: ['hypervisor:xen'],
      settings: { xen: { password: { type: 'password', value: SECRET }, user: { type: 'text', value: 'root' } } },
    })
    assert.throws(() => s.environments.create({ name: 'env1', release: 'R', settings: {} }), /already exists/)
    s.environments.setPlugin('env1', 'p', '1.0.1', true)
    s.environments.setPlugin('env1', 'p', '1.0.1', true) // upsert: still one row
    assert.deepEqual(s.environments.require('env1').plugins, [{ name: 'p', version: '1.0.1', enabled: true }])
    assert.throws(
      () => s.plugins.remove('p', '1.0.1'),
      /Can't delete plugin p==1.0.1: it is enabled for environment env1/,
    )
    assert.equal(s.environments.settings('env1').xen.password.value, '********')
    assert.equal(s.environments.settings('env1', { reveal: true }).xen.password.value, SECRET)
    const raw = s.db.prepare('SELECT settings_json FROM environments WHERE name = ?').get('env1') as {
      settings_json: string
    }
    assert.equal(raw.settings_json.includes(SECRET), false, 'the password is stored encrypted')

    s.environments.addNode('env1', { name: 'n1', roles: ['compute'], data: { pool: 'pool1' } })
    s.environments.updateNode('env1', 'n1', { status: 'ready' })
    assert.deepEqual(
      s.environments.nodes('env1').map((n) => [n.name, n.roles, n.status, n.data]),
      [['n1', ['compute'], 'ready', { pool: 'pool1' }]],
    )
    s.pools.add({ name: 'pool1', url: 'http://127.0.0.1:1', username: 'root', password: SECRET })
    assert.equal(s.pools.list()[0].password, '********')
    assert.equal(s.pools.get('pool1', { reveal: true })?.password, SECRET)
    assert.throws(() => s.pools.remove('pool1'), /env1\/n1/)

    // Deleting the environment cascades to its nodes and plugin rows (foreign keys on both backends).
    s.environments.delete('env1')
    assert.equal((s.db.prepare('SELECT COUNT(*) AS n FROM nodes').get() as { n: number }).n, 0)
    assert.equal(s.plugins.remove('p', '1.0.1').name, 'p')
    assert.equal((s.db.prepare('SELECT COUNT(*) AS n FROM plugin_files').get() as { n: number }).n, 0)
  })

  test(`${backend}: transactions commit or roll back whole; a failing nested one rolls back to its savepoint`, (t) => {
    const home = tmp('xenstack-backend-')
    const s = openStore(t, backend, home)
    if (!s) return
    t.after(() => s.close())
    const add = (name: string) => s.environments.create({ name, release: 'R', settings: {} })
    assert.throws(() =>
      s.transaction(() => {
        add('a')
        throw new Error('boom')
      }),
    )
    assert.equal(s.environments.get('a'), undefined)
    s.transaction(() => {
      add('b')
      assert.throws(() =>
        s.transaction(() => {
          add('c')
          add('c')
        }),
      )
      add('d')
    })
    assert.deepEqual(
      s.environments.list().map((e) => e.name),
      ['b', 'd'],
    )
    // exec runs a script of several statements, as better-sqlite3's does.
    s.db.exec(`CREATE TABLE script_a (id TEXT PRIMARY KEY); INSERT INTO script_a (id) VALUES ('x; y');
      CREATE TABLE script_b (id TEXT)`)
    assert.deepEqual(s.db.prepare('SELECT id FROM script_a').all(), [{ id: 'x; y' }])
    assert.deepEqual(s.db.prepare('SELECT id FROM script_b').all(), [])
    const immediate = s.db.transaction((n: string) => add(n))
    immediate.immediate('e')
    assert.ok(s.environments.get('e'))
  })

  test(`${backend}: the engine's journal records a deployment (plan, statuses, history, digests, durations)`, async (t) => {
    const home = tmp('xenstack-backend-')
    const s = openStore(t, backend, home)
    if (!s) return
    t.after(() => s.close())
    const engine = new EngineStore(s.db)
    const work = mkdtempSync(join(tmpdir(), 'xenstack-backend-work-'))
    t.after(() => rmSync(work, { recursive: true, force: true }))
    const env: DeployableEnvironment = {
      name: 'jr',
      tasks: [
        {
          task: { id: 'one', type: 'shell', roles: ['compute'], parameters: { cmd: `echo one > ${work}/one` } },
          source: 'release',
        },
        {
          task: { id: 'two', type: 'shell', roles: ['compute'], requires: ['one'], parameters: { cmd: 'echo two' } },
          source: 'release',
        },
      ],
      nodes: [{ name: 'local1', roles: ['compute'] }],
      models: {},
      access: { executor: () => new LocalExecutor() },
    }
    const first = await deployEnvironment(engine, env)
    assert.equal(first.kind, 'deployment')
    if (first.kind !== 'deployment') return
    assert.equal(first.summary.status, 'ready')
    assert.deepEqual(first.summary.tasks, { total: 2, succeeded: 2, failed: 0, skipped: 0 })
    assert.deepEqual(
      engine
        .tasks(first.summary.deployment)
        .filter((r) => r.task === 'one' || r.task === 'two')
        .map((r) => [r.task, r.status, r.attempt]),
      [
        ['one', 'succeeded', 1],
        ['two', 'succeeded', 1],
      ],
    )
    assert.ok(engine.history(first.summary.deployment).length >= 2)
    assert.ok(engine.durations().has('one'), 'durations learned')
    // Redeploy with nothing changed: the digests recorded by the first run make every task skip.
    const second = await deployEnvironment(engine, env)
    assert.equal(second.kind, 'deployment')
    if (second.kind !== 'deployment') return
    assert.equal(second.summary.status, 'ready')
    assert.equal(second.summary.deployment, first.summary.deployment + 1)
    assert.equal(second.summary.tasks.succeeded, 0)
    assert.equal(engine.latestDeployment('jr')?.id, second.summary.deployment)
  })
}
