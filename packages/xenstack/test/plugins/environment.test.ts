import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { buildPlugin, installPlugin, removePlugin } from '../../src/plugins/lifecycle.js'
import { changeSettings, createEnvironment, deploymentInputs } from '../../src/plugins/environment.js'
import { builtinReleases } from '../../src/releases/release.js'
import { corpusDir, XENSERVER_DEFINES } from './corpus.js'
import { storedStateText } from '../state/databases.js'
import { environmentProblems, XEN_COMPONENTS } from './environment-problems.js'

const corpus = corpusDir()
const tmp = scratchDirs()

function storeWithXenServer(): StateStore {
  const store = StateStore.open({ dataDir: tmp('xenstack-env-') })
  const release = builtinReleases()[0]
  const opts = { defines: XENSERVER_DEFINES, coreTasks: release.tasks, releaseComponents: release.components }
  const built = buildPlugin(join(corpus, 'fuel-plugin-xenserver/master'), tmp('xenstack-env-out-'), opts)
  installPlugin(store, built.file, opts)
  return store
}

test('creating an environment: selection checked, plugin enabled by its component, bindings and settings applied', () => {
  const store = storeWithXenServer()
  const env = createEnvironment(store, {
    name: 'xen',
    components: XEN_COMPONENTS,
    settings: { 'fuel-plugin-xenserver.password.value': 'Xen-Secret-1' },
    nodes: [
      { name: 'controller-1', roles: ['controller'] },
      { name: 'compute-1', roles: ['compute'] },
    ],
  })
  assert.deepEqual(env.plugins, [{ name: 'fuel-plugin-xenserver', version: '4.90.1', enabled: true }])
  assert.deepEqual(env.components, XEN_COMPONENTS)
  assert.equal(store.environments.settings('xen')['fuel-plugin-xenserver'].password.value, '********')
  assert.equal(
    store.environments.settings('xen', { reveal: true })['fuel-plugin-xenserver'].password.value,
    'Xen-Secret-1',
  )
  assert.equal(store.environments.settings('xen')['common'].libvirt_type.value, 'qemu')
  assert.deepEqual(store.environments.cluster('xen'), {
    net_provider: 'neutron',
    net_segment_type: 'vlan',
    mode: 'ha_compact',
    status: 'new',
    name: '',
  })

  // The release is recorded in the store with the environment.
  assert.equal(store.releases.get('OpenStack on Ubuntu')!.source, 'builtin')
  assert.equal(
    (store.releases.get('OpenStack on Ubuntu')!.data.tasks as unknown[]).length,
    builtinReleases()[0].tasks.length,
  )
  // The engine's inputs: core tasks then the plugin's, scripts location, revealed settings.
  const inputs = deploymentInputs(store, 'xen')
  assert.equal(inputs.tasks.length, builtinReleases()[0].tasks.length + 5)
  assert.deepEqual(
    inputs.tasks.slice(-5).map((t) => `${t.source}:${t.task.id}`),
    [
      'fuel-plugin-xenserver:install-pv-tool',
      'fuel-plugin-xenserver:compute-pre-test',
      'fuel-plugin-xenserver:compute-post-deployment',
      'fuel-plugin-xenserver:controller-post-deployment',
      'fuel-plugin-xenserver:primary-controller-post-deployment',
    ],
  )
  const scripts = inputs.scripts.get('fuel-plugin-xenserver')!
  assert.equal(scripts.remoteDir, '/etc/fuel/plugins/fuel-plugin-xenserver-4.90/')
  assert.match(scripts.localDir, /plugins\/fuel-plugin-xenserver-4\.90\.1\/deployment_scripts\/$/)
  // No node was assigned primary-controller, so the first controller becomes it, as nailgun did.
  assert.deepEqual(
    inputs.nodes.map((n) => n.roles),
    [['compute'], ['primary-controller']],
  )
  assert.equal((inputs.models.settings as any)['fuel-plugin-xenserver'].password.value, 'Xen-Secret-1')
  assert.equal((inputs.models.cluster as any).name, 'xen')

  // Nothing stored shows the password.
  store.close()
  assert.equal(storedStateText(store.dataDir).includes('Xen-Secret-1'), false)
})

test('an invalid environment is refused with every problem and nothing is written', () => {
  const store = storeWithXenServer()
  assert.deepEqual(
    environmentProblems(() =>
      createEnvironment(store, {
        name: 'bad',
        components: [...XEN_COMPONENTS, 'additional_service:sahara', 'hypervisor:qemu'],
      }),
    ),
    [
      'XenServer (hypervisor:xenserver) is incompatible with QEMU-KVM (hypervisor:qemu)',
      'XenServer (hypervisor:xenserver) is incompatible with Sahara (additional_service:sahara)',
    ],
  )
  assert.deepEqual(
    environmentProblems(() => createEnvironment(store, { name: 'nopass', components: XEN_COMPONENTS })),
    ['Setting "Password" (fuel-plugin-xenserver.password): Password cannot be empty'],
  )
  assert.deepEqual(
    environmentProblems(() => createEnvironment(store, { name: 'x', plugins: [{ name: 'nope' }] })),
    ['plugin nope is not installed or not compatible with OpenStack on Ubuntu (mitaka-9.0)'],
  )
  assert.deepEqual(store.environments.list(), [])
  store.close()
})

test('changing settings: refused while the enabled plugin depends on them, allowed once it is disabled', () => {
  const store = storeWithXenServer()
  createEnvironment(store, {
    name: 'xen',
    components: XEN_COMPONENTS,
    settings: { 'fuel-plugin-xenserver.password.value': 'pw' },
  })
  assert.deepEqual(
    environmentProblems(() => changeSettings(store, 'xen', { 'common.libvirt_type.value': 'kvm' })),
    [
      `Cannot change "Hypervisor type": "XenServer Plugin" is enabled and would be disabled by "settings:common.libvirt_type.value == 'kvm'"`,
    ],
  )
  assert.deepEqual(
    environmentProblems(() => changeSettings(store, 'xen', { 'additional_components.mongo.value': true })),
    [
      `Cannot change "Use external Mongo DB": "XenServer Plugin" is enabled and would be disabled by "settings:additional_components.mongo.value == true"`,
    ],
  )
  assert.deepEqual(
    environmentProblems(() => changeSettings(store, 'xen', { 'fuel-plugin-xenserver.password.value': '' })),
    ['Setting "Password" (fuel-plugin-xenserver.password): Password cannot be empty'],
  )
  changeSettings(store, 'xen', { 'common.debug.value': true })
  assert.equal(store.environments.settings('xen').common.debug.value, true)
  assert.equal(store.environments.settings('xen', { reveal: true })['fuel-plugin-xenserver'].password.value, 'pw')
  assert.throws(() => removePlugin(store, 'fuel-plugin-xenserver==4.90.1'), /enabled for environment xen/)
  changeSettings(store, 'xen', { 'fuel-plugin-xenserver.metadata.enabled': false })
  assert.deepEqual(store.environments.require('xen').plugins, [
    { name: 'fuel-plugin-xenserver', version: '4.90.1', enabled: false },
  ])
  changeSettings(store, 'xen', { 'common.libvirt_type.value': 'kvm' })
  // Re-enabling it from Settings would bypass the wizard's checks (Fuel 9.0's loophole) when its component is
  // not selected.
  const qemu = createEnvironment(store, { name: 'qemu' })
  assert.deepEqual(qemu.plugins, [{ name: 'fuel-plugin-xenserver', version: '4.90.1', enabled: false }])
  assert.deepEqual(
    environmentProblems(() => changeSettings(store, 'qemu', { 'fuel-plugin-xenserver.metadata.enabled': true })),
    [
      `Cannot enable "XenServer Plugin" in settings: it provides the component hypervisor:xenserver; select it in the environment's components instead (its compatibility is checked there)`,
    ],
  )
  store.environments.delete('qemu')
  removePlugin(store, 'fuel-plugin-xenserver==4.90.1')
  store.close()
})
