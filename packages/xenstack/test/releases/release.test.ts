import { test } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync, cpSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { applyBindings, checkRestrictions, validateSelection } from '@xenstack/restrictions'
import {
  builtinReleaseDir,
  builtinReleases,
  defaultModels,
  loadReleaseFile,
  releaseFromJSON,
  syncBuiltinReleases,
} from '../../src/releases/release.js'
import { StateStore } from '../../src/state/store.js'
import { collectExpressions } from '../../src/plugins/loader.js'
import { formatIssue } from '../../src/plugins/source.js'
import { validateEnvironmentSettings } from '../../src/plugins/settings.js'
import { corpusDir, XENSERVER_DEFINES } from '../plugins/corpus.js'

const corpus = corpusDir()
const tmp = scratchDirs()

test('the shipped "OpenStack on Ubuntu" release: stages, role groups, components, settings', () => {
  const r = builtinReleases()[0]
  assert.equal(r.name, 'OpenStack on Ubuntu')
  assert.deepEqual(r.stages, [
    'pre_deployment_start',
    'pre_deployment_end',
    'deploy_start',
    'deploy_end',
    'post_deployment_start',
    'post_deployment_end',
  ])
  const group = (id: string) => r.tasks.find((t) => t.task.id === id)!.task
  assert.deepEqual(group('controller').parameters, { strategy: { type: 'parallel', amount: 6 } })
  assert.equal(group('compute').fault_tolerance, '2%')
  assert.equal(group('primary-controller').fault_tolerance, 0)
  assert.deepEqual(group('mongo').required_for, ['deploy_end', 'primary-controller', 'controller'])
  for (const name of [
    'hypervisor:qemu',
    'hypervisor:kvm',
    'hypervisor:vmware',
    'network:neutron:ml2:vlan',
    'network:neutron:ml2:tun',
    'storage:block:ceph',
    'storage:ephemeral:ceph',
    'additional_service:sahara',
    'additional_service:murano',
    'additional_service:mongo',
    'additional_service:ironic',
    'additional_service:ceilometer',
  ]) {
    assert.ok(
      r.components.some((c) => c.name === name),
      name,
    )
  }
  // The default selection is valid, and its bindings give the default settings.
  const defaults = r.components.filter((c) => c.default).map((c) => c.name)
  assert.deepEqual(validateSelection(r.components, defaults, { requiredTypes: r.requiredComponentTypes }), [])
  const models = defaultModels(r, { settings: structuredClone(r.settings) })
  applyBindings(r.components, defaults, models)
  assert.equal((models.settings as any).common.libvirt_type.value, 'qemu')
  assert.equal((models.cluster as any).net_segment_type, 'vlan')
  assert.deepEqual(validateEnvironmentSettings(r, r.settings), [])
  // Every expression of the release evaluates on its defaults.
  const src = loadReleaseFile(join(builtinReleaseDir(), 'openstack-ubuntu.yaml'))
  assert.deepEqual(src.issues.map(formatIssue), [])
  for (const e of collectExpressions({ roles: r.roles, settings: r.settings })) {
    checkRestrictions([{ condition: e.condition, strict: e.strict }], defaultModels(r))
  }
})

test('fuel-web fixture: entries are deep-merged with the one they extend, picked by name', () => {
  const file = join(corpus, 'fuel-web-release/openstack.yaml')
  const first = loadReleaseFile(file, { tasksFile: join(corpus, 'fuel-web-release/deployment_tasks.yaml') })
  assert.deepEqual(first.errors.map(formatIssue), [])
  assert.equal(first.release!.name, 'Newton on Ubuntu 16.04')
  assert.equal(first.release!.groups.length, 11)
  const uca = loadReleaseFile(file, { name: 'Newton on Ubuntu+UCA 16.04' }).release!
  // Extends ubuntu_xenial (which extends base_release): roles come from the base.
  assert.ok(uca.roles.controller)
  assert.ok(uca.settings.access)
  const none = loadReleaseFile(file, { name: 'Juno' })
  assert.match(
    formatIssue(none.errors[0]),
    /no release named "Juno" in this fixture \(expected one of "Newton on CentOS 6\.5", /,
  )
})

test('a release with a cycle or a bad component name is refused with positions', () => {
  const dir = tmp('xenstack-release-')
  const f = join(dir, 'bad.yaml')
  const text = readFileSync(join(builtinReleaseDir(), 'openstack-ubuntu.yaml'), 'utf8')
    .replace(
      '- { id: pre_deployment_start, type: stage }',
      '- { id: pre_deployment_start, type: stage, requires: [post_deployment_end] }',
    )
    .replace("- name: 'hypervisor:kvm'", "- name: 'Hypervisor:KVM'")
  writeFileSync(f, text)
  const r = loadReleaseFile(f)
  const lines = r.errors.map(formatIssue)
  assert.equal(lines.length, 2, lines.join('\n'))
  assert.match(
    lines[0],
    /bad\.yaml:\d+:\d+: components_metadata\[1\]\.name: bad component name \(expected a name matching/,
  )
  assert.match(
    lines[1],
    /bad\.yaml:\d+:\d+: deployment_tasks\[0\]\.id: Graph cannot be processed because it contains cycles in it: pre_deployment_start -> pre_deployment_end -> deploy_start -> deploy_end -> post_deployment_start -> post_deployment_end -> pre_deployment_start/,
  )
})

test("plugins may not reuse a component name: the release's (check) or another plugin's (install)", () => {
  const bin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
  const home = tmp('xenstack-overlap-')
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [bin, ...args], {
      encoding: 'utf8',
      // without the shipped XenServer plugin, which defines hypervisor:xenserver too
      env: { ...process.env, XENSTACK_HOME: home, XENSTACK_SHIPPED_PLUGINS: 'none' },
    })
  const defs = (over: Record<string, string> = {}) =>
    Object.entries({ ...XENSERVER_DEFINES, ...over }).flatMap(([k, v]) => ['--define', `${k}=${v}`])
  const qemu = tmp('xenstack-qemu-')
  cpSync(join(corpus, 'fuel-plugin-xenserver/master'), qemu, { recursive: true })
  const check = run('plugins', 'check', qemu, ...defs({ HYPERVISOR_LOWER: 'qemu' }))
  assert.equal(check.status, 5)
  assert.match(
    check.stdout,
    /^components\.yaml:1:9: \[0\]\.name: Plugin fuel-plugin-xenserver is overlapping with the release "OpenStack on Ubuntu": component "hypervisor:qemu" is already defined by the release/m,
  )
  const out = tmp('xenstack-overlap-out-')
  assert.equal(run('plugins', 'build', join(corpus, 'fuel-plugin-xenserver/master'), '-o', out, ...defs()).status, 0)
  assert.equal(
    run(
      'plugins',
      'build',
      join(corpus, 'fuel-plugin-xenserver/master'),
      '-o',
      out,
      ...defs({ PLUGIN_NAME: 'xen-clone' }),
    ).status,
    0,
  )
  assert.equal(run('plugins', 'install', join(out, 'fuel-plugin-xenserver-4.90.1.tar.gz')).status, 0)
  const clash = run('plugins', 'install', join(out, 'xen-clone-4.90.1.tar.gz'))
  assert.equal(clash.status, 1)
  assert.deepEqual(clash.stderr.trim().split('\n'), [
    'xenstack: Plugin xen-clone is overlapping with fuel-plugin-xenserver==4.90.1: component "hypervisor:xenserver" is already defined by fuel-plugin-xenserver',
    'hint: remove fuel-plugin-xenserver==4.90.1 first, or rename the component',
  ])
})

test('shipped releases are recorded in the state store and read back', () => {
  const home = tmp('xenstack-releases-')
  const store = StateStore.open({ dataDir: home })
  assert.deepEqual(syncBuiltinReleases(store), ['OpenStack on Ubuntu'])
  assert.deepEqual(syncBuiltinReleases(store), ['OpenStack on Ubuntu'])
  const rec = store.releases.get('OpenStack on Ubuntu')!
  assert.equal(rec.source, 'builtin')
  const back = releaseFromJSON(rec.data)
  const orig = builtinReleases()[0]
  assert.deepEqual(back.stages, orig.stages)
  assert.deepEqual(
    back.tasks.map((t) => t.task),
    orig.tasks.map((t) => t.task),
  )
  assert.deepEqual(
    back.components.map((c) => c.name),
    orig.components.map((c) => c.name),
  )
  store.close()
})
