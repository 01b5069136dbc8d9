/**
 * Routing and NAT without a lab: the networks come with their real prefixes (an address without one, or not on the
 * compute VM, is an error naming the node and what was found); reroute.sh carries each CIDR as is; the NAT rules
 * cover every network once and forward noVNC only from the management interface.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  computeNetworks,
  himnOf,
  natRules,
  rerouteRule,
  rerouteScript,
  type Ipv4Interface,
} from '../../../src/integration/network/index.js'

const interfaces: Ipv4Interface[] = [
  { name: 'lo', address: '127.0.0.1/8' },
  { name: 'br-mgmt', address: '10.61.2.7/22' },
  { name: 'br-storage', address: '172.16.9.7/21' },
  { name: 'eth2', address: '169.254.0.2/16' },
]

test('networks: real CIDRs from the record, matched to the interface holding each address', () => {
  const nets = computeNetworks('compute-1', { management: '10.61.2.7/22', storage: '172.16.9.7/21' }, interfaces)
  assert.deepEqual(nets, [
    { name: 'management', address: '10.61.2.7/22', cidr: '10.61.0.0/22', dev: 'br-mgmt' },
    { name: 'storage', address: '172.16.9.7/21', cidr: '172.16.8.0/21', dev: 'br-storage' },
  ])
  assert.throws(
    () => computeNetworks('compute-1', { management: '10.61.2.7' }, interfaces),
    /compute-1: addresses\.management is "10\.61\.2\.7"; expected an address with its prefix/,
  )
  assert.throws(
    () => computeNetworks('compute-1', { management: '10.61.2.8/22' }, interfaces),
    /compute-1: no interface holds the management address 10\.61\.2\.8\/22 \(interfaces: lo 127\.0\.0\.1\/8, br-mgmt/,
  )
  assert.throws(
    () => computeNetworks('compute-1', { management: '10.61.2.7/24' }, interfaces),
    /configured as 10\.61\.2\.7\/24 but br-mgmt has 10\.61\.2\.7\/22/,
  )
  assert.throws(() => computeNetworks('compute-1', {}, interfaces), /no management or storage address/)
  assert.deepEqual(himnOf('compute-1', interfaces), { dev: 'eth2', ip: '169.254.0.2' })
  assert.throws(() => himnOf('compute-1', interfaces.slice(0, 3)), /xenserver\.himn-guest must run first/)
})

test('reroute.sh: one `ip route replace` per CIDR with its own prefix; the udev rule on xenapi', () => {
  const script = rerouteScript({ via: '169.254.0.2', networks: ['10.61.2.7/22', '172.16.8.0/21', '10.61.0.0/22'] })
  const routes = script.split('\n').filter((l) => l.startsWith('ip route'))
  assert.deepEqual(routes, [
    'ip route replace 10.61.0.0/22 via 169.254.0.2 dev xenapi || rc=1',
    'ip route replace 172.16.8.0/21 via 169.254.0.2 dev xenapi || rc=1',
  ])
  assert.ok(script.startsWith('#!/bin/sh\n'))
  assert.doesNotMatch(script, /netmask|\/24/)
  assert.equal(
    rerouteRule(),
    'SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="/etc/udev/scripts/reroute.sh"\n',
  )
  assert.throws(() => rerouteScript({ via: '169.254.0', networks: ['10.0.0.0/8'] }), /not an IPv4 address/)
})

test('NAT rules: per network MASQUERADE and FORWARD both ways, INPUT from the HIMN, noVNC DNAT on management', () => {
  const rules = natRules({
    himnDev: 'eth2',
    networks: [
      { name: 'management', dev: 'br-mgmt' },
      { name: 'storage', dev: 'br-storage' },
    ],
  }).map((r) => `${r.table ?? 'filter'} ${r.chain} ${r.rule.join(' ')}`)
  assert.deepEqual(rules, [
    'nat POSTROUTING -o br-mgmt -j MASQUERADE',
    'filter FORWARD -i br-mgmt -o eth2 -m state --state RELATED,ESTABLISHED -j ACCEPT',
    'filter FORWARD -i eth2 -o br-mgmt -j ACCEPT',
    'nat POSTROUTING -o br-storage -j MASQUERADE',
    'filter FORWARD -i br-storage -o eth2 -m state --state RELATED,ESTABLISHED -j ACCEPT',
    'filter FORWARD -i eth2 -o br-storage -j ACCEPT',
    'filter INPUT -i eth2 -j ACCEPT',
    'nat PREROUTING -i br-mgmt -p tcp --dport 80 -j DNAT --to-destination 169.254.0.1',
    'filter FORWARD -i br-mgmt -o eth2 -p tcp -d 169.254.0.1 --dport 80 -j ACCEPT',
  ])
  const shared = natRules({
    himnDev: 'eth2',
    networks: [
      { name: 'management', dev: 'br-ex' },
      { name: 'storage', dev: 'br-ex' },
    ],
  })
  assert.equal(shared.filter((r) => r.rule.includes('MASQUERADE')).length, 1, 'one interface, one set of rules')
})
