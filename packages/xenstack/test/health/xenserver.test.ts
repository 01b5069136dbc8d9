/**
 * The XenServer checks on a lab deployed by the integration's own native tasks: the whole default set passes;
 * then one thing at a time is broken as an operator or a bug would break it (a dom0 route deleted, the compute
 * VM's MASQUERADE rule removed, a nova key changed, a dom0 plugin file removed, the pool reporting XenServer
 * 6.5.0 without its hotfix), exactly the matching test fails with a message that says what was expected and what
 * was found, and repairing it (running the integration's task again, or applying the hotfix) makes it pass.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { canonicalCidr } from '../../src/node/index.js'
import { xenserverHealthRunner } from '../../src/health/xenserver/index.js'
import { TEST_SETS } from '../../src/health/testsets.js'
import type { TestResult } from '../../src/health/types.js'
import { withDeployedLab } from './lab-env.js'

const NAT = 'xenstack.health.xenserver.smoke.test_dom0_reaches_networks_through_compute_nat'
const NOVA = 'xenstack.health.xenserver.configuration.test_nova_compute_config'
const PLUGINS = 'xenstack.health.xenserver.sanity.test_dom0_plugins'
const PLATFORM = 'xenstack.health.xenserver.sanity.test_platform_version'

test('XenServer checks on a deployed lab: all pass; each break fails exactly its test, explained; repair passes', async (t) => {
  await withDeployedLab(t, {}, async ({ lab, state, env, deployXenServer, runNatives }) => {
    await deployXenServer()
    const runner = xenserverHealthRunner(state)
    /** Every test set at once (the default run); the results by test id. */
    const runAll = async (): Promise<Map<string, TestResult>> => {
      const runs = await Promise.all(TEST_SETS.map((s) => runner.wait(runner.start(env, s.id).id)))
      return new Map(runs.flatMap((r) => r.tests.map((x) => [x.id, x] as const)))
    }
    const runOne = async (id: string): Promise<TestResult> => {
      const set = id.split('.')[3]!
      const run = await runner.wait(runner.start(env, set, { tests: [id] }).id)
      return run.tests.find((x) => x.id === id)!
    }
    const failing = (results: Map<string, TestResult>) =>
      [...results.values()].filter((r) => r.status !== 'success' && r.status !== 'disabled')
    const explain = (results: Map<string, TestResult>) =>
      failing(results)
        .map((r) => `${r.id}: ${r.status}: ${r.message}`)
        .join('\n')

    await t.test('the whole default set passes on the deployed lab', async () => {
      const t0 = performance.now()
      const results = await runAll()
      const ms = Math.round(performance.now() - t0)
      t.diagnostic(`whole default set: ${ms} ms for ${results.size} tests`)
      assert.deepEqual(failing(results), [], explain(results))
      assert.ok([...results.values()].filter((r) => r.status === 'success').length >= 14)
      // Not applicable here (one controller, no additional components): disabled with the reason.
      assert.match(results.get('xenstack.health.xenserver.ha.test_console_tokens_shared')!.message, /"ha"/)
    })

    /** Breaks one thing, asserts only `id` fails with `message`, repairs, asserts `id` passes. */
    const breakAndRepair = async (
      id: string,
      doBreak: () => Promise<unknown>,
      message: RegExp,
      repair: () => Promise<unknown>,
    ) => {
      await doBreak()
      let repaired = false
      try {
        const results = await runAll()
        assert.deepEqual(
          failing(results).map((r) => r.id),
          [id],
          explain(results),
        )
        const r = results.get(id)!
        assert.equal(r.status, 'failure')
        assert.match(r.message, message)
        await repair()
        repaired = true
        const again = await runOne(id)
        assert.equal(again.status, 'success', again.message)
      } finally {
        if (!repaired) await repair() // the next case starts from a deployed lab either way
      }
    }

    await t.test('a deleted dom0 route: only the NAT test fails, naming the route', async () => {
      const storage = canonicalCidr(lab.host('compute-1').addresses.storage!)
      await breakAndRepair(
        NAT,
        () => lab.execOk('dom0-1', ['ip', 'route', 'del', storage]),
        new RegExp(
          `^Step 2 failed: expected every dom0 to reach .*; found compute-1's dom0 got no answer from storage at [0-9.]+ \\(storage network\\): dom0 is missing route ${storage.replace(/\./g, '\\.')}`,
        ),
        () => runNatives('compute-1', ['xenserver.dom0-routes']),
      )
    })

    await t.test('a removed MASQUERADE rule: only the NAT test fails, naming the rule', async () => {
      const rules = await lab.execOk('compute-1', ['iptables', '-t', 'nat', '-S', 'POSTROUTING'])
      const masq = rules.stdout.split('\n').find((l) => /-o eth0 -j MASQUERADE/.test(l))
      assert.ok(masq, rules.stdout)
      await breakAndRepair(
        NAT,
        () => lab.execOk('compute-1', ['iptables', '-t', 'nat', '-D', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE']),
        /got no answer from controller-1 .*\(management network\): compute-1 is missing .*-t nat -A POSTROUTING -o eth0 -j MASQUERADE/,
        () => runNatives('compute-1', ['xenserver.compute-nat']),
      )
    })

    await t.test('a changed nova key: only the nova configuration test fails, naming key and values', async () => {
      await breakAndRepair(
        NOVA,
        () =>
          lab.execOk('compute-1', [
            'sed',
            '-i',
            's/^connection_username *=.*/connection_username = nobody/',
            '/etc/nova/nova-compute.conf',
          ]),
        /^Step 3 failed: expected the keys and values xenstack writes for OpenStack mitaka in \/etc\/nova\/nova-compute\.conf; found compute-1: \[xenserver\] connection_username = nobody, expected root$/,
        () => runNatives('compute-1', ['xenserver.nova-compute']),
      )
    })

    await t.test('a removed dom0 plugin file: only the plugin test fails, naming the file', async () => {
      await breakAndRepair(
        PLUGINS,
        () => lab.execOk('dom0-1', ['rm', '/etc/xapi.d/plugins/xenstack_dom0.py']),
        /^Step 1 failed: expected the \d+ plugin files of the configured set in \/etc\/xapi\.d\/plugins on every dom0; found compute-1's dom0: .*xenstack_dom0\.py/,
        () => runNatives('compute-1', ['xenserver.dom0-plugins']),
      )
    })

    await t.test(
      'XenServer 6.5.0 without XS65ESP1013: only the platform test fails; the hotfix repairs it',
      async () => {
        const sim = lab.simulator!.sim
        const host = lab.simulator!.refs.get('dom0-1')!
        const sv = sim.db.get(host)!.software_version as Record<string, string>
        await breakAndRepair(
          PLATFORM,
          async () =>
            sim.db.update(host, {
              software_version: { ...sv, product_version: '6.5.0', platform_version: '1.9.0' },
            }),
          /^Step 2 failed: expected a supported platform with its required hotfixes on every host; found host xs1: XenServer 6\.5\.0 \(platform 1\.9\.0\) needs hotfix XS65ESP1013, which has not been installed/,
          async () =>
            sim.db.create('pool_patch', {
              name_label: 'XS65ESP1013',
              name_description: 'XS65ESP1013',
              version: '1.0',
              size: 1024,
              after_apply_guidance: [],
              pool_applied: true,
            }),
        )
      },
    )
  })
})
