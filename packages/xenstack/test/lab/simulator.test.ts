import { test } from 'node:test'
import assert from 'node:assert/strict'
import { requirePrerequisite, hasExecutable } from '@xenstack/testkit'
import { existsSync } from 'node:fs'
import { withLab } from '../../src/lab/index.js'
import { newVifRecord } from '../../src/integration/vif-record.js'
import { labPrerequisite, sshWithLabConfig } from '../node/helpers.js'

/** A raw JSON-RPC client (fetch), independent of xenstack's own XenAPI client. */
function jsonRpc(url: string) {
  let id = 0
  return async (method: string, ...params: unknown[]): Promise<any> => {
    const res = await fetch(`${url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', method, params, id: ++id }),
    })
    const body = (await res.json()) as { result?: unknown; error?: { message?: string; data?: unknown } }
    if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`)
    return body.result
  }
}

const PLUGIN = `#!/usr/bin/env python3
import XenAPIPlugin

def echo(session, args):
    return "echo:" + args.get("x", "") + ":" + open("/etc/hostname").read().strip()

if __name__ == "__main__":
    XenAPIPlugin.dispatch({"echo": echo})
`

test('the lab is one with the simulator: VIF hotplug on the HIMN, DHCP, plugins from dom0, xenstore_data', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab({ hosts: 2, controllers: 1, simulator: true }, async (lab) => {
    const sim = lab.simulator!
    const call = jsonRpc(sim.url)
    const session = await call('session.login_with_password', sim.username, sim.password, '1.0', 'lab-test')

    // hosts and compute VMs correspond to the lab's; the VIF MACs are the lab interfaces' MACs
    const hosts = (await call('host.get_all_records', session)) as Record<string, { name_label: string }>
    assert.deepEqual(
      Object.values(hosts)
        .map((h) => h.name_label)
        .sort(),
      ['xs1', 'xs2'],
    )
    const [vm] = await call('VM.get_by_name_label', session, 'compute-1')
    const vifs = (await call('VM.get_VIFs', session, vm)) as string[]
    for (const vif of vifs) {
      const rec = await call('VIF.get_record', session, vif)
      const link = await lab.execOk('compute-1', ['cat', `/sys/class/net/eth${rec.device}/address`])
      assert.equal(link.stdout.trim(), rec.MAC.toLowerCase(), `VIF ${rec.device} MAC`)
    }

    // dom0 knows which XenServer host it is
    const inventory = await lab.execOk('dom0-2', ['cat', '/etc/xensource-inventory'])
    const xs2uuid = await call(
      'host.get_uuid',
      session,
      Object.entries(hosts).find(([, h]) => h.name_label === 'xs2')![0],
    )
    assert.match(inventory.stdout, new RegExp(`^INSTALLATION_UUID='${xs2uuid}'$`, 'm'))

    // a VIF on the HIMN, created and plugged through XAPI, appears in the compute host
    const networks = (await call('network.get_all_records', session)) as Record<
      string,
      { other_config: Record<string, string> }
    >
    const himn = Object.entries(networks).find(
      ([, n]) => n.other_config.is_host_internal_management_network === 'true',
    )![0]
    const vif = await call('VIF.create', session, newVifRecord(vm, himn, '9'))
    const mac = String(await call('VIF.get_MAC', session, vif)).toLowerCase()
    assert.equal((await lab.exec('compute-1', ['ip', 'link', 'show', 'eth9'])).code, 1, 'not there before plug')
    await call('VIF.plug', session, vif)
    const nic = await lab.execOk('compute-1', ['cat', '/sys/class/net/eth9/address'])
    assert.equal(nic.stdout.trim(), mac)
    assert.equal((await lab.exec('compute-2', ['ip', 'link', 'show', 'eth9'])).code, 1, 'only in its own VM')
    // … and gets its HIMN address by DHCP from dom0
    const dhcp = await lab.execOk('compute-1', ['lab-dhcp-client', 'eth9', '--apply'])
    assert.match(dhcp.stdout, /^169\.254\.\d+\.\d+\/16 169\.254\.0\.1 /)
    const fromDom0 = await lab.exec(
      'dom0-1',
      ['curl', '-sS', '--max-time', '2', 'telnet://' + dhcp.stdout.split('/')[0] + ':22'],
      {
        stdin: '',
      },
    )
    assert.ok(
      fromDom0.stdout.startsWith('SSH-2.0'),
      `dom0 reaches the compute VM's sshd over the HIMN: ${fromDom0.stderr}`,
    )

    // the guest's own DHCP client (ISC dhclient, as a Debian/Ubuntu compute VM has) gets a HIMN lease too
    if (
      requirePrerequisite(t, 'dhclient (Debian package isc-dhcp-client)', () => hasExecutable('/usr/sbin/dhclient'))
    ) {
      const vif2 = await call('VIF.create', session, {
        device: '9',
        network: himn,
        VM: (await call('VM.get_by_name_label', session, 'compute-2'))[0],
        MAC: '',
        MTU: 1500,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      })
      await call('VIF.plug', session, vif2)
      const dh = await lab.exec('compute-2', ['timeout', '20', 'dhclient', '-1', 'eth9'], { timeoutMs: 30000 })
      assert.equal(dh.code, 0, dh.stderr)
      const a = await lab.execOk('compute-2', ['ip', '-o', '-4', 'addr', 'show', 'eth9'])
      assert.match(a.stdout, /inet 169\.254\.\d+\.\d+\/16 /)
      assert.ok(
        existsSync(lab.backingPath('compute-2', '/var/lib/dhcp/dhclient.leases')),
        'lease kept in the guest /var',
      )
      await call('VIF.unplug', session, vif2)
    }

    // XAPI is reachable from the compute VM over the HIMN, like XenServer's 169.254.0.1
    const overHimn = await lab.execOk('compute-1', [
      'curl',
      '-sS',
      '--max-time',
      '5',
      '-H',
      'content-type: application/json',
      '-d',
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.login_with_password',
        params: [sim.username, sim.password, '1.0', 'from-compute'],
      }),
      'http://169.254.0.1/jsonrpc',
    ])
    assert.match(JSON.parse(overHimn.stdout).result, /^OpaqueRef:/)

    // xenstore_data set through XAPI is readable in the guest, as the HIMN tool's vm-data/himn_mac
    await call('VM.add_to_xenstore_data', session, vm, 'vm-data/himn_mac', mac)
    await sim.settled()
    assert.equal((await sshWithLabConfig(lab, 'compute-1', 'xenstore-read vm-data/himn_mac')).trim(), mac)
    await lab.execOk('compute-1', ['xenstore-write', 'data/updated', '1'])
    assert.equal((await lab.execOk('compute-1', ['xenstore-read', 'data/updated'])).stdout.trim(), '1')
    // what the guest agent publishes reaches XAPI's guest metrics, as XenServer reflects it
    await lab.execOk('compute-1', ['xenstore-write', 'attr/vif/0/ipv4/0', '192.168.0.3'])
    const gm = await call('VM.get_guest_metrics', session, vm)
    assert.equal((await call('VM_guest_metrics.get_networks', session, gm))['0/ip'], '192.168.0.3')
    assert.equal((await call('VM_guest_metrics.get_other', session, gm)).updated, '1')
    await lab.execOk('compute-1', ['xenstore-rm', 'data/updated'])
    assert.equal((await call('VM_guest_metrics.get_other', session, gm)).updated, undefined)

    // unplug and destroy detach it
    await call('VIF.unplug', session, vif)
    assert.equal((await lab.exec('compute-1', ['ip', 'link', 'show', 'eth9'])).code, 1, 'gone after unplug')
    await call('VIF.plug', session, vif)
    assert.equal((await lab.exec('compute-1', ['ip', 'link', 'show', 'eth9'])).code, 0, 'back after plug')
    await call('VIF.unplug', session, vif)
    await call('VIF.destroy', session, vif)
    assert.equal((await lab.exec('compute-1', ['ip', 'link', 'show', 'eth9'])).code, 1, 'gone after destroy')
    assert.deepEqual(sim.errors, [])

    // a plugin written into dom0's /etc/xapi.d/plugins over ssh is callable through host.call_plugin
    const xs2 = Object.entries(hosts).find(([, h]) => h.name_label === 'xs2')![0]
    await sshWithLabConfig(
      lab,
      'dom0-2',
      `cat > /etc/xapi.d/plugins/lab_echo <<'EOF'\n${PLUGIN}EOF\nchmod 755 /etc/xapi.d/plugins/lab_echo`,
    )
    const out = await call('host.call_plugin', session, xs2, 'lab_echo', 'echo', { x: 'hello' })
    assert.equal(out, 'echo:hello:dom0-2', 'the plugin ran inside dom0-2 (its /etc/hostname)')
    // a failing plugin maps to XENAPI_PLUGIN_FAILURE with its output
    await sshWithLabConfig(
      lab,
      'dom0-2',
      `printf '#!/bin/sh\\necho broken >&2\\nexit 3\\n' > /etc/xapi.d/plugins/bad && chmod 755 /etc/xapi.d/plugins/bad`,
    )
    await assert.rejects(
      call('host.call_plugin', session, xs2, 'bad', 'x', {}),
      /XENAPI_PLUGIN_FAILURE.*non-zero exit.*broken/,
    )
    // dom0-1 does not have it
    const xs1 = Object.entries(hosts).find(([, h]) => h.name_label === 'xs1')![0]
    await assert.rejects(call('host.call_plugin', session, xs1, 'lab_echo', 'echo', {}), /XENAPI_MISSING_PLUGIN/)
  })
})
