/** The example scenarios shipped in packages/xapi-sim/scenarios/ validate, start and mean what they say. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { loadScenarioFile } from '../src/scenario.js'
import { startSimServer } from '../src/server.js'
import { packageRoot } from './helpers.js'

const file = (name: string) => join(packageRoot(), 'scenarios', name)

test('xenserver-releases.yaml: one pool per release, each with its versions and the plugin version check', async () => {
  const s = await startSimServer({ scenario: file('xenserver-releases.yaml'), password: 'pw' })
  try {
    const want: Record<string, [string, string]> = {
      xs65: ['6.5.0', '1.9.0'],
      xs70: ['7.0.0', '2.1.0'],
      xs71: ['7.1.0', '2.2.0'],
      xs82: ['8.2.1', '3.2.1'],
    }
    assert.deepEqual(
      s.pools.map((p) => p.name),
      Object.keys(want),
    )
    for (const p of s.pools) {
      const sess = await p.sim.callOrThrow('session.login_with_password', 'root', 'pw')
      const master = p.sim.master
      const sv = (await p.sim.callOrThrow('host.get_software_version', sess, master)) as Record<string, string>
      assert.deepEqual([sv.product_version, sv.platform_version], want[p.name], p.name)
      const pickled = await p.sim.callOrThrow(
        'host.call_plugin',
        sess,
        master,
        'dom0_plugin_version.py',
        'get_version',
        {
          params: '(dp0\nVargs\np1\n(tp2\nsVkwargs\np3\n(dp4\ns.',
        },
      )
      assert.match(String(pickled), /2\.1/, `${p.name}: dom0_plugin_version.py answers 2.1`)
    }
    const xs65 = s.pools[0].sim
    const sess = await xs65.callOrThrow('session.login_with_password', 'root', 'pw')
    const patches = (await xs65.callOrThrow('pool_patch.get_all_records', sess)) as Record<string, any>
    const esp = Object.values(patches).find((x) => x.name_label === 'XS65ESP1013')
    assert.ok(esp, 'XS65ESP1013 is introduced')
    assert.deepEqual(esp.host_patches, [], 'and applied nowhere')
  } finally {
    await s.close()
  }
})

test('unreliable.yaml: validates with its faults', async () => {
  const sc = await loadScenarioFile(file('unreliable.yaml'))
  assert.equal(sc.seed, 42)
  assert.deepEqual(
    sc.faults.map((f) => f.kind),
    ['SESSION_INVALID', 'HOST_IS_SLAVE', 'reset', 'latency', 'http500'],
  )
  const s = await startSimServer({ scenario: sc, password: 'pw' })
  try {
    const r = await fetch(`${s.url}/_sim/faults`)
    assert.equal(((await r.json()) as { rules: unknown[] }).rules.length, 5)
  } finally {
    await s.close()
  }
})
