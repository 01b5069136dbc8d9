/**
 * Dom0 pieces without a lab: the plugin source from the settings (switched off, bundled, a directory or a tarball
 * needing its path), the release table (every series Juno→Ussuri, 2.1 from Pike on), the bundled set's files, the
 * host key that gets pinned, the rotation script's cron line going to /dev/null, and the generated scripts parse.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OPENSTACK_SERIES } from '../../../src/integration/compute/release.js'
import {
  REQUIRED_DOM0_PLUGIN_VERSION,
  ROTATE_CRON_COMMAND,
  ROTATE_SCRIPT,
  dom0PluginSourceOf,
  onExecutor,
  pluginFilesFrom,
  preferredHostKey,
} from '../../../src/integration/dom0/index.js'
import { rerouteScript, restoreHook } from '../../../src/integration/network/index.js'
import { FileResource, LocalExecutor, Service, apply, plan } from '../../../src/node/index.js'

const ctx = (values: Record<string, unknown>) => ({
  node: 'compute-1',
  settings: { xenserver: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { value: v }])) },
})

test('plugin source from the settings', () => {
  assert.equal(dom0PluginSourceOf(ctx({ install_dom0_plugins: false })), undefined)
  assert.deepEqual(dom0PluginSourceOf(ctx({ install_dom0_plugins: true })), { kind: 'bundled' })
  assert.deepEqual(
    dom0PluginSourceOf(
      ctx({ install_dom0_plugins: true, dom0_plugin_source: 'tarball', dom0_plugin_path: ' /srv/x.tgz ' }),
    ),
    { kind: 'tarball', path: '/srv/x.tgz' },
  )
  assert.throws(
    () => dom0PluginSourceOf(ctx({ install_dom0_plugins: true, dom0_plugin_source: 'directory' })),
    /node compute-1: xenserver\.dom0_plugin_source is directory but xenserver\.dom0_plugin_path is empty/,
  )
  assert.throws(
    () => dom0PluginSourceOf(ctx({ dom0_plugin_source: 'rpm', dom0_plugin_path: '/x' })),
    /expected bundled, directory or tarball/,
  )
})

test('release table: every series has a plugin and a minimum; os-xenapi 2.1 from Pike on', async () => {
  assert.deepEqual(Object.keys(REQUIRED_DOM0_PLUGIN_VERSION), [...OPENSTACK_SERIES])
  for (const s of ['pike', 'queens', 'rocky', 'stein', 'train', 'ussuri'] as const)
    assert.deepEqual(REQUIRED_DOM0_PLUGIN_VERSION[s], { plugin: 'dom0_plugin_version.py', version: '2.1' })
  assert.equal(REQUIRED_DOM0_PLUGIN_VERSION.mitaka.plugin, 'nova_plugin_version')
  const files = await pluginFilesFrom({ kind: 'bundled' })
  const version = files.find((f) => f.name === 'dom0_plugin_version.py')!.content.toString('utf8')
  assert.match(version, /^PLUGIN_VERSION = "2\.1"$/m, 'the bundled set satisfies Pike→Ussuri')
  const nova = files.find((f) => f.name === 'nova_plugin_version')!.content.toString('utf8')
  assert.match(nova, /^PLUGIN_VERSION = "1\.8"$/m, 'and the pre-Ocata checks, Juno 1.2 to Newton 1.8')
  assert.equal(nova, files.find((f) => f.name === 'nova_plugin_version.py')!.content.toString('utf8'))
  assert.ok(files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256)))
})

test('the pinned host key is the one OpenSSH prefers; cron output goes nowhere', () => {
  const rsa = 'ssh-rsa AAAAB3Nza rsa@dom0'
  const ecdsa = 'ecdsa-sha2-nistp256 AAAAE2Vj ecdsa@dom0'
  const ed = 'ssh-ed25519 AAAAC3Nz ed@dom0'
  assert.equal(preferredHostKey([rsa, ecdsa, ed]), ed)
  assert.equal(preferredHostKey([rsa, ecdsa]), ecdsa)
  assert.equal(preferredHostKey([]), undefined)
  assert.match(ROTATE_CRON_COMMAND, />\/dev\/null 2>&1$/)
})

test('the generated scripts parse (bash -n / sh -n)', () => {
  execFileSync('bash', ['-n'], { input: ROTATE_SCRIPT })
  execFileSync('sh', ['-n'], { input: rerouteScript({ via: '169.254.0.2', networks: ['10.0.0.0/22'] }) })
  execFileSync('sh', ['-n'], { input: restoreHook() })
  assert.match(ROTATE_SCRIPT, /^#!\/bin\/bash\n/)
})

test("onExecutor: resources run on the bound executor whatever the task's node; ids name it", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-on-exec-'))
  const broken = new LocalExecutor({ name: 'compute-x', prefix: ['/bin/false'] }) // every command fails here
  const dom0 = new LocalExecutor({ name: 'dom0-x' })
  try {
    const file = new FileResource({ path: join(dir, 'conf'), content: 'a = 1\n' })
    const svc = new Service({ name: 'xenstack-no-such-service', restartOn: [file] })
    const bound = onExecutor(dom0, [file, svc], 'dom0-x')
    assert.ok(bound[0] instanceof FileResource)
    assert.equal(bound[0].id, `dom0-x: file ${join(dir, 'conf')}`)
    const planned = await plan(broken, bound)
    assert.deepEqual(
      planned.map((e) => [e.inSync, e.error]),
      [
        [false, undefined],
        [true, undefined],
      ],
    )
    const report = await apply(broken, bound)
    assert.ok(report.ok, JSON.stringify(report.entries))
    assert.equal(readFileSync(join(dir, 'conf'), 'utf8'), 'a = 1\n')
    assert.equal((await apply(broken, bound)).unchanged, 2)
  } finally {
    await broken.close()
    await dom0.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
