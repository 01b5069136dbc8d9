import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { builtinReleases } from '../../src/releases/release.js'
import { loadPluginDir } from '../../src/plugins/loader.js'
import { buildExecutionPlan } from '../../src/engine/graph.js'
import { runPlan } from '../../src/engine/scheduler.js'
import { Recorder } from './synthetic.js'
import { corpusDir, XENSERVER_DEFINES } from '../plugins/corpus.js'

const corpus = corpusDir()
const defines = { ...XENSERVER_DEFINES, PLUGIN_VERSION: '4.0' }

for (const version of ['7.0', '8.0', '9.0', 'master']) {
  test(`the shipped release + the XenServer plugin ${version} (loaded by the plugin framework) expand and run in order`, async () => {
    const release = builtinReleases()[0]
    const loaded = loadPluginDir(join(corpus, 'fuel-plugin-xenserver', version), { defines })
    assert.ok(loaded.plugin, JSON.stringify(loaded.errors))
    const plugin = loaded.plugin
    const { plan } = buildExecutionPlan({
      tasks: [
        ...release.tasks.map((t) => ({ task: t.task, source: 'release' })),
        ...plugin.deploymentTasks.map((task) => ({ task, source: plugin.name })),
      ],
      nodes: [
        { name: 'ctl1', roles: ['primary-controller'] },
        { name: 'ctl2', roles: ['controller'] },
        { name: 'cmp1', roles: ['compute'] },
        { name: 'cmp2', roles: ['compute'] },
      ],
      models: { settings: release.settings },
    })
    const mine = plan.tasks.filter((t) => t.source === plugin.name)
    assert.ok(mine.some((t) => t.key === 'cmp2/install-pv-tool'))
    assert.ok(mine.every((t) => t.node !== 'ctl2' || version === '9.0' || version === 'master'))
    const rec = new Recorder()
    const r = await runPlan(plan, rec.runner)
    assert.equal(r.status, 'ready')
    // The plugin's compute tasks run in their declared order on every compute.
    for (const n of ['cmp1', 'cmp2'])
      assert.ok(rec.at(`end ${n}/install-pv-tool`) < rec.at(`start ${n}/compute-post-deployment`))
    // Post-deployment tasks come after the deployment stage (the release's deploy tasks are `skipped` stand-ins).
    const dependsOn = (key: string, target: string): boolean => {
      const idx = new Map(plan.tasks.map((t, i) => [t.key, i]))
      const seen = new Set<number>()
      const stack = [idx.get(key) as number]
      while (stack.length) {
        const i = stack.pop() as number
        if (plan.tasks[i].key === target) return true
        for (const p of [...plan.tasks[i].requires, ...plan.tasks[i].requiresAny.flat()])
          if (!seen.has(p)) {
            seen.add(p)
            stack.push(p)
          }
      }
      return false
    }
    for (const n of ['cmp1', 'cmp2']) {
      assert.ok(dependsOn(`${n}/compute-post-deployment`, '_sync/post_deployment_start'))
      assert.ok(dependsOn(`${n}/compute-post-deployment`, '_sync/deploy_end'))
      assert.ok(rec.at(`end ${n}/upload_configuration`) < rec.at(`start ${n}/compute-post-deployment`))
    }
    assert.ok(dependsOn('ctl1/controller-post-deployment', 'cmp2/upload_configuration'))
    if (version === '9.0' || version === 'master')
      assert.ok(dependsOn('cmp1/compute-pre-test', 'cmp1/network_configuration_end'))
    if (version === '9.0' || version === 'master')
      assert.ok(rec.at('end ctl1/controller-post-deployment') < rec.at('start ctl1/primary-controller-post-deployment'))
  })
}
