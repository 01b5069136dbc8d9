// Issue 14 item 5, the failed deploy with a wrong XenServer password (secrets.test.ts runs it on the lab): the error
// a native task reports must say what is wrong — the login was refused — and not the password. Before this test the
// node's VM lookup reported every failure as "no VM <ref> in the pool", so a wrong password read as a wrong VM
// reference. Against the simulator (no lab): the lookup a task makes through a pool connection with a wrong password,
// with the right one and an unknown VM, and with the right one and a known VM.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimServer } from '@xenstack/xapi-sim'
import { Xapi, connect } from '@xenstack/xenapi'
import { resolveVm } from '../../src/integration/context.js'

const PASSWORD = 'Right-Passw0rd-Sweep'
const WRONG = 'Wr0ng-Passw0rd-Sweep'

test('a wrong XenServer password reads as a refused login, not as a missing VM, and shows no password', async (t) => {
  const sim = await startSimServer({ password: PASSWORD, listen: '127.0.0.1:0' })
  t.after(() => sim.close())
  const right = await connect({ url: sim.url, username: 'root', password: PASSWORD })
  t.after(() => right.close())
  const vms = (await right.call('VM.get_all')) as string[]
  assert.ok(vms.length > 0, 'the default scenario has VMs')
  const known = vms[0]

  // as PoolConnections hands it to tasks: not logged in until the first call
  const wrong = new Xapi({ url: sim.url, username: 'root', password: WRONG })
  const refused = await resolveVm(wrong, known, 'node compute-1: data.vm').then(
    () => assert.fail('a wrong password found the VM'),
    (e: Error) => e.message,
  )
  assert.match(refused, /^node compute-1: data\.vm: cannot read VM OpaqueRef:/)
  assert.match(refused, /SESSION_AUTHENTICATION_FAILED/)
  assert.ok(!refused.includes(WRONG) && !refused.includes(PASSWORD), `the error shows a password: ${refused}`)

  const missing = await resolveVm(right, '00000000-0000-0000-0000-000000000000', 'node compute-1: data.vm').then(
    () => assert.fail('an unknown uuid found a VM'),
    (e: Error) => e.message,
  )
  assert.match(missing, /^node compute-1: data\.vm: no VM 00000000-0000-0000-0000-000000000000 in the pool at /)
  const badRef = await resolveVm(right, 'OpaqueRef:00000000-dead-beef-0000-000000000000', 'data.vm').then(
    () => assert.fail('an unknown ref found a VM'),
    (e: Error) => e.message,
  )
  assert.match(badRef, /^data\.vm: no VM OpaqueRef:/)

  const found = await resolveVm(right, known, 'data.vm')
  assert.equal(found.ref, known)
})
