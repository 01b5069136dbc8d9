import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { builtinReleases } from '../../../src/releases/release.js'
import { loadPluginDir } from '../../../src/plugins/loader.js'
import { buildPlugin, installPlugin } from '../../../src/plugins/lifecycle.js'
import { createEnvironment } from '../../../src/plugins/environment.js'
import { buildExecutionPlan } from '../../../src/engine/graph.js'
import { topologicalOrder } from '../../../src/engine/scheduler.js'
import { StateStore } from '../../../src/state/store.js'
import { shippedLoadOptions, shippedPluginDir } from '../../../src/integration/shipped.js'
import { environmentProblems, XEN_COMPONENTS } from '../../plugins/environment-problems.js'
import { XENSERVER_COMPUTE_HANDLERS } from '../xenserver-handlers.js'

const tmp = scratchDirs()
const dir = shippedPluginDir('xenserver')
const release = builtinReleases()[0]

test('the shipped xenserver plugin loads against the shipped release with no error or warning', () => {
  const r = loadPluginDir(dir, shippedLoadOptions(dir))
  assert.deepEqual(
    r.issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.message}`),
    [],
  )
  const p = r.plugin!
  assert.equal(p.name, 'xenserver')
  assert.equal(p.packageVersion, '5.0.0')
  assert.equal(p.metadata.releases[0].version, release.version)
  // The settings the integration reads (XS-CONTRACT), in the Compute group.
  assert.equal(p.attributes.metadata.group, 'compute')
  assert.deepEqual(
    Object.keys(p.attributes).filter((k) => k !== 'metadata'),
    [
      'username',
      'password',
      'install_dom0_plugins',
      'dom0_plugin_source',
      'dom0_plugin_path',
      'image_handler',
      'sr_matching_filter',
      'allow_vm_restart',
    ],
  )
  assert.equal(p.attributes.username.value, 'root')
  assert.equal(p.attributes.password.type, 'password')
  assert.equal(p.attributes.sr_matching_filter.value, 'default-sr:true')
  assert.deepEqual(
    p.attributes.image_handler.values.map((v: { data: string }) => v.data),
    ['direct_vhd', 'vdi_local_dev', 'vdi_remote_stream'],
  )
  assert.deepEqual(
    p.attributes.dom0_plugin_source.values.map((v: { data: string }) => v.data),
    ['bundled', 'directory', 'tarball'],
  )
  // The original's restrictions (master), each with a message.
  assert.deepEqual(
    p.attributes.metadata.restrictions.map((r: { condition: string }) => r.condition),
    [
      "settings:common.libvirt_type.value == 'kvm'",
      'settings:storage.volumes_ceph.value == true',
      'settings:storage.ephemeral_ceph.value == true',
      'settings:additional_components.sahara.value == true',
      'settings:additional_components.murano.value == true',
      'settings:additional_components.mongo.value == true',
      'settings:additional_components.ironic.value == true',
    ],
  )
  // The component with the original's incompatible list (master).
  assert.deepEqual(
    p.components.map((c) => c.name),
    ['hypervisor:xenserver'],
  )
  assert.deepEqual(
    (p.components[0].incompatible ?? []).map((c) => c.name),
    [
      'hypervisor:vmware',
      'hypervisor:qemu',
      'additional_service:sahara',
      'additional_service:murano',
      'additional_service:mongo',
      'additional_service:ironic',
      'storage:volumes_ceph',
      'storage:ephemeral_ceph',
      'storage:block:ceph',
      'storage:ephemeral:ceph',
    ],
  )
  // Every task is native with a handler named after its id.
  for (const t of p.deploymentTasks) {
    assert.equal(t.type, 'native', t.id)
    assert.equal(`xenserver-${String(t.parameters?.handler).slice('xenserver.'.length)}`, t.id)
  }
})

test('with the release, the tasks land on the right roles in the contract order between the core anchors', () => {
  const p = loadPluginDir(dir, shippedLoadOptions(dir)).plugin!
  const { plan } = buildExecutionPlan({
    tasks: [
      ...release.tasks.map((t) => ({ task: t.task, source: 'release' })),
      ...p.deploymentTasks.map((task) => ({ task, source: p.name })),
    ],
    nodes: [
      { name: 'ctl1', roles: ['primary-controller'] },
      { name: 'ctl2', roles: ['controller'] },
      { name: 'cmp1', roles: ['compute'] },
      { name: 'cmp2', roles: ['compute'] },
      { name: 'cinder1', roles: ['cinder'] },
    ],
    models: { settings: release.settings },
  })
  const order = [...topologicalOrder(plan)]
  const position = new Map(order.map((index, pos) => [plan.tasks[index].key, pos]))
  const pos = (key: string) => {
    const at = position.get(key)
    assert.ok(at !== undefined, `${key} is not in the plan`)
    return at
  }
  const handlersOn = (node: string) =>
    plan.tasks
      .filter((t) => t.node === node && t.source === 'xenserver')
      .sort((a, b) => pos(a.key) - pos(b.key))
      .map((t) => t.parameters.handler)
  for (const n of ['cmp1', 'cmp2']) {
    assert.deepEqual(handlersOn(n), XENSERVER_COMPUTE_HANDLERS)
    // The guest tools and the pre-test once the node's network is configured, within the deploy stage.
    assert.ok(pos(`${n}/network_configuration_end`) < pos(`${n}/xenserver-guest-tools`))
    assert.ok(pos(`${n}/xenserver-ssh-trust`) < pos('_sync/deploy_end'))
    // The rest between post_deployment_start and post_deployment_end.
    assert.ok(pos('_sync/post_deployment_start') < pos(`${n}/xenserver-dom0-prepare`))
    assert.ok(pos(`${n}/xenserver-compute-extras`) < pos('_sync/post_deployment_end'))
  }
  assert.deepEqual(handlersOn('ctl1'), ['xenserver.controller-vnc-cache', 'xenserver.test-image'])
  assert.deepEqual(handlersOn('ctl2'), ['xenserver.controller-vnc-cache'])
  assert.deepEqual(handlersOn('cinder1'), [])
  assert.ok(pos('_sync/post_deployment_start') < pos('ctl2/xenserver-controller-vnc-cache'))
  assert.ok(pos('ctl2/xenserver-controller-vnc-cache') < pos('_sync/post_deployment_end'))
  assert.ok(pos('ctl1/xenserver-test-image') < pos('_sync/post_deployment_end'))
})

function storeWithPlugin(): StateStore {
  const store = StateStore.open({ dataDir: tmp('xenstack-xs-pkg-') })
  const options = shippedLoadOptions(dir)
  installPlugin(store, buildPlugin(dir, tmp('xenstack-xs-pkg-out-'), options).file, options)
  return store
}

test('selecting hypervisor:xenserver enables the plugin; its settings are validated with their labels', () => {
  const store = storeWithPlugin()
  try {
    const env = createEnvironment(store, {
      name: 'xs',
      components: XEN_COMPONENTS,
      settings: { 'xenserver.password.value': 'Xs-Secret-9' },
    })
    assert.deepEqual(env.plugins, [{ name: 'xenserver', version: '1.0.0', enabled: true }])
    assert.equal(store.environments.settings('xs').xenserver.password.value, '********')
    assert.equal(store.environments.settings('xs', { reveal: true }).xenserver.password.value, 'Xs-Secret-9')

    const missing = environmentProblems(() => createEnvironment(store, { name: 'xs2', components: XEN_COMPONENTS }))
    assert.ok(
      missing.some((m) => m.includes('Password cannot be empty')),
      missing.join('\n'),
    )
    const filter = environmentProblems(() =>
      createEnvironment(store, {
        name: 'xs3',
        components: XEN_COMPONENTS,
        settings: { 'xenserver.password.value': 'x', 'xenserver.sr_matching_filter.value': 'sr:local' },
      }),
    )
    assert.ok(
      filter.some((m) => m.includes('default-sr:true or other-config:KEY=VALUE')),
      filter.join('\n'),
    )
    // nova before Queens has no vdi_remote_stream: refused for this Mitaka release, with the reason.
    const stream = environmentProblems(() =>
      createEnvironment(store, {
        name: 'xs6',
        components: XEN_COMPONENTS,
        settings: { 'xenserver.password.value': 'x', 'xenserver.image_handler.value': 'vdi_remote_stream' },
      }),
    )
    assert.ok(
      stream.some((m) => m.includes('"vdi_remote_stream" is not available: VDI remote stream needs OpenStack Queens')),
      stream.join('\n'),
    )
    // The path is checked only when a directory or tarball is the source (hidden otherwise).
    const path = environmentProblems(() =>
      createEnvironment(store, {
        name: 'xs4',
        components: XEN_COMPONENTS,
        settings: { 'xenserver.password.value': 'x', 'xenserver.dom0_plugin_source.value': 'tarball' },
      }),
    )
    assert.ok(
      path.some((m) => m.includes('absolute path or an http(s) URL')),
      path.join('\n'),
    )
    createEnvironment(store, {
      name: 'xs5',
      components: XEN_COMPONENTS,
      settings: {
        'xenserver.password.value': 'x',
        'xenserver.dom0_plugin_source.value': 'tarball',
        'xenserver.dom0_plugin_path.value': 'https://example.org/os-xenapi-0.3.4.tar.gz',
      },
    })
  } finally {
    store.close()
  }
})

test('hypervisor:xenserver against each incompatible component of the release fails with its message', () => {
  const store = storeWithPlugin()
  try {
    const cases: [string[], string][] = [
      [['hypervisor:xenserver', 'hypervisor:qemu'], 'XenServer and QEMU-KVM cannot be used together.'],
      [['hypervisor:xenserver', 'hypervisor:vmware'], 'XenServer and vCenter cannot be used together.'],
      [['additional_service:sahara'], 'Sahara is not supported with XenServer.'],
      [['additional_service:murano'], 'Murano is not supported with XenServer.'],
      [['additional_service:ceilometer', 'additional_service:mongo'], 'An external MongoDB is not supported'],
      [['additional_service:ironic'], 'Ironic is not supported with XenServer.'],
      [['storage:ephemeral:ceph'], 'Ceph for ephemeral volumes is not supported with XenServer.'],
    ]
    for (const [extra, message] of cases) {
      const got = environmentProblems(() =>
        createEnvironment(store, {
          name: 'bad',
          components: [...new Set([...XEN_COMPONENTS, ...extra])],
          settings: { 'xenserver.password.value': 'x' },
        }),
      )
      assert.ok(
        got.some((m) => m.includes(message)),
        `${extra.join(', ')}: ${got.join(' | ')}`,
      )
    }
    // Ceph for volumes replaces LVM in the selection.
    const ceph = environmentProblems(() =>
      createEnvironment(store, {
        name: 'bad',
        components: [
          'hypervisor:xenserver',
          'network:neutron:core:ml2',
          'network:neutron:ml2:vlan',
          'storage:block:ceph',
        ],
        settings: { 'xenserver.password.value': 'x' },
      }),
    )
    assert.ok(
      ceph.some((m) => m.includes('Ceph for volumes is not supported with XenServer.')),
      ceph.join(' | '),
    )
    assert.equal(store.environments.list().length, 0)
  } finally {
    store.close()
  }
})
