/**
 * The private network's dom0 gateway: the generated script for a non-/24 CIDR, and (lab) the whole command against
 * the simulator wired to the lab with `--dom0-ssh` to the lab's dom0 — the gateway installed over verified SSH, real
 * traffic from a host on the private side reaching the management network through dom0 (masqueraded), a second run
 * changing nothing, and the udev script re-creating everything after the bridge is re-created.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { connect } from '@xenstack/xenapi'
import { withLab } from '../../src/lab/index.js'
import { GATEWAY_RULES, GATEWAY_SCRIPT, gatewayRule, gatewayScript, privateGateway } from '../../src/prep/gateway.js'
import { runCli } from '../cli/run.js'
import { labPrerequisite } from '../node/helpers.js'
import { withUnpinnedKnownHosts } from './helpers.js'

const scratch = scratchDirs()

test('gateway script for 10.1.2.7/22: first address of the range, real prefix, masquerade only traffic leaving it', () => {
  const g = privateGateway('10.1.2.7/22', 'xapi3')
  assert.deepEqual(g, { cidr: '10.1.0.0/22', prefix: 22, gateway: '10.1.0.1', bridge: 'xapi3' })
  const s = gatewayScript(g)
  assert.match(s, /^ip addr replace 10\.1\.0\.1\/22 dev xapi3 \|\| rc=1$/m)
  assert.match(s, /^ip route replace 10\.1\.0\.0\/22 dev xapi3 src 10\.1\.0\.1 \|\| rc=1$/m)
  assert.match(
    s,
    /iptables -t nat -C POSTROUTING -s 10\.1\.0\.0\/22 ! -d 10\.1\.0\.0\/22 -j MASQUERADE 2>\/dev\/null \|\| iptables -t nat -A POSTROUTING/,
  )
  assert.doesNotMatch(s, /\/24|255\.255\.255\.0/)
  assert.equal(gatewayRule('xapi3'), `SUBSYSTEM=="net", ACTION=="add", KERNEL=="xapi3", RUN+="${GATEWAY_SCRIPT}"\n`)
  assert.deepEqual(privateGateway('172.16.0.0/12', 'xapi1').gateway, '172.16.0.1')
  assert.throws(() => privateGateway('10.1.0.0/31', 'xapi1'), /--cidr 10\.1\.0\.0\/31: prefix \/31 is out of range/)
  assert.throws(() => privateGateway('10.1.0.300/24', 'xapi1'), /--cidr "10\.1\.0\.300\/24": expected an IPv4 network/)
  assert.throws(() => privateGateway('10.1.0.0/24', 'br;rm'), /bridge "br;rm": expected a Linux interface name/)
})

test('private-lab on the lab: dom0 gateway over verified SSH forwards a private host to the outside; second run unchanged; udev script restores it', async (t) => {
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'curl (Debian package curl)', () => hasExecutable('/usr/bin/curl'))) return
  await withLab({ hosts: 1, storageNode: false, simulator: true }, async (lab) => {
    const s = lab.simulator!
    const dom0 = lab.host('dom0-1')
    const conn = ['--url', s.url, '--username', s.username]
    const ssh = [
      '--dom0-ssh',
      `${dom0.ssh.user}@${dom0.ssh.host}:${dom0.ssh.port}`,
      '--dom0-key',
      dom0.ssh.identityFile,
      '--dom0-known-hosts',
      dom0.ssh.knownHostsFile,
    ]
    const env = { XENSTACK_XAPI_PASSWORD: s.password, XENSTACK_POOL: undefined }
    const args = ['xen', 'private-lab', ...conn, ...ssh, '--cidr', '10.1.0.0/22', '--json']

    // dom0's key not pinned: refused before anything changes (no trust on first use)
    const unpinned = withUnpinnedKnownHosts(args, dom0.ssh.knownHostsFile, scratch('xenstack-prep-kh-'))
    const refused = await runCli(unpinned.args, env)
    assert.equal(refused.code, 4, refused.stderr)
    assert.match(refused.stderr, /--dom0-ssh .*is not pinned; refusing to connect/)
    assert.equal(readFileSync(unpinned.file, 'utf8'), '', 'nothing pinned')
    const probeXapi = await connect({ url: s.url, username: s.username, password: s.password })
    try {
      assert.deepEqual(await probeXapi.call('network.get_by_name_label', 'pxe'), [], 'nothing created')
    } finally {
      await probeXapi.close()
    }

    // 1st run: networks and VMs; the private bridge does not exist in dom0 yet (no VIF on it runs), so only the
    // script and the udev rule are installed
    const first = await runCli(args, env)
    assert.equal(first.code, 0, first.stderr)
    const out1 = JSON.parse(first.stdout)
    const bridge = out1.gateway.bridge as string
    assert.match(bridge, /^xapi\d+$/)
    assert.ok(out1.gateway.changes.some((c: string) => c.includes(GATEWAY_SCRIPT)))
    assert.ok(out1.gateway.changes.some((c: string) => c.includes(GATEWAY_RULES)))
    const rule = (await lab.execOk('dom0-1', ['cat', GATEWAY_RULES])).stdout
    assert.equal(rule, gatewayRule(bridge))

    // XAPI brings the bridge up when a VIF on it is plugged: here by hand, with a host on the private side
    await lab.execOk('dom0-1', ['ip', 'link', 'add', bridge, 'type', 'bridge'])
    await lab.execOk('dom0-1', ['ip', 'link', 'set', bridge, 'up'])
    // dom0's own management address, as on XenServer (the lab leaves xenbr0 unaddressed)
    await lab.execOk('dom0-1', ['ip', 'addr', 'add', '192.168.0.250/24', 'dev', 'xenbr0'])
    const eth = await lab.attachGuestInterface('compute-1', 7, '02:16:3e:aa:bb:07', bridge)
    await lab.execOk('compute-1', ['ip', 'addr', 'add', '10.1.2.5/22', 'dev', eth])
    await lab.execOk('compute-1', ['ip', 'link', 'set', eth, 'up'])
    const controller = lab.host('controller-1').addresses.management!.split('/')[0]
    // only the probe's address through the private side (compute-1's own eth0 is on the management network too)
    await lab.execOk('compute-1', ['ip', 'route', 'add', `${controller}/32`, 'via', '10.1.0.1', 'dev', eth])
    const probe = () =>
      lab.exec('compute-1', ['curl', '-sS', '--max-time', '3', '--interface', eth, lab.httpProbeUrl('controller-1')])
    assert.notEqual((await probe()).code, 0, 'no way out before the gateway')

    // 2nd run: the bridge exists, so the gateway is set up now
    const second = await runCli(args, env)
    assert.equal(second.code, 0, second.stderr)
    const out2 = JSON.parse(second.stdout)
    assert.deepEqual(out2.steps, [], 'XAPI side already converged')
    assert.deepEqual(out2.gateway.changes, [`dom0 ${dom0.ssh.host}: command private gateway 10.1.0.1/22 on ${bridge}`])
    // poll with a deadline: ARP and the first handshake can take a moment on a loaded machine
    let reached = await probe()
    for (const deadline = Date.now() + 30_000; reached.code !== 0 && Date.now() < deadline;) reached = await probe()
    assert.equal(reached.code, 0, reached.stderr)
    assert.equal(JSON.parse(reached.stdout).client, '192.168.0.250', 'masqueraded to dom0 management address')

    // 3rd run and a dry run: nothing to do, one copy of each rule
    for (const extra of [[], ['--dry-run']]) {
      const again = await runCli([...args, ...extra], env)
      assert.equal(again.code, 0, again.stderr)
      const o = JSON.parse(again.stdout)
      assert.equal(o.changed, false, JSON.stringify(o))
    }
    const nat = (await lab.execOk('dom0-1', ['iptables', '-t', 'nat', '-S', 'POSTROUTING'])).stdout
    assert.equal(nat.split('\n').filter((l) => l.includes('10.1.0.0/22')).length, 1, nat)

    // XAPI re-creates the bridge (VM restart): udev runs the script; its address and route are back
    await lab.execOk('dom0-1', ['ip', 'link', 'del', bridge])
    await lab.execOk('dom0-1', ['ip', 'link', 'add', bridge, 'type', 'bridge'])
    await lab.execOk('dom0-1', ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0'])
    assert.notEqual((await lab.exec('dom0-1', [GATEWAY_SCRIPT, 'check'])).code, 0)
    await lab.execOk('dom0-1', [GATEWAY_SCRIPT])
    await lab.execOk('dom0-1', [GATEWAY_SCRIPT])
    await lab.execOk('dom0-1', [GATEWAY_SCRIPT, 'check'])
    const addr = (await lab.execOk('dom0-1', ['ip', '-4', '-o', 'addr', 'show', 'dev', bridge])).stdout
    assert.match(addr, / inet 10\.1\.0\.1\/22 /)
    assert.equal((await lab.execOk('dom0-1', ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim(), '1')
    const fwd = (await lab.execOk('dom0-1', ['iptables', '-S', 'FORWARD'])).stdout
    assert.equal(fwd.split('\n').filter((l) => l.includes('10.1.0.0/22')).length, 2, fwd)

    // the VMs are where XAPI says
    const xapi = await connect({ url: s.url, username: s.username, password: s.password })
    try {
      assert.equal(((await xapi.call('VM.get_by_name_label', 'Compute')) as string[]).length, 1)
    } finally {
      await xapi.close()
    }
  })
})
