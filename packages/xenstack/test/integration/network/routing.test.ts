/**
 * Routing and NAT (xenserver.dom0-routes, xenserver.compute-nat) on a lab whose networks are not /24: the dry run
 * changes nothing; after one run dom0 reaches the controller through the compute VM's NAT with real traffic and the
 * controller reaches dom0's port 80 through the compute VM's management address (noVNC); a second run changes
 * nothing and every rule and route is present once; the generated reroute.sh re-creates a deleted route; the
 * saved rules come back after a flush through the boot-time restore hook.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { withLab } from '../../../src/lab/index.js'
import {
  computeNatFor,
  dom0RoutesFor,
  REROUTE_RULES,
  REROUTE_SCRIPT,
  RESTORE_HOOK,
} from '../../../src/integration/network/index.js'
import { converge } from '../../../src/integration/dom0/converge.js'
import { plan, pendingChanges } from '../../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from '../../node/helpers.js'

const MANAGEMENT = '10.61.0.0/22'
const STORAGE = '10.62.8.0/21'

test('dom0 routes and compute NAT: real traffic both ways, once after two runs, persisted', async (t) => {
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'curl (Debian package curl)', () => hasExecutable('/usr/bin/curl'))) return
  await withLab(
    {
      hosts: 1,
      storageNode: false,
      networks: { management: { cidr: MANAGEMENT }, storage: { cidr: STORAGE } },
    },
    async (lab) => {
      const compute = sshTo(lab, 'compute-1')
      const dom0 = sshTo(lab, 'dom0-1')
      const addresses = lab.host('compute-1').addresses
      const computeMgmt = addresses.management!.split('/')[0]
      const probe = lab.httpProbeUrl('controller-1')
      const curlFromDom0 = () => lab.exec('dom0-1', ['curl', '-sS', '--max-time', '10', probe])
      try {
        // the HIMN in the guest, as xenserver.himn-guest leaves it (DHCP from dom0's dnsmasq)
        const himnEth = await lab.attachGuestInterface('compute-1', 9, '02:16:3e:aa:bb:29', 'xenapi')
        const dhcp = await lab.execOk('compute-1', ['lab-dhcp-client', himnEth, '--apply'])
        const himnIp = dhcp.stdout.trim().split(' ')[0].split('/')[0]
        // dom0's console on 169.254.0.1:80 (noVNC's target): a plain HTTP server serving a marker file
        await onHost(lab, 'dom0-1', 'mkdir -p /root/console && echo console-of-dom0-1 > /root/console/marker')
        lab.startOnHost(
          'dom0-1',
          ['/usr/bin/python3', '-m', 'http.server', '80', '--bind', '169.254.0.1', '--directory', '/root/console'],
          'console-http.log',
        )
        const rulesNow = () => onHost(lab, 'compute-1', 'iptables-save | grep -v "^#" | sed "s/\\[[0-9:]*\\]//"')
        const before = await rulesNow()

        const dom0Set = await dom0RoutesFor(compute, 'compute-1', addresses)
        const natSet = await computeNatFor(compute, 'compute-1', addresses)

        await t.test('dry run plans every change and changes nothing', async () => {
          const changes = [
            ...(await converge(compute, natSet, { dryRun: true })),
            ...(await converge(dom0, dom0Set, { dryRun: true })),
          ]
          const unchanged = changes.filter((c) => c.result !== 'changed' && !c.resource.includes('directory'))
          assert.deepEqual(unchanged, [], 'everything but existing directories is to be changed')
          assert.ok(changes.some((c) => c.resource.includes(`route ${MANAGEMENT} via ${himnIp}`)))
          assert.equal(await rulesNow(), before)
          assert.notEqual((await curlFromDom0()).code, 0, 'no path from dom0 yet')
          assert.equal((await lab.exec('dom0-1', ['test', '-e', REROUTE_SCRIPT])).code, 1)
        })

        await t.test('after one run dom0 reaches the controller through the NAT (source = compute)', async () => {
          await converge(compute, natSet)
          await converge(dom0, dom0Set)
          const ok = await curlFromDom0()
          assert.equal(ok.code, 0, ok.stderr)
          assert.deepEqual(JSON.parse(ok.stdout), { host: 'controller-1', client: computeMgmt })
          const routes = await onHost(lab, 'dom0-1', 'ip -4 route show')
          assert.match(routes, new RegExp(`^${MANAGEMENT.replace(/\./g, '\\.')} via ${himnIp} dev xenapi`, 'm'))
          assert.match(routes, new RegExp(`^${STORAGE.replace(/\./g, '\\.')} via ${himnIp} dev xenapi`, 'm'))
        })

        await t.test("the controller reaches dom0's port 80 through the compute VM's management address", async () => {
          // the console server started above may still be starting under load: wait for it in dom0 first
          const deadline = Date.now() + 60_000
          while (
            (await lab.exec('dom0-1', ['curl', '-sf', '--max-time', '5', 'http://169.254.0.1/marker'])).code !== 0
          ) {
            assert.ok(Date.now() < deadline, "dom0's console server did not start")
            await new Promise((r) => setTimeout(r, 250))
          }
          const r = await lab.exec('controller-1', ['curl', '-sS', '--max-time', '10', `http://${computeMgmt}/marker`])
          assert.equal(r.code, 0, r.stderr)
          assert.equal(r.stdout.trim(), 'console-of-dom0-1')
        })

        await t.test('a second run changes nothing; each rule and route is present once', async () => {
          const again = [...(await converge(compute, natSet)), ...(await converge(dom0, dom0Set))]
          assert.deepEqual(
            again.filter((c) => c.result !== 'unchanged'),
            [],
          )
          const rules = (await rulesNow()).split('\n').filter((l) => l.startsWith('-A'))
          assert.equal(new Set(rules).size, rules.length, `no duplicate rule:\n${rules.join('\n')}`)
          assert.equal(rules.filter((l) => l.includes('MASQUERADE')).length, 2)
          assert.equal(rules.filter((l) => l.includes(`-i ${himnEth} -j ACCEPT`)).length, 1)
          assert.equal(rules.filter((l) => l.includes('--to-destination 169.254.0.1')).length, 1)
          const routes = (await onHost(lab, 'dom0-1', 'ip -4 route show')).split('\n')
          assert.equal(routes.filter((l) => l.startsWith(MANAGEMENT)).length, 1)
          assert.equal(await onHost(lab, 'compute-1', 'sysctl -n net.ipv4.ip_forward'), '1\n')
        })

        await t.test('reroute.sh (run by the udev rule on xenapi) re-creates a deleted route', async () => {
          const rule = await onHost(lab, 'dom0-1', `cat ${REROUTE_RULES}`)
          assert.equal(rule, `SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="${REROUTE_SCRIPT}"\n`)
          await lab.execOk('dom0-1', ['ip', 'route', 'del', MANAGEMENT])
          assert.notEqual((await curlFromDom0()).code, 0, 'the route is gone')
          await lab.execOk('dom0-1', [REROUTE_SCRIPT])
          await lab.execOk('dom0-1', [REROUTE_SCRIPT]) // idempotent: a second run neither fails nor duplicates
          const ok = await curlFromDom0()
          assert.equal(ok.code, 0, ok.stderr)
          assert.deepEqual(pendingChanges(await plan(dom0, dom0Set)), [])
        })

        await t.test('the saved rules come back at boot: flush, then the pre-up restore hook', async () => {
          const saved = await onHost(lab, 'compute-1', 'cat /etc/iptables/rules.v4')
          assert.match(saved, /-A POSTROUTING -o \S+ -j MASQUERADE/)
          await onHost(lab, 'compute-1', 'iptables -F; iptables -t nat -F; rm -f /run/xenstack-iptables-restored')
          assert.ok(pendingChanges(await plan(compute, natSet)).length > 0, 'flushed')
          await lab.execOk('compute-1', [RESTORE_HOOK], { env: { IFACE: 'eth0' } })
          assert.deepEqual(pendingChanges(await plan(compute, natSet)), [])
          const ok = await curlFromDom0()
          assert.equal(ok.code, 0, ok.stderr)
        })
      } finally {
        await compute.close()
        await dom0.close()
      }
    },
  )
})
