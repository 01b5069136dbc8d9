/**
 * The resources deliver real effects: the compute VM as NAT gateway for dom0 (the XenServer plugin's
 * forward_from_himn and route_to_compute steps) built only from node-access resources over SSH, proven with real
 * traffic from dom0 to the controller; a second apply changes nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { withLab } from '../../src/lab/index.js'
import {
  Route,
  Sysctl,
  apply,
  firewall,
  gatherFacts,
  pendingChanges,
  plan,
  type Resource,
} from '../../src/node/index.js'
import { labPrerequisite, sshTo } from './helpers.js'

test('compute NAT and dom0 routes from resources: dom0 reaches the controller; second apply unchanged', async (t) => {
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'curl (Debian package curl)', () => hasExecutable('/usr/bin/curl'))) return
  const management = '10.61.0.0/22' // not a /24: the route must carry the real prefix
  await withLab({ hosts: 1, storageNode: false, networks: { management: { cidr: management } } }, async (lab) => {
    const url = lab.httpProbeUrl('controller-1')
    const curl = () => lab.exec('dom0-1', ['curl', '-sS', '--max-time', '2', url])
    const computeMgmt = lab.host('compute-1').addresses.management!
    const himnEth = await lab.attachGuestInterface('compute-1', 9, '02:16:3e:aa:bb:19', 'xenapi')
    const dhcp = await lab.execOk('compute-1', ['lab-dhcp-client', himnEth, '--apply'])
    const himnIp = dhcp.stdout.trim().split(' ')[0].split('/')[0]
    const compute = sshTo(lab, 'compute-1')
    const dom0 = sshTo(lab, 'dom0-1')
    try {
      const mgmtEth = (await gatherFacts(compute)).interfaces.find((i) => i.ipv4.includes(computeMgmt))?.name
      assert.ok(mgmtEth, `an interface with ${computeMgmt}`)
      const computeSet: Resource[] = [
        new Sysctl({ key: 'net.ipv4.ip_forward', value: 1 }),
        ...firewall({
          rules: [
            {
              chain: 'FORWARD',
              rule: ['-i', mgmtEth, '-o', himnEth, '-m', 'state', '--state', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
            },
            { chain: 'FORWARD', rule: ['-i', himnEth, '-o', mgmtEth, '-j', 'ACCEPT'] },
            { chain: 'INPUT', rule: ['-i', himnEth, '-j', 'ACCEPT'] },
          ],
          persist: false,
        }),
        ...firewall({ table: 'nat', rules: [{ chain: 'POSTROUTING', rule: ['-o', mgmtEth, '-j', 'MASQUERADE'] }] }),
      ]
      const dom0Set: Resource[] = [new Route({ to: management, via: himnIp, dev: 'xenapi' })]

      assert.notEqual((await curl()).code, 0, 'no path before')
      assert.ok(pendingChanges(await plan(compute, computeSet)).length === computeSet.length)
      assert.ok(pendingChanges(await plan(dom0, dom0Set)).length === 1)
      assert.notEqual((await curl()).code, 0, 'plan changed nothing')

      const a = await apply(compute, computeSet)
      const b = await apply(dom0, dom0Set)
      assert.ok(a.ok && b.ok, JSON.stringify([a.entries, b.entries]))
      const ok = await curl()
      assert.equal(ok.code, 0, ok.stderr)
      assert.deepEqual(JSON.parse(ok.stdout), { host: 'controller-1', client: computeMgmt.split('/')[0] })

      const again = [await apply(compute, computeSet), await apply(dom0, dom0Set)]
      assert.deepEqual(
        again.flatMap((r) => r.entries.map((e) => e.status)),
        [...computeSet, ...dom0Set].map(() => 'unchanged'),
      )
      const rules = await lab.execOk('compute-1', ['sh', '-c', `iptables -S; iptables -t nat -S`])
      assert.equal(rules.stdout.split('\n').filter((l) => l.includes(himnEth) || l.includes('MASQUERADE')).length, 4)
    } finally {
      await compute.close()
      await dom0.close()
      await lab.detachGuestInterface('compute-1', 9)
    }
  })
})
