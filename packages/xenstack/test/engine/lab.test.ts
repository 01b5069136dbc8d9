import { test } from 'node:test'
import assert from 'node:assert/strict'
import { withLab } from '../../src/lab/index.js'
import { DirectoryResource, FileResource, IniSetting, Secret } from '../../src/node/index.js'
import { deployEnvironment, type DeployableEnvironment } from '../../src/engine/deployment.js'
import { nodeAccessFromRecords } from '../../src/engine/node-access.js'
import { EngineStore } from '../../src/engine/store.js'
import type { NativeTask } from '../../src/engine/tasks.js'
import Database from 'better-sqlite3'
import { labPrerequisite } from '../node/helpers.js'

test('on lab hosts over SSH: dry run changes nothing, deploy converges, a second deploy changes nothing, secrets stay out of the store', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab({ hosts: 1, controllers: 0, storageNode: false, httpProbePort: false }, async (lab) => {
    const db = new Database(':memory:')
    const store = new EngineStore(db)
    const password = 'Sup3r-s3cret-pw'
    const natives = new Map<string, NativeTask>([
      [
        'nova-compute-conf',
        {
          resources: (ctx) => [
            new DirectoryResource({ path: '/etc/xenstack-engine', mode: 0o755 }),
            new FileResource({ path: '/etc/xenstack-engine/marker', content: `node ${ctx.node}\n`, mode: 0o644 }),
            new IniSetting({
              path: '/etc/xenstack-engine/nova-compute.conf',
              section: 'xenserver',
              key: 'connection_password',
              value: new Secret(String((ctx.settings.xenserver as { password: { value: string } }).password.value)),
            }),
          ],
        },
      ],
    ])
    const records = [{ name: 'compute-1', data: { ssh: lab.host('compute-1').ssh } }]
    const access = nodeAccessFromRecords(records)
    t.after(() => access.close())
    const env: DeployableEnvironment = {
      name: 'lab-env',
      tasks: [
        { task: { id: 'nova-compute-conf', type: 'native', roles: ['compute'] }, source: 'xenserver' },
        {
          task: {
            id: 'touch',
            type: 'shell',
            roles: ['compute'],
            requires: ['nova-compute-conf'],
            parameters: { cmd: 'touch /etc/xenstack-engine/touched', retries: 0 },
          },
          source: 'xenserver',
        },
      ],
      nodes: [{ name: 'compute-1', roles: ['compute'] }],
      models: { settings: { xenserver: { password: { type: 'password', value: password } } } },
      access,
      natives,
    }
    const exists = async (p: string) => (await lab.exec('compute-1', ['test', '-e', p])).code === 0

    const dry = await deployEnvironment(store, env, { dryRun: true })
    assert.ok(dry.kind === 'dry-run')
    if (dry.kind !== 'dry-run') return
    assert.equal(dry.plan.changes, 3)
    assert.equal(await exists('/etc/xenstack-engine'), false)
    assert.ok(!JSON.stringify(dry.plan).includes(password))

    const first = await deployEnvironment(store, env)
    assert.ok(first.kind === 'deployment')
    if (first.kind !== 'deployment') return
    assert.equal(first.summary.status, 'ready', JSON.stringify(first.summary.errors))
    assert.equal(first.summary.changes, 3)
    assert.ok(await exists('/etc/xenstack-engine/touched'))
    const conf = await lab.exec('compute-1', ['cat', '/etc/xenstack-engine/nova-compute.conf'])
    assert.match(conf.stdout, new RegExp(`connection_password = ${password}`))

    const again = await deployEnvironment(store, env, { force: true })
    assert.ok(again.kind === 'deployment' && again.summary.status === 'ready')
    assert.equal(again.kind === 'deployment' ? again.summary.changes : -1, 0)
    const dry2 = await deployEnvironment(store, env, { dryRun: true, force: true })
    assert.ok(dry2.kind === 'dry-run' && dry2.plan.changes === 0)

    // Nothing in the engine's tables holds the password.
    for (const table of [
      'engine_tasks',
      'engine_task_history',
      'engine_journal',
      'engine_deployment_meta',
      'engine_deployments',
    ]) {
      const rows = db.prepare(`SELECT * FROM ${table}`).all()
      assert.ok(!JSON.stringify(rows).includes(password), `${table} contains the password`)
    }
    db.close()
  })
})
