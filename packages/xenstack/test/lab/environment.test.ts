// The lab's environment registration (`lab up`) goes through createEnvironment: the release's settings are there,
// the pool is in store.pools with its password encrypted, nodes carry pool/vm/addresses/dom0, and, with the XenServer
// plugin installed, it is enabled through its component with the lab's credentials. No lab needed: the lab's
// description is what `lab up` hands over.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { registerLabEnvironment, unregisterLabEnvironment } from '../../src/lab/environment.js'
import type { LabDescription } from '../../src/lab/supervisor.js'
import { EngineStore } from '../../src/engine/store.js'
import { StateStore } from '../../src/state/store.js'
import { REDACTED } from '../../src/state/secrets.js'

const tmp = scratchDirs()
const PASSWORD = 'lab-pool-pw-7Hq'

function description(name: string): LabDescription {
  const ssh = (host: string) => ({
    host,
    port: 22,
    user: 'root',
    identityFile: '/x/id_ed25519',
    knownHostsFile: '/x/known_hosts',
  })
  return {
    name,
    environment: null,
    simulator: { url: 'http://127.0.0.1:39999', username: 'root' },
    hosts: [
      {
        name: 'controller-1',
        role: 'controller',
        xapiHost: null,
        ssh: ssh('198.18.1.2'),
        addresses: { management: '192.168.0.10/22' },
      },
      {
        name: 'storage',
        role: 'storage',
        xapiHost: null,
        ssh: ssh('198.18.1.6'),
        addresses: { storage: '192.168.4.10/24' },
      },
      { name: 'dom0-1', role: 'dom0', xapiHost: 'xs1', ssh: ssh('198.18.1.10'), addresses: { himn: '169.254.0.1/16' } },
      {
        name: 'compute-1',
        role: 'compute',
        xapiHost: 'xs1',
        ssh: ssh('198.18.1.14'),
        addresses: { management: '192.168.0.2/22', storage: '192.168.4.2/24' },
      },
    ],
    dir: '/tmp/none',
    sshConfigFile: '/tmp/none/ssh_config',
    supervisorPid: 1,
    services: [],
    refs: { 'dom0-1': 'OpaqueRef:host1', 'compute-1': 'OpaqueRef:vm1' },
    timings: { upMs: 1 },
  }
}

test('lab registration: environment through createEnvironment, pool in store.pools, node data; down removes both', () => {
  const home = tmp('xenstack-labenv-')
  const desc = description('le1')
  assert.equal(registerLabEnvironment(desc, PASSWORD, desc.refs, { dataDir: home }), 'le1')
  const store = StateStore.open({ dataDir: home })
  try {
    const env = store.environments.require('le1')
    assert.ok(env.release, 'a release is recorded')
    assert.ok(
      env.components.some((c) => c.startsWith('hypervisor:')),
      'the component selection is the wizard one',
    )
    assert.equal(store.environments.cluster('le1').public_vip, '192.168.0.10')
    const settings = store.environments.settings('le1')
    assert.ok(settings.common, "the release's settings are there")
    const pool = store.pools.require('le1')
    assert.equal(pool.url, 'http://127.0.0.1:39999')
    assert.equal(pool.password, REDACTED)
    assert.equal(store.pools.require('le1', { reveal: true }).password, PASSWORD)
    const nodes = Object.fromEntries(store.environments.nodes('le1').map((n) => [n.name, n]))
    assert.deepEqual(Object.keys(nodes).sort(), ['compute-1', 'controller-1', 'storage'])
    assert.deepEqual(nodes['controller-1'].roles, ['primary-controller'])
    assert.deepEqual(nodes.storage.roles, ['cinder'])
    const c = nodes['compute-1']
    assert.deepEqual(c.roles, ['compute'])
    assert.equal(c.data.pool, 'le1')
    assert.equal(c.data.vm, 'OpaqueRef:vm1')
    assert.deepEqual(c.data.addresses, { management: '192.168.0.2/22', storage: '192.168.4.2/24' })
    assert.deepEqual(c.data.dom0, {
      name: 'dom0-1',
      xapiHost: 'xs1',
      host: 'OpaqueRef:host1',
      ssh: desc.hosts[2].ssh,
    })
    assert.ok(!JSON.stringify(store.environments.settings('le1', { reveal: true })).includes('39999'))
  } finally {
    store.close()
  }
  // registering again (lab up of the same name) replaces both
  registerLabEnvironment(desc, 'second-pw', desc.refs, { dataDir: home })
  const s2 = StateStore.open({ dataDir: home })
  try {
    assert.equal(s2.pools.require('le1', { reveal: true }).password, 'second-pw')
  } finally {
    s2.close()
  }
  assert.equal(unregisterLabEnvironment('le1', { dataDir: home }), true)
  const s3 = StateStore.open({ dataDir: home })
  try {
    assert.equal(s3.environments.get('le1'), undefined)
    assert.equal(s3.pools.get('le1'), undefined)
  } finally {
    s3.close()
  }
})

test("lab registration leaves what is not the lab's alone", () => {
  const home = tmp('xenstack-labenv-')
  const store = StateStore.open({ dataDir: home })
  try {
    store.environments.create({ name: 'mine', release: 'x', settings: {} })
    store.environments.addNode('mine', { name: 'n1', data: {} })
    store.pools.add({ name: 'prod', url: 'https://10.1.1.1', username: 'root', password: 'p' })
  } finally {
    store.close()
  }
  assert.throws(
    () => registerLabEnvironment(description('mine'), PASSWORD, {}, { dataDir: home }),
    /environment "mine" exists and was not made by the lab/,
  )
  assert.throws(
    () => registerLabEnvironment(description('prod'), PASSWORD, {}, { dataDir: home }),
    /pool "prod" exists \(https:\/\/10\.1\.1\.1\) and was not made by the lab/,
  )
  assert.equal(unregisterLabEnvironment('mine', { dataDir: home }), false)
  unregisterLabEnvironment('prod', { dataDir: home })
  const s = StateStore.open({ dataDir: home })
  try {
    assert.ok(s.environments.get('mine'))
    assert.ok(s.pools.get('prod'))
  } finally {
    s.close()
  }
})

test('a fresh store gets the shipped XenServer plugin, and the lab environment enables it with the lab credentials', () => {
  const home = tmp('xenstack-labenv-')
  const desc = description('le2')
  registerLabEnvironment(desc, PASSWORD, desc.refs, { dataDir: home })
  const s = StateStore.open({ dataDir: home })
  try {
    assert.equal(s.plugins.byName('xenserver').length, 1, 'the shipped XenServer plugin is installed')
    const env = s.environments.require('le2')
    assert.ok(env.components.includes('hypervisor:xenserver'), env.components.join(', '))
    assert.ok(!env.components.includes('hypervisor:qemu'))
    assert.deepEqual(
      env.plugins.filter((p) => p.name === 'xenserver').map((p) => p.enabled),
      [true],
    )
    const xs = s.environments.settings('le2', { reveal: true }).xenserver
    assert.equal(xs.username.value, 'root')
    assert.equal(xs.password.value, PASSWORD)
    assert.equal(xs.allow_vm_restart.value, true)
    assert.equal(s.environments.settings('le2').xenserver.password.value, REDACTED)
  } finally {
    s.close()
  }
})

test('registering a lab again, or removing it, forgets its deployments: its new hosts start from a first deploy', () => {
  const home = tmp('xenstack-labenv-forget-')
  const desc = description('le3')
  const other = description('le4')
  registerLabEnvironment(desc, PASSWORD, desc.refs, { dataDir: home })
  registerLabEnvironment(other, PASSWORD, other.refs, { dataDir: home })
  /** A deployment of `env` and the redeploy digest a successful task leaves (what would skip it next time). */
  const deployed = (env: string) => {
    const store = StateStore.open({ dataDir: home })
    try {
      const engine = new EngineStore(store.db)
      const id = engine.createDeployment(env, 'deploy', false, {
        nodes: ['compute-1'],
        tasks: [],
        limiters: [],
        faultTolerance: [],
      })
      store.db
        .prepare(
          'INSERT INTO engine_task_digests (environment, node, task, digest, deployment_id, at) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(env, 'compute-1', 'xenserver-himn-attach', 'sha256:old-host', id, new Date().toISOString())
    } finally {
      store.close()
    }
  }
  const remembered = (env: string) => {
    const store = StateStore.open({ dataDir: home })
    try {
      const engine = new EngineStore(store.db)
      return { deployment: engine.latestDeployment(env)?.id, digests: engine.digests(env).size }
    } finally {
      store.close()
    }
  }
  deployed('le3')
  deployed('le4')
  assert.deepEqual(remembered('le3'), { deployment: 1, digests: 1 })
  registerLabEnvironment(desc, PASSWORD, desc.refs, { dataDir: home })
  assert.deepEqual(remembered('le3'), { deployment: undefined, digests: 0 }, 'lab up again: a first deploy')
  assert.deepEqual(remembered('le4'), { deployment: 2, digests: 1 }, "another lab's deployments are kept")
  assert.equal(unregisterLabEnvironment('le4', { dataDir: home }), true)
  assert.deepEqual(remembered('le4'), { deployment: undefined, digests: 0 }, 'lab down forgets them too')
})
