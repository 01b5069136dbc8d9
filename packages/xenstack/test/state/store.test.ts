import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { scratchDirs } from '@xenstack/testkit'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { StateStore } from '../../src/state/store.js'
import { MIGRATIONS } from '../../src/state/migrations.js'
import { writeTarGz } from '../../src/plugins/archive.js'
import { installPlugin } from '../../src/plugins/lifecycle.js'
import { corpusDir, XENSERVER_DEFINES } from '../plugins/corpus.js'
import { BACKENDS, copyState, databaseUrlFor, storedStateText, tableNames, type BackendName } from './databases.js'
import { builtinReleases } from '../../src/releases/release.js'
import { mergeSettings, validateEnvironmentSettings, type PluginVersionInfo } from '../../src/plugins/settings.js'

const bin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
const corpus = corpusDir()
const tmp = scratchDirs()

/** The CLI on a data dir; `DATABASE_URL` set when its store is on PostgreSQL (databaseUrls; '' = SQLite). */
const databaseUrls = new Map<string, string>()
function cli(home: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    // without the shipped XenServer plugin: this file tests the lifecycle with the corpus's plugins
    env: {
      ...process.env,
      XENSTACK_HOME: home,
      XENSTACK_SHIPPED_PLUGINS: 'none',
      DATABASE_URL: databaseUrls.get(home) ?? '',
    },
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

test('migrations are recorded, ordered and idempotent', () => {
  const home = tmp('xenstack-state-')
  const s1 = StateStore.open({ dataDir: home })
  assert.deepEqual(s1.appliedMigrations(), MIGRATIONS.map((m) => m.id).sort())
  assert.deepEqual(s1.migrate(), [])
  // SQLite in WAL mode (several processes share the file); PostgreSQL has no such mode to check.
  if (s1.backend === 'sqlite') assert.equal(s1.db.pragma('journal_mode', { simple: true }), 'wal')
  const before = tableNames(s1)
  s1.close()
  const s2 = StateStore.open({ dataDir: home })
  assert.deepEqual(s2.migrate(), [])
  assert.deepEqual(s2.appliedMigrations(), MIGRATIONS.map((m) => m.id).sort())
  // A later migration (another part's) is applied once, after the existing ones.
  const extra = { id: '0900_test_extra', statements: ['CREATE TABLE test_extra (id TEXT PRIMARY KEY)'] }
  assert.deepEqual(s2.migrate([...MIGRATIONS, extra]), ['0900_test_extra'])
  assert.deepEqual(s2.migrate([...MIGRATIONS, extra]), [])
  assert.ok(before.includes('plugins') && before.includes('environments') && before.includes('schema_migrations'))
  s2.close()
})

test('password settings are encrypted at rest, redacted when read, revealed only on request', () => {
  const home = tmp('xenstack-secret-')
  const secret = 'Sup3r-S3cret-Xen-Passw0rd'
  const s = StateStore.open({ dataDir: home })
  assert.equal(statSync(join(home, 'secret.key')).mode & 0o777, 0o600)
  s.environments.create({
    name: 'demo',
    release: 'OpenStack on Ubuntu',
    settings: {
      'fuel-plugin-xenserver': {
        password: { type: 'password', label: 'Password', value: secret },
        username: { type: 'text', value: 'root' },
      },
    },
  })
  const shown = s.environments.settings('demo')
  assert.equal(shown['fuel-plugin-xenserver'].password.value, '********')
  assert.equal(shown['fuel-plugin-xenserver'].username.value, 'root')
  assert.equal(s.environments.settings('demo', { reveal: true })['fuel-plugin-xenserver'].password.value, secret)
  // Saving the redacted-then-revealed tree again keeps one encryption layer.
  s.environments.saveSettings('demo', s.environments.settings('demo', { reveal: true }))
  assert.equal(s.environments.settings('demo', { reveal: true })['fuel-plugin-xenserver'].password.value, secret)
  s.close()
  assert.equal(storedStateText(home).includes(secret), false, 'the stored state contains the password in plain text')
  // A different key cannot read it, and says why.
  const other = tmp('xenstack-otherkey-')
  copyState(home, other)
  const s2 = StateStore.open({ dataDir: other })
  assert.throws(
    () => s2.environments.settings('demo', { reveal: true }),
    /secret\.key is not the key it was written with/,
  )
  s2.close()
})

function buildArchive(home: string, out: string, dir: string, ...extra: string[]) {
  const r = cli(home, 'plugins', 'build', dir, '-o', out, '--json', ...extra)
  assert.equal(r.code, 0, r.err)
  return JSON.parse(r.out) as { file: string; sha256: string; name: string; version: string; files: number }
}

// On both state-store backends (the CLI gets DATABASE_URL for PostgreSQL).
const pluginLifecycle = (backend: BackendName) => (t: TestContext) => {
  const home = tmp('xenstack-cli-')
  const databaseUrl = databaseUrlFor(t, backend)
  if (databaseUrl === undefined) return
  databaseUrls.set(home, databaseUrl)
  const out = tmp('xenstack-archives-')
  const v200 = buildArchive(home, out, join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v2'))
  assert.deepEqual([v200.name, v200.version, v200.files], ['fuel_plugin_example', '2.0.0', 3])
  assert.match(v200.sha256, /^[0-9a-f]{64}$/)
  const v202 = buildArchive(home, out, join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v2_update'))
  const defs = Object.entries(XENSERVER_DEFINES).flatMap(([k, v]) => ['--define', `${k}=${v}`])
  const xen = buildArchive(home, out, join(corpus, 'fuel-plugin-xenserver/master'), ...defs)
  assert.equal(xen.version, '4.90.1')
  // A 3.0 version of the example: a different major.
  const v3src = tmp('xenstack-v3-')
  cpSync(join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v2_update'), v3src, { recursive: true })
  writeFileSync(
    join(v3src, 'metadata.yaml'),
    readFileSync(join(v3src, 'metadata.yaml'), 'utf8').replace("version: '2.0.2'", "version: '3.0.0'"),
  )
  const v300 = buildArchive(home, out, v3src)

  const inst = cli(home, 'plugins', 'install', v200.file, '--json')
  assert.equal(inst.code, 0, inst.err)
  const installed = JSON.parse(inst.out)
  assert.deepEqual(Object.keys(installed).sort(), [
    'archiveSha256',
    'dir',
    'files',
    'installedAt',
    'major',
    'name',
    'packageVersion',
    'releases',
    'title',
    'version',
  ])
  assert.equal(installed.archiveSha256, v200.sha256)
  assert.ok(existsSync(join(installed.dir, 'metadata.yaml')))
  assert.equal(cli(home, 'plugins', 'install', xen.file).code, 0)

  const again = cli(home, 'plugins', 'install', v202.file)
  assert.equal(again.code, 1)
  assert.match(
    again.err,
    /^xenstack: plugin fuel_plugin_example==2\.0\.0 is installed with the same major version \(2\.0\) as 2\.0\.2\nhint: use "xenstack plugins update /,
  )

  const list = JSON.parse(cli(home, 'plugins', 'list', '--json').out) as {
    name: string
    version: string
    enabledIn: string[]
  }[]
  assert.deepEqual(
    list.map((p) => `${p.name}==${p.version}`),
    ['fuel-plugin-xenserver==4.90.1', 'fuel_plugin_example==2.0.0'],
  )
  assert.deepEqual(list[0].enabledIn, [])

  // Enable both in an environment (what `env create` / the server do through the store).
  const s = StateStore.open({ dataDir: home, databaseUrl })
  s.environments.create({ name: 'demo', release: 'OpenStack on Ubuntu', settings: {} })
  s.environments.setPlugin('demo', 'fuel_plugin_example', '2.0.0', true)
  s.environments.setPlugin('demo', 'fuel-plugin-xenserver', '4.90.1', true)
  s.close()

  const show = cli(home, 'plugins', 'show', 'fuel-plugin-xenserver==4.90.1', '--json')
  assert.equal(show.code, 0, show.err)
  const shown = JSON.parse(show.out)
  assert.deepEqual(shown.enabledIn, ['demo'])
  assert.deepEqual(
    shown.components.map((c: { name: string }) => c.name),
    ['hypervisor:xenserver'],
  )
  assert.equal(shown.deploymentTasks.length, 5)
  assert.equal(shown.attributes.password.type, 'password')
  assert.ok(shown.fileList.some((f: { path: string }) => f.path === 'metadata.yaml'))
  assert.equal(cli(home, 'plugins', 'show', 'nope==1.0').code, 3)

  const refused = cli(home, 'plugins', 'remove', 'fuel-plugin-xenserver==4.90.1', '--json')
  assert.equal(refused.code, 1)
  assert.equal(refused.out, '')
  assert.deepEqual(refused.err.trim().split('\n'), [
    "xenstack: Can't delete plugin fuel-plugin-xenserver==4.90.1: it is enabled for environment demo",
    'hint: disable the plugin in those environments first',
  ])
  assert.equal(JSON.parse(cli(home, 'plugins', 'list', '--json').out)[0].enabledIn[0], 'demo')

  const major = cli(home, 'plugins', 'update', v300.file)
  assert.equal(major.code, 5)
  assert.match(
    major.err,
    /^xenstack: cannot update fuel_plugin_example to 3\.0\.0: installed version 2\.0\.0 has a different major version/,
  )

  const upd = cli(home, 'plugins', 'update', v202.file, '--json')
  assert.equal(upd.code, 0, upd.err)
  const u = JSON.parse(upd.out)
  assert.deepEqual([u.from.version, u.to.version], ['2.0.0', '2.0.2'])
  assert.equal(existsSync(u.from.dir), false)
  const s2 = StateStore.open({ dataDir: home, databaseUrl })
  assert.deepEqual(s2.environments.require('demo').plugins, [
    { name: 'fuel-plugin-xenserver', version: '4.90.1', enabled: true },
    { name: 'fuel_plugin_example', version: '2.0.2', enabled: true },
  ])
  s2.environments.setPlugin('demo', 'fuel-plugin-xenserver', '4.90.1', false)
  s2.close()

  const rm = cli(home, 'plugins', 'remove', 'fuel-plugin-xenserver==4.90.1', '--json')
  assert.equal(rm.code, 0, rm.err)
  assert.deepEqual(JSON.parse(rm.out), { removed: { name: 'fuel-plugin-xenserver', version: '4.90.1' } })
  const missing = cli(home, 'plugins', 'remove', 'fuel-plugin-xenserver==4.90.1')
  assert.equal(missing.code, 3)
  assert.match(
    missing.err,
    /^xenstack: plugin fuel-plugin-xenserver==4\.90\.1 is not installed\nhint: installed: fuel_plugin_example==2\.0\.2/,
  )
  const badRef = cli(home, 'plugins', 'remove', 'fuel-plugin-xenserver')
  assert.equal(badRef.code, 5)
  assert.match(badRef.err, /write it as NAME==VERSION/)

  // A damaged archive is refused before anything is installed.
  const damaged = join(out, 'damaged.tar.gz')
  const bytes = readFileSync(v300.file)
  bytes[bytes.length - 12] ^= 0xff
  writeFileSync(damaged, bytes)
  const bad = cli(home, 'plugins', 'install', damaged)
  assert.notEqual(bad.code, 0)
  assert.match(bad.err, /^xenstack: .*damaged\.tar\.gz: /)
}
for (const backend of BACKENDS)
  test(
    `${backend}: plugin lifecycle through the CLI: install, list, remove refused while enabled, update within a major`,
    pluginLifecycle(backend),
  )

test('plugins check --json and release list/show --json', () => {
  const home = tmp('xenstack-check-')
  const ok = cli(home, 'plugins', 'check', join(corpus, 'fuel-plugin-xenserver/8.0'), '--json')
  assert.equal(ok.code, 0, ok.err)
  const c = JSON.parse(ok.out)
  assert.deepEqual(Object.keys(c).sort(), ['dir', 'errors', 'plugin', 'valid', 'warnings'])
  assert.deepEqual(c.plugin, { name: 'fuel-plugin-xenserver', version: '3.1.2', packageVersion: '4.0.0' })
  const bad = cli(home, 'plugins', 'check', join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v5'), '--json')
  assert.equal(bad.code, 5)
  const b = JSON.parse(bad.out)
  assert.equal(b.valid, false)
  assert.deepEqual(
    b.errors.map(
      (i: { file: string; line: number; column: number; path: string }) => `${i.file}:${i.line}:${i.column} ${i.path}`,
    ),
    ['node_config.yaml:25:12 plugin_section_a.attribute_b.value'],
  )
  const rl = JSON.parse(cli(home, 'release', 'list', '--json').out)
  assert.deepEqual(
    rl.map((r: { name: string }) => r.name),
    ['OpenStack on Ubuntu'],
  )
  const show = JSON.parse(cli(home, 'release', 'show', 'mitaka-9.0', '--json').out)
  assert.deepEqual(show.stages, [
    'pre_deployment_start',
    'pre_deployment_end',
    'deploy_start',
    'deploy_end',
    'post_deployment_start',
    'post_deployment_end',
  ])
  assert.equal(show.settings.access.password.value, '********')
  assert.ok(show.components.some((x: { name: string }) => x.name === 'additional_service:ironic'))
  const none = cli(home, 'release', 'show', 'Juno')
  assert.equal(none.code, 3)
  assert.match(none.err, /^xenstack: no release "Juno"\nhint: known releases: OpenStack on Ubuntu/)
})

test('environment settings: release + plugin versions side by side, validated with labels', () => {
  const release = builtinReleases()[0]
  const xen = (version: string, restrictions: string[]): PluginVersionInfo => ({
    name: 'fuel-plugin-xenserver',
    version,
    title: 'XenServer Plugin',
    packageVersion: '4.0.0',
    data: {
      metadata: { releases: [{ os: 'ubuntu', version: 'mitaka-9.0' }] },
      attributes: {
        metadata: { group: 'compute', restrictions },
        username: { value: 'root', label: 'Username', type: 'text', weight: 10 },
        password: {
          value: '',
          label: 'Password',
          type: 'password',
          weight: 20,
          regex: { source: '\\S', error: 'Password cannot be empty' },
        },
      },
    },
  })
  const installed = [xen('4.0.1', []), xen('4.90.1', ["settings:common.libvirt_type.value == 'kvm'"])]
  const incompatible = {
    ...xen('3.1.2', []),
    data: { ...xen('3.1.2', []).data, metadata: { releases: [{ os: 'ubuntu', version: 'liberty-8.0' }] } },
  }
  const tree = mergeSettings(
    release,
    [...installed, incompatible],
    [{ name: 'fuel-plugin-xenserver', version: '4.90.1', enabled: true }],
  )
  const group = tree['fuel-plugin-xenserver']
  assert.deepEqual(
    group.metadata.versions.map((v: any) => v.metadata.plugin_version),
    ['4.0.1', '4.90.1'],
  )
  assert.equal(group.metadata.chosen_id, '4.90.1')
  assert.equal(group.metadata.enabled, true)
  assert.equal(group.password.type, 'password')
  assert.deepEqual(
    validateEnvironmentSettings(release, tree).map((e) => e.message),
    ['Setting "Password" (fuel-plugin-xenserver.password): Password cannot be empty'],
  )
  group.password.value = 'x'
  tree.common.libvirt_type.value = 'kvm'
  assert.deepEqual(
    validateEnvironmentSettings(release, tree).map((e) => e.message),
    [
      "Validation failed for attribute 'XenServer Plugin': restriction with action='disable' and condition='settings:common.libvirt_type.value == 'kvm'' failed",
    ],
  )
  // Saved values survive a rebuild of the tree; a disabled plugin is not validated.
  const saved = mergeSettings(
    release,
    installed,
    [{ name: 'fuel-plugin-xenserver', version: '4.0.1', enabled: false }],
    tree,
  )
  assert.equal(saved['fuel-plugin-xenserver'].password.value, 'x')
  assert.equal(saved['fuel-plugin-xenserver'].metadata.enabled, true)
  saved['fuel-plugin-xenserver'].metadata.enabled = false
  assert.deepEqual(validateEnvironmentSettings(release, saved), [])
})

test('a Fuel-built .fp package (package_version 1.0.0, checksums.sha1 with ./paths) installs', () => {
  const home = tmp('xenstack-fp-')
  const src = join(corpus, 'fuel-plugins-examples/fuel_plugin_example_v1')
  const files = readdirSync(src).map((n) => ({ path: n, data: readFileSync(join(src, n)) }))
  const sha1 = files.map((f) => `${createHash('sha1').update(f.data).digest('hex')}  ./${f.path}\n`).join('')
  const entries = [...files, { path: 'checksums.sha1', data: Buffer.from(sha1) }].map((f) => ({
    path: `fuel_plugin_example-1.0.0/${f.path}`,
    data: f.data,
    mode: 0o644,
  }))
  const fp = join(tmp('xenstack-fp-out-'), 'fuel_plugin_example-1.0.0.fp')
  writeFileSync(fp, writeTarGz(entries))
  const store = StateStore.open({ dataDir: home })
  const p = installPlugin(store, fp)
  assert.deepEqual([p.name, p.version, p.packageVersion, p.files.length], ['fuel_plugin_example', '1.0.0', '1.0.0', 3])
  // A tampered file is caught by the SHA-1 list.
  const bad = entries.map((e) => (e.path.endsWith('tasks.yaml') ? { ...e, data: Buffer.from('- {}\n') } : e))
  const fp2 = join(tmp('xenstack-fp-out-'), 'fuel_plugin_example-1.0.1.fp')
  writeFileSync(fp2, writeTarGz(bad))
  assert.throws(
    () => installPlugin(store, fp2),
    /the archive is damaged: tasks\.yaml: checksum mismatch \(expected [0-9a-f]{40}, found [0-9a-f]{40}\)/,
  )
  store.close()
})
