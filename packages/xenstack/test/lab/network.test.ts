import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { requirePrerequisite, hasExecutable } from '@xenstack/testkit'
import { withLab } from '../../src/lab/index.js'
import { labPrerequisite, sshWithLabConfig } from '../node/helpers.js'

test('dom0 reaches the controller only through routes and the compute VM NAT; the controller sees the compute address', async (t) => {
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'curl (Debian package curl)', () => hasExecutable('/usr/bin/curl'))) return
  const management = '172.20.64.0/20'
  const storage = '172.20.128.0/25'
  await withLab(
    { hosts: 1, networks: { management: { cidr: management }, storage: { cidr: storage } } },
    async (lab) => {
      const url = lab.httpProbeUrl('controller-1')
      const curl = (host: string) => lab.exec(host, ['curl', '-sS', '--max-time', '2', url])
      const computeMgmt = lab.host('compute-1').addresses.management!.split('/')[0]

      // the compute VM reaches the controller directly on the management network
      const direct = await curl('compute-1')
      assert.equal(direct.code, 0, direct.stderr)
      assert.deepEqual(JSON.parse(direct.stdout), { host: 'controller-1', client: computeMgmt })

      // the HIMN: a NIC plugged into dom0's xenapi bridge; the compute VM gets its address by DHCP from dom0
      const mac = '02:16:3e:aa:bb:09'
      const eth = await lab.attachGuestInterface('compute-1', 9, mac, 'xenapi')
      const dhcp = await lab.execOk('compute-1', ['lab-dhcp-client', eth, '--apply'])
      const [himnAddr, server] = dhcp.stdout.trim().split(' ')
      assert.match(himnAddr, /^169\.254\.\d+\.\d+\/16$/)
      assert.equal(server, '169.254.0.1')
      const leases = await lab.execOk('dom0-1', ['cat', '/var/lib/misc/dnsmasq.xenapi.leases'])
      assert.match(leases.stdout, new RegExp(`${mac} ${himnAddr.split('/')[0].replace(/\./g, '\\.')} `))
      assert.match(
        readFileSync(lab.backingPath('dom0-1', '/var/lib/misc/dnsmasq.xenapi.leases'), 'utf8'),
        /02:16:3e:aa:bb:09/,
      )
      const himnIp = himnAddr.split('/')[0]

      // 1. no routes in dom0: unreachable
      const noRoute = await curl('dom0-1')
      assert.notEqual(noRoute.code, 0, `expected no route from dom0, got ${noRoute.stdout}`)

      // the compute VM forwards from the HIMN (the plugin's FORWARD/INPUT rules), but no NAT yet
      await sshWithLabConfig(
        lab,
        'compute-1',
        [
          'sysctl -qw net.ipv4.ip_forward=1',
          `iptables -A FORWARD -i eth0 -o ${eth} -m state --state RELATED,ESTABLISHED -j ACCEPT`,
          `iptables -A FORWARD -i ${eth} -o eth0 -j ACCEPT`,
          `iptables -A INPUT -i ${eth} -j ACCEPT`,
        ].join(' && '),
      )
      // 2. routes for the real CIDRs via the compute VM's HIMN address, over ssh like a deployment would
      await sshWithLabConfig(
        lab,
        'dom0-1',
        `ip route add ${management} via ${himnIp} dev xenapi && ip route add ${storage} via ${himnIp} dev xenapi`,
      )
      const noNat = await curl('dom0-1')
      assert.notEqual(noNat.code, 0, `expected no answer without NAT, got ${noNat.stdout}`)

      // 3. MASQUERADE on the compute VM: reachable, and the controller sees the compute VM's management address
      await sshWithLabConfig(lab, 'compute-1', 'iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE')
      const ok = await curl('dom0-1')
      assert.equal(ok.code, 0, ok.stderr)
      assert.deepEqual(JSON.parse(ok.stdout), { host: 'controller-1', client: computeMgmt })
      const probeLog = readFileSync(`${lab.hostDir('controller-1')}/log/http-probe.log`, 'utf8')
      assert.ok(probeLog.includes(`"client":"${computeMgmt}"`))

      // detaching the HIMN NIC cuts the path again
      await lab.detachGuestInterface('compute-1', 9)
      const gone = await lab.exec('compute-1', ['ip', 'link', 'show', eth])
      assert.notEqual(gone.code, 0)
    },
  )
})
