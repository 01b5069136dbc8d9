/**
 * Dom0 plugins on the lab wired to the simulator: the bundled set installed into dom0's /etc/xapi.d/plugins (0755,
 * same SHA-256 as the repository's files; dry run changes nothing; second run unchanged; a wrong mode repaired) and
 * answering through `host.call_plugin` — the version check against the release table, and xenstack_dom0.py's plain
 * contract (string args, JSON string result, a XenAPIPlugin.Failure re-raised by XAPI with its code and params). An os-xenapi-style
 * release tarball served over HTTP installs its os_xenapi/dom0/etc/xapi.d/plugins/* only, and its older version
 * fails the check with a message that says what was found and what is needed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type Xapi } from '@xenstack/xenapi'
import { withLab } from '../../../src/lab/index.js'
import {
  Dom0PluginVersionError,
  DOM0_PLUGINS_DIR,
  bundledDom0PluginsDir,
  checkDom0PluginVersion,
  converge,
  dom0PluginResources,
  installDom0Plugins,
  pluginFilesFrom,
  pluginFilesFromTarball,
} from '../../../src/integration/dom0/index.js'
import { plan, pendingChanges } from '../../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from '../../node/helpers.js'

/** A tarball laid out like an os-xenapi source release, with a plugin set of version `version`. */
function osXenapiTarball(dir: string, version: string): string {
  const top = join(dir, 'os-xenapi-0.0.1')
  const plugins = join(top, 'os_xenapi', 'dom0', 'etc', 'xapi.d', 'plugins')
  mkdirSync(plugins, { recursive: true })
  writeFileSync(join(top, 'setup.py'), 'raise SystemExit("not a plugin")\n')
  writeFileSync(join(top, 'os_xenapi', '__init__.py'), '')
  const bundled = readFileSync(join(bundledDom0PluginsDir(), 'dom0_plugin_version.py'), 'utf8')
  writeFileSync(join(plugins, 'dom0_plugin_version.py'), bundled.replace('"2.1"', JSON.stringify(version)))
  writeFileSync(join(plugins, 'config_file.py'), '#!/usr/bin/env python\nimport XenAPIPlugin\n')
  const tarball = join(dir, 'os-xenapi-0.0.1.tar.gz')
  execFileSync('tar', ['-czf', tarball, '-C', dir, 'os-xenapi-0.0.1'])
  return tarball
}

test('dom0 plugins: installed with modes and digests, answering through host.call_plugin', async (t) => {
  if (!(await labPrerequisite(t))) return
  const work = mkdtempSync(join(tmpdir(), 'xenstack-dom0-plugins-'))
  await withLab(
    { hosts: 1, controllers: 0, storageNode: false, httpProbePort: false, simulator: true },
    async (lab) => {
      const sim = lab.simulator!
      const dom0 = sshTo(lab, 'dom0-1')
      let xapi: Xapi | undefined
      const http = createServer((req, res) => {
        if (req.url === '/os-xenapi-0.0.1.tar.gz') res.end(readFileSync(join(work, 'os-xenapi-0.0.1.tar.gz')))
        else res.writeHead(404).end()
      })
      try {
        xapi = await connect({ url: sim.url, username: sim.username, password: sim.password })
        const host = { ref: sim.refs.get('dom0-1')!, name: 'xs1' }
        const bundled = await pluginFilesFrom({ kind: 'bundled' })
        const listing = () => onHost(lab, 'dom0-1', `ls -l ${DOM0_PLUGINS_DIR} | sed 1d; true`)

        await t.test('the bundled set: dry run changes nothing, one run installs 0755 files', async () => {
          assert.deepEqual(
            bundled.map((f) => f.name),
            ['dom0_plugin_version.py', 'nova_plugin_version', 'nova_plugin_version.py', 'xenstack_dom0.py'],
            'documentation is not installed',
          )
          const before = await listing()
          const planned = await installDom0Plugins(dom0, xapi!, host, { kind: 'bundled' }, 'ussuri', { dryRun: true })
          assert.ok(planned.some((c) => c.result === 'changed'))
          assert.equal(await listing(), before)
          await installDom0Plugins(dom0, xapi!, host, { kind: 'bundled' }, 'ussuri')
          for (const f of bundled) {
            const [mode, sum] = (
              await onHost(
                lab,
                'dom0-1',
                `stat -c %a ${DOM0_PLUGINS_DIR}/${f.name}; sha256sum < ${DOM0_PLUGINS_DIR}/${f.name}`,
              )
            ).split('\n')
            assert.equal(mode, '755', f.name)
            assert.equal(
              sum.split(' ')[0],
              createHash('sha256')
                .update(readFileSync(join(bundledDom0PluginsDir(), f.name)))
                .digest('hex'),
            )
          }
        })

        await t.test('second run unchanged; a wrong mode is found by the check and repaired', async () => {
          const again = await converge(dom0, dom0PluginResources(bundled))
          assert.deepEqual(
            again.filter((c) => c.result !== 'unchanged'),
            [],
          )
          await onHost(lab, 'dom0-1', `chmod 0644 ${DOM0_PLUGINS_DIR}/xenstack_dom0.py`)
          const pending = pendingChanges(await plan(dom0, dom0PluginResources(bundled)))
          assert.match(pending.map((p) => p.diff.join('\n')).join('\n'), /xenstack_dom0\.py: mode 0644 → 0755/)
          await converge(dom0, dom0PluginResources(bundled))
          assert.equal(await onHost(lab, 'dom0-1', `stat -c %a ${DOM0_PLUGINS_DIR}/xenstack_dom0.py`), '755\n')
        })

        await t.test('the version check through host.call_plugin, per release', async () => {
          assert.equal(await checkDom0PluginVersion(xapi!, host, 'ussuri'), '2.1')
          assert.equal(await checkDom0PluginVersion(xapi!, host, 'ocata'), '2.1')
          assert.equal(await checkDom0PluginVersion(xapi!, host, 'mitaka'), '1.8', "pre-Ocata: nova's version file")
          assert.equal(await checkDom0PluginVersion(xapi!, host, 'newton'), '1.8')
          await onHost(lab, 'dom0-1', `rm ${DOM0_PLUGINS_DIR}/nova_plugin_version`)
          await assert.rejects(
            checkDom0PluginVersion(xapi!, host, 'mitaka'),
            (e: Error) =>
              e instanceof Dom0PluginVersionError &&
              /host xs1: OpenStack mitaka checks nova_plugin_version .*not installed in \/etc\/xapi\.d\/plugins/.test(
                e.message,
              ),
          )
          const repaired = await installDom0Plugins(dom0, xapi!, host, { kind: 'bundled' }, 'mitaka')
          assert.match(repaired.find((c) => c.result === 'changed')?.diff ?? '', /^\+ nova_plugin_version \(sha256/m)
        })

        await t.test("xenstack_dom0.py: XAPI's plain plugin contract", async () => {
          await onHost(lab, 'dom0-1', 'ip route replace 10.99.4.0/22 via 169.254.0.77 dev xenapi')
          const out = await xapi!.callPlugin(host.ref, 'xenstack_dom0.py', 'route', { cidr: '10.99.4.0/22' })
          assert.deepEqual(JSON.parse(out), {
            cidr: '10.99.4.0/22',
            routes: ['10.99.4.0/22 via 169.254.0.77 dev xenapi'],
          })
          assert.equal(await xapi!.callPlugin(host.ref, 'xenstack_dom0.py', 'version', {}), '1.0')
          await assert.rejects(
            xapi!.callPlugin(host.ref, 'xenstack_dom0.py', 'route', { cidr: '10.99.4.0' }),
            (e: Error & { code?: string; params?: string[] }) =>
              e.code === 'ArgumentError' && JSON.stringify(e.params).includes('not an IPv4 network'),
          )
          await assert.rejects(
            xapi!.callPlugin(host.ref, 'xenstack_dom0.py', 'chain', { chain: 'No-Such-Chain' }),
            (e: Error & { code?: string; params?: string[] }) =>
              e.code === 'NoSuchChain' && JSON.stringify(e.params).includes('No-Such-Chain'),
          )
          const input = JSON.parse(await xapi!.callPlugin(host.ref, 'xenstack_dom0.py', 'chain', { chain: 'INPUT' }))
          assert.equal(input.chain, 'INPUT')
          assert.ok(Array.isArray(input.rules))
        })

        await t.test(
          'an os-xenapi release tarball by URL: only its dom0 plugins; an old version is refused',
          async () => {
            osXenapiTarball(work, '1.8')
            await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()))
            const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/os-xenapi-0.0.1.tar.gz`
            const files = await pluginFilesFromTarball(url)
            assert.deepEqual(
              files.map((f) => f.name),
              ['config_file.py', 'dom0_plugin_version.py'],
            )
            await assert.rejects(
              installDom0Plugins(dom0, xapi!, host, { kind: 'tarball', path: url }, 'queens'),
              (e: Error) =>
                e instanceof Dom0PluginVersionError &&
                /host xs1: dom0_plugin_version\.py reports version 1\.8, but OpenStack queens needs 2\.1/.test(
                  e.message,
                ),
            )
            assert.equal(await onHost(lab, 'dom0-1', `stat -c %a ${DOM0_PLUGINS_DIR}/config_file.py`), '755\n')
            await assert.rejects(pluginFilesFromTarball(url.replace('os-xenapi', 'missing')), /answered 404/)
            const empty = join(work, 'empty.tar.gz')
            execFileSync('tar', ['-czf', empty, '-C', work, 'os-xenapi-0.0.1/setup.py'])
            await assert.rejects(pluginFilesFromTarball(empty), /has no os_xenapi\/dom0\/etc\/xapi\.d\/plugins\//)
            // back to the bundled set: only the version file changes
            const back = await installDom0Plugins(dom0, xapi!, host, { kind: 'bundled' }, 'queens')
            assert.match(back.find((c) => c.result === 'changed')?.diff ?? '', /dom0_plugin_version\.py: sha256/)
            assert.ok(readdirSync(lab.backingPath('dom0-1', DOM0_PLUGINS_DIR)).includes('xenstack_dom0.py'))
          },
        )
      } finally {
        http.close()
        await xapi?.close()
        await dom0.close()
        rmSync(work, { recursive: true, force: true })
      }
    },
  )
})
