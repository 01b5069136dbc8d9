/**
 * `xenstack himn add|remove|status` against the simulator: hot-plug, the consent the restart cycle needs, halted
 * VMs, idempotence, remove, JSON shapes, an unknown VM, and the password absent from every output.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { SimServer } from '@xenstack/xapi-sim'
import { runCli } from '../../cli/run.js'
import { startOneHostPool } from './one-host-pool.js'

const PASSWORD = 'himn-cli-Secr3t!'
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }
let sim: SimServer
let conn: string[]

before(async () => {
  sim = await startOneHostPool('himn-cli', PASSWORD, {
    version: '7.1.0',
    networks: [{ name: 'Pool-wide network associated with eth0', bridge: 'xenbr0', pifs: 'management' }],
    vms: [
      { name: 'pv-vm', host: 'xs1', power_state: 'Running', pv_drivers: true },
      { name: 'nopv-vm', host: 'xs1', power_state: 'Running', pv_drivers: false },
      { name: 'halted-vm', power_state: 'Halted' },
    ],
  })
  conn = ['--url', sim.url, '--username', 'root']
})
after(() => sim?.close())

const himn = async (args: string[]) => {
  const r = await runCli(['himn', ...args, ...conn], env)
  assert.ok(!r.stdout.includes(PASSWORD) && !r.stderr.includes(PASSWORD), 'the password is never printed')
  return r
}

test('himn status --json: no VIF yet, and what add would need per VM', async () => {
  const r = await himn(['status', 'pv-vm', 'nopv-vm', 'halted-vm', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const rows = JSON.parse(r.stdout) as { vm: { name: string; pvDrivers: boolean }; vif: unknown; status: string }[]
  assert.deepEqual(
    rows.map((s) => [s.vm.name, s.vm.pvDrivers, s.vif, s.status]),
    [
      ['pv-vm', true, null, 'Ready. No reboot required.'],
      ['nopv-vm', false, null, 'Ready. Requires reboot.'],
      ['halted-vm', false, null, 'Ready. No reboot required.'],
    ],
  )
})

test('himn add: hot-plug on a running VM with PV drivers; a second add changes nothing', async () => {
  const r = await himn(['add', 'pv-vm', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const [c] = JSON.parse(r.stdout) as { vm: string; changed: boolean; actions: string[]; vif: any }[]
  assert.equal(c.changed, true)
  assert.equal(c.vif.device, '9')
  assert.equal(c.vif.attached, true)
  assert.ok(c.actions.some((a) => a.startsWith('hot-plugged VIF 9')))
  assert.ok(c.actions.includes(`xenstore_data vm-data/himn_mac=${c.vif.mac}`))
  const again = await himn(['add', 'pv-vm'])
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, new RegExp(`^pv-vm: unchanged \\(VIF 9, ${c.vif.mac}\\)$`, 'm'))
  const status = JSON.parse((await himn(['status', 'pv-vm', '--json'])).stdout)[0]
  assert.equal(status.status, `Exists as VIF '9' with MAC '${c.vif.mac}'.`)
  assert.equal(status.xenstoreMac, c.vif.mac)
})

test('himn add on a running VM without PV drivers: refused without --allow-restart, done with it', async () => {
  const refused = await himn(['add', 'nopv-vm'])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /^xenstack: VM nopv-vm is Running without PV drivers.*Nothing was changed/m)
  assert.match(refused.stderr, /^hint: run again with --allow-restart/m)
  const status = JSON.parse((await himn(['status', 'nopv-vm', '--json'])).stdout)[0]
  assert.equal(status.vif, null)
  const ok = await himn(['add', 'nopv-vm', '--allow-restart', '--json'])
  assert.equal(ok.code, 0, ok.stderr)
  const [c] = JSON.parse(ok.stdout) as { actions: string[]; vif: { attached: boolean } }[]
  assert.match(c.actions.join('\n'), /^shut down[\s\S]*created VIF 9[\s\S]*^started$/m)
  assert.equal(c.vif.attached, true)
})

test('himn add on a halted VM: the VIF waits for the next boot, no restart needed', async () => {
  const r = await himn(['add', 'halted-vm', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const [c] = JSON.parse(r.stdout) as { actions: string[]; vif: { attached: boolean } }[]
  assert.equal(c.vif.attached, false)
  assert.ok(!c.actions.some((a) => /shut down|started|plugged/.test(a)), c.actions.join('; '))
})

test('himn remove undoes add; a second remove changes nothing', async () => {
  const r = await himn(['remove', 'pv-vm', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const [c] = JSON.parse(r.stdout) as { changed: boolean; actions: string[] }[]
  assert.equal(c.changed, true)
  assert.ok(c.actions.some((a) => a.startsWith('hot-unplugged VIF 9')))
  assert.ok(c.actions.includes('removed xenstore_data vm-data/himn_mac'))
  const status = JSON.parse((await himn(['status', 'pv-vm', '--json'])).stdout)[0]
  assert.equal(status.vif, null)
  assert.equal(status.xenstoreMac, null)
  const again = JSON.parse((await himn(['remove', 'pv-vm', '--json'])).stdout)[0]
  assert.equal(again.changed, false)
})

test('himn status of an unknown VM: exit 3 with the pool named', async () => {
  const r = await himn(['status', 'no-such-vm'])
  assert.equal(r.code, 3)
  assert.match(r.stderr, /^xenstack: no VM "no-such-vm" in the pool at http:\/\/127\.0\.0\.1:\d+/m)
})

test('a pool without a HIMN: one line naming the flag that was looked for, exit 1', async () => {
  const db = sim.pools[0].sim.db
  const himnNet = db.find(
    'network',
    (n) => (n.other_config as Record<string, string>).is_host_internal_management_network === 'true',
  )!
  const other = { ...(db.get(himnNet)!.other_config as Record<string, string>) }
  db.update(himnNet, { other_config: { ...other, is_host_internal_management_network: 'false' } })
  try {
    const r = await himn(['status', 'halted-vm'])
    assert.equal(r.code, 1)
    assert.match(
      r.stderr,
      /^xenstack: the pool at http:\/\/127\.0\.0\.1:\d+ has no network with other_config:is_host_internal_management_network=true/m,
    )
    assert.doesNotMatch(r.stderr, /unexpected error|\n\s+at /)
  } finally {
    db.update(himnNet, { other_config: other })
  }
})
