import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { Expression, mergeComponents, validateSelection, type Component } from '@xenstack/restrictions'
import { collectExpressions, loadPluginDir, substituteTokens } from '../../src/plugins/loader.js'
import { formatIssue, parseYaml } from '../../src/plugins/source.js'
import { builtinReleases, defaultModels, loadReleaseFile, type Release } from '../../src/releases/release.js'
import { corpusDir, XENSERVER_DEFINES } from './corpus.js'

const corpus = corpusDir()
const ours = builtinReleases().find((r) => r.name === 'OpenStack on Ubuntu')!
const fuelWeb = (): Release =>
  loadReleaseFile(join(corpus, 'fuel-web-release/openstack.yaml'), {
    tasksFile: join(corpus, 'fuel-web-release/deployment_tasks.yaml'),
  }).release!

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? yamlFiles(p) : n.endsWith('.yaml') ? [p] : []
  })
}

const tmpDirs: string[] = []
function copyPlugin(rel: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-plugin-'))
  tmpDirs.push(dir)
  cpSync(join(corpus, rel), dir, { recursive: true })
  return dir
}
test.after(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

test('every YAML file of the corpus loads (build tokens substituted as the Makefile does)', () => {
  const files = yamlFiles(corpus)
  assert.ok(files.length >= 50, `expected the whole corpus, found ${files.length} files`)
  for (const f of files) {
    const { text, missing } = substituteTokens(readFileSync(f, 'utf8'), XENSERVER_DEFINES)
    assert.deepEqual(missing, [], f)
    const r = parseYaml(relative(corpus, f), text)
    assert.deepEqual(r.issues.filter((i) => i.severity === 'error').map(formatIssue), [], f)
    assert.ok(r.source, f)
  }
})

const VALID = [
  'fuel-plugin-xenserver/6.1',
  'fuel-plugin-xenserver/7.0',
  'fuel-plugin-xenserver/8.0',
  'fuel-plugin-xenserver/9.0',
  'fuel-plugin-xenserver/master',
  'fuel-plugins-examples/fuel_plugin_example_v1',
  'fuel-plugins-examples/fuel_plugin_example_v2',
  'fuel-plugins-examples/fuel_plugin_example_v2_update',
  'fuel-plugins-examples/fuel_plugin_example_v3',
  'fuel-plugins-examples/fuel_plugin_example_v4',
]

test('the valid plugins validate against the shipped release (schemas, expressions, graph)', () => {
  for (const rel of VALID) {
    const r = loadPluginDir(join(corpus, rel), { coreTasks: ours.tasks, defines: XENSERVER_DEFINES })
    assert.deepEqual(r.errors.map(formatIssue), [], rel)
    assert.ok(r.plugin, rel)
  }
  const master = loadPluginDir(join(corpus, 'fuel-plugin-xenserver/master'), {
    defines: XENSERVER_DEFINES,
    coreTasks: ours.tasks,
  })
  assert.equal(master.plugin!.name, 'fuel-plugin-xenserver')
  assert.equal(master.plugin!.version, '4.90.1')
  assert.deepEqual(
    master.plugin!.components.map((c) => c.name),
    ['hypervisor:xenserver'],
  )
  assert.equal(master.plugin!.deploymentTasks.length, 5)
  // fuel_plugin_example_v1's radio default is not among its values: Fuel accepted it, so it is a warning.
  const v1 = loadPluginDir(join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v1'))
  assert.deepEqual(v1.issues.map(formatIssue), [
    'environment_config.yaml:37:12: warning: attributes.fuel_plugin_example_radio.value: setting "Radio buttons label" has a value that is not among its values (expected one of "data1", "data2", "data3", found string "disabled")',
  ])
})

test('a real file that does not match its package_version gets a precise error', () => {
  // fuel_plugin_example_v5 (5.0.0): node_config.yaml gives a checkbox the value "".
  const v5 = loadPluginDir(join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v5'), { coreTasks: ours.tasks })
  assert.deepEqual(v5.errors.map(formatIssue), [
    'node_config.yaml:25:12: plugin_section_a.attribute_b.value: setting "Node attribute B for section A" (checkbox) has a value of the wrong type (expected true or false, found string "")',
  ])
  // The 6.1 XenServer metadata.yaml declared as 4.0.0 lacks is_hotpluggable.
  const dir = copyPlugin('fuel-plugin-xenserver/6.1')
  const meta = join(dir, 'metadata.yaml')
  writeFileSync(meta, readFileSync(meta, 'utf8').replace("package_version: '2.0.0'", "package_version: '4.0.0'"))
  const r = loadPluginDir(dir, { coreTasks: ours.tasks })
  assert.deepEqual(r.errors.map(formatIssue), [
    'deployment_tasks.yaml:0:0: (document): missing deployment_tasks.yaml, required by package_version 4.0.0 (expected a file deployment_tasks.yaml)',
    'metadata.yaml:2:1: (document): missing required field "is_hotpluggable" (package_version 4.0.0) (expected a field "is_hotpluggable", found a map with keys name, title, version, description, fuel_version, licenses)',
    'metadata.yaml:10:16: fuel_version[0]: Fuel 6.1 is older than 8.0, the minimum for package_version 4.0.0 (expected a Fuel version >= 8.0, found "6.1")',
  ])
  // The v1 example declared as 2.0.0 lacks the fields 2.0.0 made required.
  const v1 = copyPlugin('fuel-plugins-examples/fuel_plugin_example_v1')
  const m1 = join(v1, 'metadata.yaml')
  writeFileSync(m1, readFileSync(m1, 'utf8').replace("package_version: '1.0.0'", "package_version: '2.0.0'"))
  const e1 = loadPluginDir(v1).errors.map((i) => i.message)
  for (const f of ['licenses', 'authors', 'homepage', 'groups']) {
    assert.ok(e1.includes(`missing required field "${f}" (package_version 2.0.0)`), e1.join('\n'))
  }
})

test('unsubstituted @…@ build tokens are reported with their positions', () => {
  const r = loadPluginDir(join(corpus, 'fuel-plugin-xenserver/9.0'))
  const lines = r.errors.map(formatIssue)
  assert.equal(
    lines[0],
    "metadata.yaml:2:7: (document): unsubstituted build token @PLUGIN_NAME@: the plugin's Makefile replaces it from branding.inc at build time (expected a value for PLUGIN_NAME (add branding.inc to the plugin or pass --define PLUGIN_NAME=VALUE), found @PLUGIN_NAME@)",
  )
  assert.ok(
    lines.some((l) => l.startsWith('components.yaml:1:21: (document): unsubstituted build token @HYPERVISOR_LOWER@')),
    lines.join('\n'),
  )
  // branding.inc next to plugin_source/ (the plugin's layout) is read like the Makefile reads it.
  const root = mkdtempSync(join(tmpdir(), 'xenstack-branding-'))
  tmpDirs.push(root)
  cpSync(join(corpus, 'fuel-plugin-xenserver/master'), join(root, 'plugin_source'), { recursive: true })
  writeFileSync(
    join(root, 'branding.inc'),
    'HYPERVISOR_NAME=XenServer\nHYPERVISOR_LOWER=xenserver\nPLUGIN_NAME=fuel-plugin-xenserver\n',
  )
  const b = loadPluginDir(join(root, 'plugin_source'), {
    defines: { PLUGIN_VERSION: '4.90', PLUGIN_REVISION: '7' },
    coreTasks: ours.tasks,
  })
  assert.deepEqual(b.errors.map(formatIssue), [])
  assert.equal(b.plugin!.version, '4.90.7')
  // The repository's top directory works too (the plugin is its plugin_source/).
  const top = loadPluginDir(root, { defines: { PLUGIN_VERSION: '4.90', PLUGIN_REVISION: '7' }, coreTasks: ours.tasks })
  assert.deepEqual(top.errors.map(formatIssue), [])
  assert.equal(top.plugin!.name, 'fuel-plugin-xenserver')
})

test('the XenServer plugin on the fuel-web fixture: its anchor task is missing from that older core graph', () => {
  const r = loadPluginDir(join(corpus, 'fuel-plugin-xenserver/master'), {
    defines: XENSERVER_DEFINES,
    coreTasks: fuelWeb().tasks,
  })
  assert.deepEqual(r.errors.map(formatIssue), [
    `deployment_tasks.yaml:5:14: [0].requires[0]: Tasks 'network_configuration_end' can't be in requires for [install-pv-tool] because they don't exist in the graph (expected the id of a task of this plugin or of the release, found "network_configuration_end")`,
  ])
})

function editTasks(edit: (text: string) => string): string {
  const dir = copyPlugin('fuel-plugin-xenserver/8.0')
  const f = join(dir, 'deployment_tasks.yaml')
  writeFileSync(f, edit(readFileSync(f, 'utf8')))
  return dir
}

test('graph checks: a cycle, a dangling reference and a bad regex each give their error', () => {
  const cycle = editTasks((t) =>
    t
      .replace("requires: ['install-pv-tool']", "requires: ['install-pv-tool', 'controller-post-deployment']")
      .replace(
        "required_for: ['post_deployment_end']\n  requires: ['post_deployment_start']\n  type: shell\n  parameters:\n    cmd: ./controller",
        "required_for: ['install-pv-tool']\n  requires: ['compute-post-deployment']\n  type: shell\n  parameters:\n    cmd: ./controller",
      ),
  )
  const c = loadPluginDir(cycle, { coreTasks: ours.tasks }).errors.map(formatIssue)
  assert.equal(c.length, 1, c.join('\n'))
  assert.deepEqual(c, [
    'deployment_tasks.yaml:9:7: [1].id: Graph cannot be processed because it contains cycles in it: compute-post-deployment -> controller-post-deployment -> compute-post-deployment (expected an acyclic graph)',
  ])
  const dangling = editTasks((t) => t.replace("requires: ['install-pv-tool']", "requires: ['install-pv-tools']"))
  assert.deepEqual(loadPluginDir(dangling, { coreTasks: ours.tasks }).errors.map(formatIssue), [
    `deployment_tasks.yaml:12:14: [1].requires[0]: Tasks 'install-pv-tools' can't be in requires for [compute-post-deployment] because they don't exist in the graph (expected the id of a task of this plugin or of the release, found "install-pv-tools")`,
  ])
  const regex = editTasks((t) => t.replace("role: ['compute']", "role: ['/comp(ute/']"))
  assert.deepEqual(loadPluginDir(regex, { coreTasks: ours.tasks }).errors.map(formatIssue), [
    `deployment_tasks.yaml:2:10: [0].role[0]: role regular expression /comp(ute/ does not compile: Invalid regular expression: /comp(ute/: Unterminated group (expected a valid /regex/, found "/comp(ute/")`,
  ])
  const params = editTasks((t) =>
    t.replace("cmd: 'dpkg -i ./xe-guest-utilities_6.5.0-1393_amd64.deb'", "command: 'dpkg'"),
  )
  assert.match(
    loadPluginDir(params, { coreTasks: ours.tasks }).errors.map(formatIssue)[0],
    /\[0\]\.parameters: task "install-pv-tool" of type shell needs parameters\.cmd/,
  )
  const notGroup = editTasks((t) => t.replace("role: ['compute']", "groups: ['netconfig']"))
  assert.match(
    loadPluginDir(notGroup, { coreTasks: ours.tasks }).errors.map(formatIssue)[0],
    /^deployment_tasks\.yaml:2:12: \[0\]\.groups\[0\]: "netconfig" in groups of \[install-pv-tool\] is a skipped task, not a group \(expected the id of a group task \(primary-controller, controller, /,
  )
  const stage = editTasks((t) => t.replace('type: shell', 'type: shell\n  stage: middle_deployment'))
  assert.match(
    loadPluginDir(stage, { coreTasks: ours.tasks }).errors.map(formatIssue)[0],
    /\[0\]\.stage: unknown stage \(expected pre_deployment, deploy or post_deployment/,
  )
})

test('legacy tasks.yaml: unknown stage and missing parameters; 6.0.0 node_tags.yaml', () => {
  const dir = copyPlugin('fuel-plugin-xenserver/6.1')
  const f = join(dir, 'tasks.yaml')
  writeFileSync(
    f,
    readFileSync(f, 'utf8')
      .replace('stage: pre_deployment/6001', 'stage: mid_deployment/6001')
      .replace('cmd: ./controller_post_deployment.sh', 'command: x'),
  )
  assert.deepEqual(loadPluginDir(dir).errors.map(formatIssue), [
    'tasks.yaml:8:10: [1].stage: unknown stage (expected pre_deployment or post_deployment, optionally with a /<number> postfix (e.g. post_deployment/100), found "mid_deployment/6001")',
    'tasks.yaml:23:5: [3].parameters: shell task needs parameters.cmd (expected parameters: {cmd, timeout}, found parameters with command, timeout)',
  ])
  const v6 = copyPlugin('fuel-plugins-examples/fuel_plugin_example_v5')
  const m = join(v6, 'metadata.yaml')
  writeFileSync(m, readFileSync(m, 'utf8').replace("package_version: '5.0.0'", "package_version: '6.0.0'"))
  writeFileSync(
    join(v6, 'node_config.yaml'),
    readFileSync(join(v6, 'node_config.yaml'), 'utf8').replace(
      'type: "checkbox"\n    value: ""',
      'type: "checkbox"\n    value: false',
    ),
  )
  writeFileSync(join(v6, 'node_tags.yaml'), 'fuel_plugin_example_v5_tag:\n  has_primary: yes\n')
  const r = loadPluginDir(v6, { coreTasks: ours.tasks })
  assert.deepEqual(r.errors.map(formatIssue), [])
  assert.deepEqual(r.plugin!.nodeTags, { fuel_plugin_example_v5_tag: { has_primary: true } })
  writeFileSync(join(v6, 'node_tags.yaml'), 'fuel_plugin_example_v5_tag:\n  has_primary: maybe\n')
  assert.deepEqual(loadPluginDir(v6, { coreTasks: ours.tasks }).errors.map(formatIssue), [
    'node_tags.yaml:2:16: fuel_plugin_example_v5_tag.has_primary: wrong type (expected boolean, found string "maybe")',
  ])
})

test('a bad restriction expression points at its column', () => {
  const dir = copyPlugin('fuel-plugin-xenserver/8.0')
  const f = join(dir, 'environment_config.yaml')
  writeFileSync(
    f,
    readFileSync(f, 'utf8').replace(
      `"settings:common.libvirt_type.value == 'kvm'"`,
      `"settings:common.libvirt_type.value = 'kvm'"`,
    ),
  )
  const e = loadPluginDir(dir, { coreTasks: ours.tasks }).errors.map(formatIssue)
  assert.deepEqual(e, [
    `environment_config.yaml:4:9: attributes.metadata.restrictions[0]: restriction expression does not parse: expected "==" but found "= " at column 36 of "settings:common.libvirt_type.value = 'kvm'" (expected an expression in the restrictions language)`,
  ])
})

test('every restriction expression of the corpus parses and evaluates against its release defaults', () => {
  const fixture = fuelWeb()
  let count = 0
  for (const f of yamlFiles(corpus)) {
    const local = join(dirname(f), 'newrelease.yaml')
    const release = existsSync(local) ? loadReleaseFile(local).release! : fixture
    const models = defaultModels(release)
    const { source } = parseYaml(f, substituteTokens(readFileSync(f, 'utf8'), XENSERVER_DEFINES).text)
    for (const e of collectExpressions(source!.data)) {
      const expr = new Expression(e.condition, e.strict)
      assert.equal(typeof expr.evaluate(models), 'boolean', `${f}: ${e.condition}`)
      count++
    }
  }
  assert.ok(count >= 500, `expected the corpus' ~528 expressions, found ${count}`)
  // The XenServer plugin's own restrictions, on the fixture's defaults: none holds (qemu, no Ceph, no extras).
  const env = parseYaml('x', readFileSync(join(corpus, 'fuel-plugin-xenserver/master/environment_config.yaml'), 'utf8'))
  const conditions = (env.source!.data as any).attributes.metadata.restrictions as string[]
  assert.deepEqual(
    conditions.map((c) => new Expression(c).evaluate(defaultModels(fixture))),
    conditions.map(() => false),
  )
})

function xenserverComponents(branch: string): Component[] {
  const r = loadPluginDir(join(corpus, 'fuel-plugin-xenserver', branch), { defines: XENSERVER_DEFINES })
  return r.plugin!.components
}

test('component selections: XenServer against each of its incompatible components fails with its message', () => {
  for (const branch of ['8.0', '9.0', 'master']) {
    const xen = xenserverComponents(branch)
    const name = xen[0].name
    const releaseNames = new Set(ours.components.map((c) => c.name))
    // Names the release does not define (older Ceph names) come from another plugin here.
    const others: Component[] = (xen[0].incompatible ?? [])
      .filter((i) => !releaseNames.has(i.name))
      .map((i) => ({ name: i.name, label: i.name }))
    const all = mergeComponents(ours.components, [
      { plugin: 'fuel-plugin-xenserver', components: xen },
      { plugin: 'other-plugin', components: others },
    ])
    const base = ['network:neutron:core:ml2', 'network:neutron:ml2:vlan', 'storage:block:lvm']
    if (branch === 'master')
      assert.deepEqual(validateSelection(all, [name, ...base], { requiredTypes: ours.requiredComponentTypes }), [])
    for (const inc of xen[0].incompatible!) {
      const selection = [name, ...base.filter((b) => b !== inc.name), inc.name]
      const v = validateSelection(all, selection).filter((x) => x.component === name)
      const label = all.find((c) => c.name === inc.name)!.label
      assert.deepEqual(
        v.map((x) => x.message),
        [`XenServer (${name}) is incompatible with ${label} (${inc.name})`],
        `${branch}: ${inc.name}`,
      )
    }
  }
  // A plugin may not reuse a component name.
  assert.throws(
    () => mergeComponents(ours.components, [{ plugin: 'bad', components: [{ name: 'hypervisor:qemu', label: 'Q' }] }]),
    /Plugin bad is overlapping with release: component "hypervisor:qemu" is already defined by release/,
  )
})

test('component requires: the predicate form and the list form', () => {
  const reg: Component[] = [
    ...ours.components,
    { name: 'hypervisor:xenserver', label: 'XenServer' },
    {
      name: 'additional_service:list',
      label: 'List',
      requires: [
        { name: 'hypervisor:xenserver', message: 'needs XenServer or KVM' },
        { name: 'hypervisor:kvm' },
        { name: 'network:neutron:ml2:vlan', message: 'needs VLAN' },
      ],
    },
  ]
  const base = ['network:neutron:core:ml2', 'storage:block:lvm']
  // List form: at least one per component type (hypervisor: xenserver or kvm; network: vlan).
  assert.deepEqual(
    validateSelection(reg, [...base, 'hypervisor:kvm', 'network:neutron:ml2:vlan', 'additional_service:list']),
    [],
  )
  assert.deepEqual(
    validateSelection(reg, [...base, 'hypervisor:qemu', 'network:neutron:ml2:vlan', 'additional_service:list']).map(
      (v) => v.message,
    ),
    ['needs XenServer or KVM'],
  )
  // Predicate form (release): mongo needs ceilometer (all_of); vlan needs exactly one ML2 core.
  assert.deepEqual(
    validateSelection(reg, [
      'hypervisor:qemu',
      'network:neutron:core:ml2',
      'network:neutron:ml2:vlan',
      'storage:block:lvm',
      'additional_service:mongo',
    ]).map((v) => v.message),
    ['An external MongoDB is only used by Ceilometer: select Ceilometer too.'],
  )
  assert.deepEqual(
    validateSelection(reg, ['hypervisor:qemu', 'network:neutron:ml2:vlan'], {
      requiredTypes: ['hypervisor', 'network', 'storage'],
    }).map((v) => v.message),
    ['Neutron VLAN segmentation needs the Neutron ML2 core plugin.', 'Select at least one storage component'],
  )
  // Every violation is returned, not only the first.
  const many = validateSelection(reg, [
    'hypervisor:qemu',
    'network:neutron:core:ml2',
    'network:neutron:ml2:vlan',
    'network:neutron:ml2:tun',
    'storage:block:lvm',
    'storage:block:ceph',
    'additional_service:ironic',
  ])
  assert.deepEqual(many.map((v) => `${v.kind} ${v.component}`).sort(), [
    'incompatible additional_service:ironic',
    'incompatible network:neutron:ml2:tun',
    'incompatible network:neutron:ml2:tun',
    'incompatible network:neutron:ml2:vlan',
    'incompatible storage:block:ceph',
    'incompatible storage:block:lvm',
  ])
})
