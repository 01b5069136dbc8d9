/**
 * The XenServer plugin is installed by default: a fresh state store opened by the CLI lists it, `plugins remove`
 * removes it for good (not reinstalled on the next start), a newer shipped version of the same major updates it,
 * XENSTACK_SHIPPED_PLUGINS=none keeps a store free of it, and `xenstack deploy` runs the XenServer natives (a dry
 * run plans nova-compute.conf's keys instead of reporting unregistered handlers).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../../src/state/store.js'
import { createEnvironment } from '../../../src/plugins/environment.js'
import { ensureShippedPlugins, shippedPluginDir } from '../../../src/integration/shipped.js'

const tmp = scratchDirs()
const bin = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url))

function cli(home: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XENSTACK_HOME: home, ...env },
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const listed = (home: string, env: Record<string, string> = {}) => {
  const r = cli(home, ['plugins', 'list', '--json'], env)
  assert.equal(r.code, 0, r.err)
  return (JSON.parse(r.out) as { name: string; version: string }[]).map((p) => `${p.name}==${p.version}`)
}

test('a fresh store lists the shipped xenserver plugin; remove sticks; the opt-out keeps a store free of it', () => {
  const home = tmp('xenstack-shipped-')
  assert.deepEqual(listed(home), ['xenserver==1.0.0'])
  assert.deepEqual(listed(home), ['xenserver==1.0.0'], 'opening again installs nothing more')
  const removed = cli(home, ['plugins', 'remove', 'xenserver==1.0.0'])
  assert.equal(removed.code, 0, removed.err)
  assert.deepEqual(listed(home), [], 'a removed shipped plugin is not installed again')

  const bare = tmp('xenstack-shipped-none-')
  assert.deepEqual(listed(bare, { XENSTACK_SHIPPED_PLUGINS: 'none' }), [])
})

test('a newer shipped version of the same major updates the installed one; files are verified like an install', () => {
  const home = tmp('xenstack-shipped-upd-')
  const store = StateStore.open({ dataDir: home })
  try {
    const first = ensureShippedPlugins(store)
    assert.deepEqual(first, { installed: ['xenserver==1.0.0'], notes: [] })
    assert.deepEqual(ensureShippedPlugins(store), { installed: [], notes: [] })
    const root = tmp('xenstack-shipped-root-')
    cpSync(shippedPluginDir('xenserver'), join(root, 'xenserver'), { recursive: true })
    const meta = join(root, 'xenserver', 'metadata.yaml')
    writeFileSync(meta, readFileSync(meta, 'utf8').replace("version: '1.0.0'", "version: '1.0.1'"))
    assert.deepEqual(ensureShippedPlugins(store, root), { installed: ['xenserver==1.0.1'], notes: [] })
    assert.deepEqual(
      store.plugins.list().map((p) => `${p.name}==${p.version}`),
      ['xenserver==1.0.1'],
    )
    const installed = store.plugins.get('xenserver', '1.0.1')!
    assert.ok(installed.files.some((f) => f.path === 'deployment_tasks.yaml' && /^[0-9a-f]{64}$/.test(f.sha256)))
  } finally {
    store.close()
  }
})

test('xenstack deploy --dry-run plans the XenServer natives (registered, release-aware, password hidden)', () => {
  const home = tmp('xenstack-shipped-deploy-')
  assert.deepEqual(listed(home), ['xenserver==1.0.0'])
  const secret = 'Dry-Run-Secret-7'
  const store = StateStore.open({ dataDir: home })
  try {
    createEnvironment(store, {
      name: 'xs',
      components: ['hypervisor:xenserver', 'network:neutron:core:ml2', 'network:neutron:ml2:vlan', 'storage:block:lvm'],
      settings: { 'xenserver.password.value': secret },
      // Read-only planning against this machine: a dry run never changes a node.
      nodes: [
        { name: 'compute-1', roles: ['compute'], data: { local: true, addresses: { management: '192.0.2.5/26' } } },
      ],
    })
    store.environments.setCluster('xs', { ...store.environments.cluster('xs'), public_vip: '198.51.100.7' })
  } finally {
    store.close()
  }
  const r = cli(home, ['deploy', 'xs', '--dry-run', '--json'])
  assert.equal(r.code, 0, r.err)
  assert.ok(!r.out.includes(secret) && !r.err.includes(secret), 'the password appears nowhere')
  const plan = JSON.parse(r.out) as {
    nodes: {
      name: string
      tasks: { task: string; error?: string; changes?: { resource: string; result: string }[] }[]
    }[]
  }
  const tasks = plan.nodes.find((n) => n.name === 'compute-1')!.tasks
  for (const t of tasks) assert.doesNotMatch(t.error ?? '', /no native task named/, t.task)
  const nova = tasks.find((t) => t.task === 'xenserver-nova-compute')!
  assert.equal(nova.error, undefined)
  const resources = (nova.changes ?? []).map((c) => c.resource)
  for (const key of [
    'xenserver] connection_password',
    'vnc] novncproxy_base_url',
    'vnc] vncserver_proxyclient_address',
    'xenserver] vif_driver',
  ])
    assert.ok(
      resources.some((id) => id.includes(key)),
      `mitaka-9.0's nova-compute.conf has ${key}: ${resources.join(', ')}`,
    )
})
