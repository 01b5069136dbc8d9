/**
 * HimnAttacher's edges against the simulator: the HIMN is found by its other_config flag even when renamed (and a
 * look-alike network named like it is ignored), device 9 taken → the first free device, and the wait for a power
 * state is bounded (a VM that never halts fails with a deadline instead of the HIMN tool's endless poll).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { HimnAttacher } from '../../../src/integration/himn/attach.js'
import { startOneHostPool } from './one-host-pool.js'

const PASSWORD = 'himn-attach-Secr3t!'
let sim: SimServer
let xapi: Xapi

before(async () => {
  sim = await startOneHostPool('himn-attach', PASSWORD, {
    vms: [
      { name: 'renamed-himn', host: 'xs1', power_state: 'Running', pv_drivers: true },
      { name: 'stuck', host: 'xs1', power_state: 'Running', pv_drivers: false },
      { name: 'unlucky', host: 'xs1', power_state: 'Running', pv_drivers: false },
    ],
  })
  xapi = await connect({ url: sim.url, username: 'root', password: PASSWORD })
})
after(async () => {
  await xapi?.close()
  await sim?.close()
})

const vm = async (name: string) => ((await xapi.call('VM.get_by_name_label', name)) as string[])[0]

test('the HIMN is the flagged network whatever its name; device 9 taken → the first free device', async () => {
  const db = sim.pools[0].sim.db
  const himn = db.find(
    'network',
    (n) => (n.other_config as Record<string, string>).is_host_internal_management_network === 'true',
  )!
  db.update(himn, { name_label: 'Réseau de gestion interne' })
  // a look-alike carrying the old name but not the flag must not be chosen
  const fake = (await xapi.call('network.create', {
    name_label: 'Host internal management network',
    name_description: '',
    MTU: 1500,
    other_config: {},
    bridge: 'xapi9',
  })) as string
  const ref = await vm('renamed-himn')
  await xapi.call('VIF.create', {
    VM: ref,
    network: fake,
    device: '9',
    MAC: '',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  const attacher = new HimnAttacher(xapi)
  assert.equal((await attacher.network()).ref, himn)
  const r = await attacher.add(ref)
  assert.equal(r.vif?.device, '1', 'device 0 is the VM’s own NIC, 9 is taken')
  assert.equal(await xapi.call('VIF.get_network', r.vif!.ref), himn)
})

test('a VM that never halts: the shutdown wait ends at its deadline with what to check', async () => {
  const restore = sim.pools[0].sim.messages.override('VM.clean_shutdown', async () => undefined)
  try {
    const attacher = new HimnAttacher(xapi, { powerTimeoutMs: 1_500, pollMs: 100 })
    const started = Date.now()
    await assert.rejects(attacher.add(await vm('stuck'), { allowRestart: true }), (e: Error) => {
      assert.match(e.message, /^VM stuck is still Running 2 s after asking for Halted/)
      return true
    })
    assert.ok(Date.now() - started < 60_000, 'a hang guard only: the deadline above ended the wait')
  } finally {
    restore()
  }
})

test('a failure between shutdown and start still starts the VM again, and says so', async () => {
  const msgs = sim.pools[0].sim.messages
  const restore = msgs.override('VIF.create', async () => {
    throw new Error('simulated VIF.create failure')
  })
  const ref = await vm('unlucky')
  try {
    await assert.rejects(new HimnAttacher(xapi).add(ref, { allowRestart: true }), (e: Error) => {
      assert.match(
        e.message,
        /^VM unlucky: .*simulated VIF\.create failure.* \(after its clean shutdown; it was started again\)$/,
      )
      return true
    })
  } finally {
    restore()
  }
  assert.equal(await xapi.call('VM.get_power_state', ref), 'Running')
})
