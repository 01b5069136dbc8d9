// The release's upload_configuration task (`data: { yaql_exp: '$.toYaml() }`, Fuel's core graph): the node's view
// of the deployment as YAML with passwords redacted, 0600; upload_file checks before it writes, so a forced
// redeploy leaves an equal file alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { parse as parseYaml } from 'yaml'
import { scratchDirs } from '@xenstack/testkit'
import { EngineStore } from '../../src/engine/store.js'
import { deployEnvironment, type DeployableEnvironment } from '../../src/engine/deployment.js'
import { TestLocalExecutor } from './local-exec.js'

const tmp = scratchDirs()

test('upload_file renders $.toYaml() without secrets and changes nothing the second time', async () => {
  const dir = tmp('xenstack-engine-upload-')
  const db = StateStore.open({ dataDir: dir })
  try {
    const store = new EngineStore(db.db)
    const path = join(dir, 'node', 'etc', 'xenstack', 'config.yaml')
    const secret = 'pw-Upl0ad-9'
    const env: DeployableEnvironment = {
      name: 'env-upload',
      tasks: [
        {
          task: {
            id: 'upload_configuration',
            type: 'upload_file',
            roles: ['/.*/'],
            parameters: { path, data: { yaql_exp: '$.toYaml()' } },
          },
          source: 'release',
        },
      ],
      nodes: [{ name: 'cmp1', roles: ['compute'] }],
      models: {
        release: { name: 'r', version: 'mitaka-9.0' },
        cluster: { net_segment_type: 'vlan' },
        settings: { xenserver: { password: { type: 'password', value: secret }, username: { value: 'root' } } },
      },
      access: { executor: (n) => new TestLocalExecutor(n) },
    }
    const first = await deployEnvironment(store, env)
    assert.ok(first.kind === 'deployment' && first.summary.status === 'ready', JSON.stringify(first))
    assert.equal(first.kind === 'deployment' ? first.summary.changes : -1, 1)
    const text = readFileSync(path, 'utf8')
    assert.ok(!text.includes(secret), 'the password is written to the node')
    const view = parseYaml(text) as Record<string, any>
    assert.equal(view.node, 'cmp1')
    assert.equal(view.release.version, 'mitaka-9.0')
    assert.equal(view.cluster.net_segment_type, 'vlan')
    assert.equal(view.settings.xenserver.username.value, 'root')
    assert.equal(view.settings.xenserver.password.value, '********')
    assert.equal(statSync(path).mode & 0o777, 0o600)
    const again = await deployEnvironment(store, env, { force: true })
    assert.ok(again.kind === 'deployment' && again.summary.status === 'ready')
    assert.equal(again.kind === 'deployment' ? again.summary.changes : -1, 0)
  } finally {
    db.close()
  }
})
