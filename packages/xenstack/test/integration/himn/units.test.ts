/**
 * HIMN's pure parts: the persisted configuration for each OS family (ifupdown, netplan, ifcfg), the interface list
 * with MACs, ssh-keyscan parsing and version comparison.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse as parseYaml } from 'yaml'
import {
  configPath,
  renderConfig,
  renderIfcfg,
  renderIfupdown,
  renderNetplan,
} from '../../../src/integration/himn/guest.js'
import { compareVersions } from '../../../src/integration/himn/pretest.js'
import { parseScannedKeys } from '../../../src/integration/himn/ssh-trust.js'
import { parseInterfaces } from '../../../src/node/index.js'

const MAC = '5a:60:12:a9:00:fe'

test('ifupdown: auto, dhcp, and no default route through the HIMN', () => {
  const text = renderIfupdown('eth9')
  assert.deepEqual(
    text.split('\n').filter((l) => l && !l.startsWith('#')),
    ['auto eth9', 'iface eth9 inet dhcp', '    post-up ip route del default dev eth9 2>/dev/null || true'],
  )
  assert.equal(configPath('ifupdown', 'eth9'), '/etc/network/interfaces.d/ifcfg-eth9')
})

test('netplan: matched by MAC, DHCP routes and DNS ignored, valid YAML', () => {
  const doc = parseYaml(renderNetplan('eth9', MAC)) as any
  const eth = doc.network.ethernets.eth9
  assert.equal(doc.network.version, 2)
  assert.equal(eth.match.macaddress, MAC)
  assert.equal(eth['set-name'], 'eth9')
  assert.equal(eth.dhcp4, true)
  assert.deepEqual(eth['dhcp4-overrides'], { 'use-routes': false, 'use-dns': false })
  assert.equal(configPath('netplan', 'eth9'), '/etc/netplan/90-xenstack-himn.yaml')
})

test('ifcfg: DHCP on boot, DEFROUTE=no, PEERDNS=no, pinned to the MAC', () => {
  const kv = Object.fromEntries(
    renderIfcfg('eth9', MAC)
      .split('\n')
      .filter((l) => l.includes('=') && !l.startsWith('#'))
      .map((l) => l.split('=') as [string, string]),
  )
  assert.deepEqual(kv, {
    DEVICE: 'eth9',
    HWADDR: MAC,
    TYPE: 'Ethernet',
    BOOTPROTO: 'dhcp',
    ONBOOT: 'yes',
    DEFROUTE: 'no',
    PEERDNS: 'no',
    IPV6INIT: 'no',
  })
  assert.equal(configPath('ifcfg', 'eth9'), '/etc/sysconfig/network-scripts/ifcfg-eth9')
  assert.equal(renderConfig('ifcfg', 'eth9', MAC), renderIfcfg('eth9', MAC))
})

test('interfaces from ip -o: names, MACs (veth peers too), up state, IPv4 CIDRs', () => {
  const links = [
    '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
    `7: eth9@if12: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT qlen 1000\\    link/ether ${MAC} brd ff:ff:ff:ff:ff:ff link-netns xsl-a-dom0-1`,
    '8: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN\\    link/ether 02:16:3e:c8:01:01 brd ff:ff:ff:ff:ff:ff',
  ].join('\n')
  const addrs = '7: eth9    inet 169.254.81.246/16 brd 169.254.255.255 scope global eth9\\       valid_lft forever'
  assert.deepEqual(parseInterfaces(links, addrs), [
    { name: 'lo', mac: '00:00:00:00:00:00', up: true, ipv4: [] },
    { name: 'eth9', mac: MAC, up: true, ipv4: ['169.254.81.246/16'] },
    { name: 'eth1', mac: '02:16:3e:c8:01:01', up: false, ipv4: [] },
  ])
})

test('ssh-keyscan output: keys of the host only, with SHA256 fingerprints', () => {
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.alloc(36, 7)])
  const text = `# 169.254.0.1:22 SSH-2.0-OpenSSH_9.2\n169.254.0.1 ssh-ed25519 ${blob.toString('base64')}\nother ssh-rsa AAAA\n`
  const keys = parseScannedKeys(text, '169.254.0.1')
  assert.equal(keys.length, 1)
  assert.equal(keys[0].type, 'ssh-ed25519')
  assert.match(keys[0].fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/)
})

test('versions compare numerically', () => {
  assert.equal(compareVersions('2.1.0', '2.1.0'), 0)
  assert.equal(compareVersions('1.9.0', '2.1.0'), -1)
  assert.equal(compareVersions('2.10.0', '2.9.1'), 1)
  assert.equal(compareVersions('3', '2.1.0'), 1)
})
