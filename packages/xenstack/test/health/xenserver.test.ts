/**
 * The XenServer checks on a lab deployed by the integration's own native tasks: the whole default set passes.
 * Then things are broken as an operator or a bug would break them — a dom0 route deleted, a nova key changed, a
 * dom0 plugin file removed, the pool reporting XenServer 6.5.0 without its hotfix, the TestVM image deleted, the
 * compute VM's MASQUERADE rule removed — and exactly the matching tests fail (each with a message that says what was
 * expected and what was found); repairing (running the integration's task again, or applying the hotfix) makes
 * them pass. The breaks that hit different tests are made together, so the set of failing tests proves that each
 * break fails its own test and no other; the MASQUERADE rule (same test as the route) gets its own round, run
 * through the CLI with its exit status and JUnit report.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { canonicalCidr } from '../../src/node/index.js'
import { GlanceClient } from '../../src/glance/client.js'
import { xenserverHealthRunner } from '../../src/health/xenserver/index.js'
import { TEST_SETS } from '../../src/health/testsets.js'
import type { TestResult } from '../../src/health/types.js'
import { runCli } from '../cli/run.js'
import { withDeployedLab } from './lab-env.js'

const PREFIX = 'xenstack.health.xenserver.'
const NAT = `${PREFIX}smoke.test_dom0_reaches_networks_through_compute_nat`
const NOVA = `${PREFIX}configuration.test_nova_compute_config`
const PLUGINS = `${PREFIX}sanity.test_dom0_plugins`
const PLATFORM = `${PREFIX}sanity.test_platform_version`
const TESTVM = `${PREFIX}sanity.test_testvm_image`

test('XenServer checks on a deployed lab: all pass; each break fails exactly its test, explained; repair passes', async (t) => {
  await withDeployedLab(t, {}, async ({ lab, state, env, deployXenServer, runNatives }) => {
    await deployXenServer()
    const runner = xenserverHealthRunner(state)
    /** Every test set at once (the default run); the results by test id. */
    const runAll = async (): Promise<Map<string, TestResult>> => {
      const runs = await Promise.all(TEST_SETS.map((s) => runner.wait(runner.start(env, s.id).id)))
      return new Map(runs.flatMap((r) => r.tests.map((x) => [x.id, x] as const)))
    }
    const failing = (results: Map<string, TestResult>) =>
      [...results.values()].filter((r) => r.status !== 'success' && r.status !== 'disabled')
    const explain = (results: Map<string, TestResult>) =>
      failing(results)
        .map((r) => `${r.id}: ${r.status}: ${r.message}`)
        .join('\n')
    const service = lab.services.find((s) => s.kind === 'glance') as { adminUrl?: string; url?: string }
    const glance = new GlanceClient({ endpoint: service.adminUrl ?? service.url! })

    await t.test('the whole default set passes on the deployed lab', async () => {
      const t0 = performance.now()
      const results = await runAll()
      const ms = Math.round(performance.now() - t0)
      t.diagnostic(`whole default set: ${ms} ms for ${results.size} tests`)
      assert.deepEqual(failing(results), [], explain(results))
      assert.ok([...results.values()].filter((r) => r.status === 'success').length >= 15)
      // Not applicable here (one controller, no additional components): disabled with the reason.
      assert.match(results.get(`${PREFIX}ha.test_console_tokens_shared`)!.message, /needs deployment tags "ha"/)
    })

    await t.test('five breaks: exactly their five tests fail, each explained; repairs make them pass', async () => {
      const storage = canonicalCidr(lab.host('compute-1').addresses.storage!)
      const sim = lab.simulator!.sim
      const host = lab.simulator!.refs.get('dom0-1')!
      const sv = sim.db.get(host)!.software_version as Record<string, string>
      const [testvm] = await glance.listImages({ name: 'TestVM' })
      assert.ok(testvm, 'the image task uploaded TestVM')

      await lab.execOk('dom0-1', ['ip', 'route', 'del', storage])
      await lab.execOk('compute-1', [
        'sed',
        '-i',
        's/^connection_username *=.*/connection_username = nobody/',
        '/etc/nova/nova-compute.conf',
      ])
      await lab.execOk('dom0-1', ['rm', '/etc/xapi.d/plugins/xenstack_dom0.py'])
      sim.db.update(host, { software_version: { ...sv, product_version: '6.5.0', platform_version: '1.9.0' } })
      await glance.deleteImage(testvm!.id)

      const expected: Record<string, RegExp> = {
        [NAT]: new RegExp(
          `^Step 2 failed: expected every dom0 to reach .*; found compute-1's dom0 got no answer from storage at [0-9.]+ \\(storage network\\): dom0 is missing route ${storage.replace(/\./g, '\\.')} via 169\\.254\\.`,
        ),
        [NOVA]:
          /^Step 3 failed: expected the keys and values xenstack writes for OpenStack mitaka in \/etc\/nova\/nova-compute\.conf; found compute-1: \[xenserver\] connection_username = nobody, expected root$/,
        [PLUGINS]:
          /^Step 1 failed: expected the \d+ plugin files of the configured set in \/etc\/xapi\.d\/plugins on every dom0; found compute-1's dom0: .*\+ xenstack_dom0\.py/,
        [PLATFORM]:
          /^Step 2 failed: expected a supported platform with its required hotfixes on every host; found host xs1: XenServer 6\.5\.0 \(platform 1\.9\.0\) needs hotfix XS65ESP1013, which has not been installed/,
        [TESTVM]: /^Step 2 failed: expected exactly one image named TestVM; found none/,
      }
      const broken = await runAll()
      assert.deepEqual(
        failing(broken)
          .map((r) => r.id)
          .sort(),
        Object.keys(expected).sort(),
        explain(broken),
      )
      for (const [id, message] of Object.entries(expected)) {
        assert.equal(broken.get(id)!.status, 'failure', id)
        assert.match(broken.get(id)!.message, message)
      }
      assert.ok(broken.get(NAT)!.evidence.some((e) => /ip route get/.test(e.label)))
      // The nova failure's evidence is the parsed file, connection_password included: stored scrubbed.
      const password = lab.simulator!.password
      const stored = JSON.stringify(state.db.prepare('SELECT * FROM health_results').all())
      assert.ok(stored.includes('connection_password'), 'the file is in the evidence')
      assert.ok(!stored.includes(password), 'the XenServer password is in no stored result')

      await runNatives('compute-1', ['xenserver.dom0-routes', 'xenserver.nova-compute', 'xenserver.dom0-plugins'])
      await runNatives('controller-1', ['xenserver.test-image'])
      sim.db.create('pool_patch', {
        name_label: 'XS65ESP1013',
        name_description: 'XS65ESP1013',
        version: '1.0',
        size: 1024,
        after_apply_guidance: [],
        pool_applied: true,
      })
      const repaired = await runAll()
      assert.deepEqual(failing(repaired), [], explain(repaired))
    })

    await t.test(
      'a removed MASQUERADE rule, through the CLI: exit 1, only the NAT test fails; repaired: exit 0',
      async () => {
        const junit = join(state.dataDir, 'health.xml')
        await lab.execOk('compute-1', ['iptables', '-t', 'nat', '-D', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE'])
        try {
          const r = await runCli(['health', 'run', env, '--json', '--junit', junit, '--data-dir', state.dataDir])
          assert.equal(r.code, 1, r.stderr)
          const report = JSON.parse(r.stdout) as { ok: boolean; runs: { tests: TestResult[] }[] }
          assert.equal(report.ok, false)
          const bad = report.runs
            .flatMap((x) => x.tests)
            .filter((x) => x.status !== 'success' && x.status !== 'disabled')
          assert.deepEqual(
            bad.map((x) => x.id),
            [NAT],
          )
          assert.match(
            bad[0]!.message,
            /got no answer from controller-1 at [0-9.]+ \(management network\): compute-1 is missing iptables rule nat\/POSTROUTING -o eth0 -j MASQUERADE/,
          )
          assert.match(readFileSync(junit, 'utf8'), /<failure message="Step 2 failed: expected every dom0 to reach/)
          assert.ok(!(r.stdout + r.stderr + readFileSync(junit, 'utf8')).includes(lab.simulator!.password))
        } finally {
          await runNatives('compute-1', ['xenserver.compute-nat'])
        }
        const ok = await runCli(['health', 'run', env, '--set', 'smoke', '--data-dir', state.dataDir])
        assert.equal(ok.code, 0, ok.stdout + ok.stderr)
        assert.match(ok.stdout, /ok {6}Dom0 reaches the management and storage networks/)
      },
    )
  })
})
