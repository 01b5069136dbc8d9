/**
 * The pre-test's XAPI checks against simulated pools described the way the simulator's scenarios model them
 * (product/platform versions, pool_patch records applied on hosts, SR types): each failure names what was found
 * and what is needed.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import type { SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { checkDefaultSr, checkPlatform } from '../../../src/integration/himn/pretest.js'
import { startOneHostPool } from './one-host-pool.js'

const PASSWORD = 'pretest-Secr3t!'
const open: { sim: SimServer; xapi: Xapi }[] = []
after(async () => {
  for (const o of open) {
    await o.xapi.close()
    await o.sim.close()
  }
})

async function pool(p: Record<string, unknown>): Promise<{ xapi: Xapi; host: string }> {
  const sim = await startOneHostPool('pretest', PASSWORD, p)
  const xapi = await connect({ url: sim.url, username: 'root', password: PASSWORD })
  open.push({ sim, xapi })
  const [host] = (await xapi.call('host.get_by_name_label', 'xs1')) as string[]
  return { xapi, host }
}

test('platform 2.1.0 and later pass (7.0.0, 7.1.0, 8.2.1)', async () => {
  for (const version of ['7.0.0', '7.1.0', '8.2.1']) {
    const { xapi, host } = await pool({ version })
    assert.deepEqual(await checkPlatform(xapi, host), [], version)
  }
})

test('6.5.0 without XS65ESP1013 fails with the hotfix named; with it applied on the host it passes', async () => {
  const without = await pool({ version: '6.5.0', patches: [{ name: 'XS65ESP1002', applied: 'all' }] })
  assert.deepEqual(await checkPlatform(without.xapi, without.host), [
    'host xs1: XenServer 6.5.0 (platform 1.9.0) needs hotfix XS65ESP1013, which has not been installed ' +
      '(installed: XS65ESP1002); apply it or upgrade to XenServer 7.0 or later',
  ])
  const withIt = await pool({ version: '6.5.0', patches: [{ name: 'XS65ESP1013', applied: ['xs1'] }] })
  assert.deepEqual(await checkPlatform(withIt.xapi, withIt.host), [])
})

test('an older platform without a hotfix rule fails with the version it needs', async () => {
  const { xapi, host } = await pool({ version: '6.2.0', platform_version: '1.8.0' })
  const [failure] = await checkPlatform(xapi, host)
  assert.match(
    failure,
    /^host xs1: platform version 1\.8\.0 \(XenServer 6\.2\.0\) should be equal to or greater than 2\.1\.0/,
  )
})

test('the default SR must be ext or nfs', async () => {
  const nfs = await pool({ srs: [{ name: 'NFS', type: 'nfs', size: '1TiB', default: true }] })
  assert.deepEqual(await checkDefaultSr(nfs.xapi), [])
  const lvm = await pool({ srs: [{ name: 'Local LVM', type: 'lvm', size: '1TiB', default: true }] })
  const [failure] = await checkDefaultSr(lvm.xapi)
  assert.match(failure, /^the pool's default SR "Local LVM" \([0-9a-f-]{36}\) is of type lvm; it must be ext or nfs/)
})
