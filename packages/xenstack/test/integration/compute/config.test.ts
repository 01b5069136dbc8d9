/**
 * Release-aware rendering of the compute configuration (config-table.ts): the exact keys of nova-compute.conf,
 * the OVS agent's file and rootwrap.conf for Juno, Mitaka and Ussuri (and the releases where keys moved), the
 * stale spellings removed, the values a release cannot take refused, and the release parsed from Fuel's spellings,
 * the inputs read from a task context, and the image-cache cleanup script compiled by python3 (skipped without it).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { Secret } from '../../../src/node/index.js'
import { filePath, renderFile, servicesOf } from '../../../src/integration/compute/config-table.js'
import {
  novaComputeInputsOf,
  novaComputeValues,
  type NovaComputeInputs,
} from '../../../src/integration/compute/nova.js'
import { neutronAgentInputsOf, neutronAgentValues } from '../../../src/integration/compute/neutron.js'
import type { NativeTaskContext } from '../../../src/engine/tasks.js'
import { DESTROY_CACHED_IMAGES_SCRIPT } from '../../../src/integration/compute/destroy-cached-images.js'

import {
  openstackReleaseOf,
  OpenStackRelease,
  parseOpenStackRelease,
} from '../../../src/integration/compute/release.js'
import { blacklistXvd } from '../../../src/integration/compute/extras.js'
import { consoleServices, memcachedServersIn, vncCacheKeys } from '../../../src/integration/controller/vnc-cache.js'

const tmp = scratchDirs()
const password = new Secret('Xs-Config-Secret-1')
const nova: NovaComputeInputs = {
  username: 'root',
  password,
  publicHost: '172.16.0.3',
  tls: false,
  managementAddress: '192.168.0.5',
  imageHandler: 'direct_vhd',
  srMatchingFilter: 'default-sr:true',
}
const release = (s: ConstructorParameters<typeof OpenStackRelease>[0]) => new OpenStackRelease(s)
/** `section/key=value` for written keys, `-section/key` for removed ones (a Secret prints as ***). */
const lines = (keys: ReturnType<typeof renderFile>) =>
  keys.map((k) => (k.value === null ? `-${k.section}/${k.key}` : `${k.section}/${k.key}=${String(k.value)}`))

test('nova-compute.conf for Juno: VNC keys in [DEFAULT], force_config_drive=always, class path image handler', () => {
  assert.equal(filePath('nova-compute', release('juno')), '/etc/nova/nova-compute.conf')
  assert.deepEqual(lines(renderFile('nova-compute', release('juno'), novaComputeValues(nova))), [
    'DEFAULT/compute_driver=xenapi.XenAPIDriver',
    'DEFAULT/force_config_drive=always',
    'DEFAULT/vnc_enabled=True',
    'DEFAULT/novncproxy_base_url=http://172.16.0.3:6080/vnc_auto.html',
    'DEFAULT/vncserver_proxyclient_address=192.168.0.5',
    'xenserver/connection_url=http://169.254.0.1',
    'xenserver/connection_username=root',
    'xenserver/connection_password=***',
    'xenserver/vif_driver=nova.virt.xenapi.vif.XenAPIOpenVswitchDriver',
    'xenserver/ovs_integration_bridge=br-int',
    'xenserver/cache_images=all',
    'xenserver/image_upload_handler=nova.virt.xenapi.image.glance.GlanceStore',
    'xenserver/sr_matching_filter=default-sr:true',
    'xenserver/agent_version_timeout=300',
    '-vnc/enabled',
    '-vnc/novncproxy_base_url',
    '-vnc/vncserver_proxyclient_address',
    '-vnc/server_proxyclient_address',
    '-xenserver/image_handler',
  ])
})

test('nova-compute.conf for Mitaka: [vnc] group, boolean config drive, vif_driver still there', () => {
  assert.deepEqual(lines(renderFile('nova-compute', release('mitaka'), novaComputeValues({ ...nova, tls: true }))), [
    'DEFAULT/compute_driver=xenapi.XenAPIDriver',
    'DEFAULT/force_config_drive=True',
    'vnc/enabled=True',
    'vnc/novncproxy_base_url=https://172.16.0.3:6080/vnc_auto.html',
    'vnc/vncserver_proxyclient_address=192.168.0.5',
    'xenserver/connection_url=http://169.254.0.1',
    'xenserver/connection_username=root',
    'xenserver/connection_password=***',
    'xenserver/vif_driver=nova.virt.xenapi.vif.XenAPIOpenVswitchDriver',
    'xenserver/ovs_integration_bridge=br-int',
    'xenserver/cache_images=all',
    'xenserver/image_upload_handler=nova.virt.xenapi.image.glance.GlanceStore',
    'xenserver/sr_matching_filter=default-sr:true',
    'xenserver/agent_version_timeout=300',
    '-DEFAULT/vnc_enabled',
    '-DEFAULT/novncproxy_base_url',
    '-DEFAULT/vncserver_proxyclient_address',
    '-vnc/server_proxyclient_address',
    '-xenserver/image_handler',
  ])
})

test('nova-compute.conf for Ussuri: server_proxyclient_address, image_handler by name, no vif_driver', () => {
  const keys = renderFile(
    'nova-compute',
    release('ussuri'),
    novaComputeValues({
      ...nova,
      imageHandler: 'vdi_remote_stream',
      srMatchingFilter: 'other-config:i18n-key=local-storage',
    }),
  )
  assert.deepEqual(lines(keys), [
    'DEFAULT/compute_driver=xenapi.XenAPIDriver',
    'DEFAULT/force_config_drive=True',
    'vnc/enabled=True',
    'vnc/novncproxy_base_url=http://172.16.0.3:6080/vnc_auto.html',
    'vnc/server_proxyclient_address=192.168.0.5',
    'xenserver/connection_url=http://169.254.0.1',
    'xenserver/connection_username=root',
    'xenserver/connection_password=***',
    'xenserver/ovs_integration_bridge=br-int',
    'xenserver/cache_images=all',
    'xenserver/image_handler=vdi_remote_stream',
    'xenserver/sr_matching_filter=other-config:i18n-key=local-storage',
    'xenserver/agent_version_timeout=300',
    '-DEFAULT/vnc_enabled',
    '-DEFAULT/novncproxy_base_url',
    '-DEFAULT/vncserver_proxyclient_address',
    '-vnc/vncserver_proxyclient_address',
    '-xenserver/image_upload_handler',
  ])
  // The password is the Secret itself (revealed only when the ini file is written).
  assert.equal(keys.find((k) => k.key === 'connection_password')!.value, password)
  assert.deepEqual(servicesOf('nova-compute', release('ussuri')), ['nova-compute'])
})

test('the releases where keys moved: Ocata keeps vncserver_proxyclient_address, Pike renames it, Queens names handlers', () => {
  const key = (s: Parameters<typeof release>[0], name: string) =>
    lines(renderFile('nova-compute', release(s), novaComputeValues(nova))).find((l) => l.split('=')[0].endsWith(name))
  assert.equal(key('ocata', 'proxyclient_address'), 'vnc/vncserver_proxyclient_address=192.168.0.5')
  assert.equal(key('pike', 'proxyclient_address'), 'vnc/server_proxyclient_address=192.168.0.5')
  assert.equal(key('pike', 'handler'), 'xenserver/image_upload_handler=nova.virt.xenapi.image.glance.GlanceStore')
  assert.equal(key('queens', 'handler'), 'xenserver/image_handler=direct_vhd')
  assert.equal(key('queens', 'vif_driver'), 'xenserver/vif_driver=nova.virt.xenapi.vif.XenAPIOpenVswitchDriver')
  assert.equal(key('rocky', 'vif_driver'), undefined)
  assert.equal(key('kilo', 'force_config_drive'), 'DEFAULT/force_config_drive=always')
  assert.equal(key('liberty', 'force_config_drive'), 'DEFAULT/force_config_drive=True')
  assert.equal(
    lines(
      renderFile('nova-compute', release('pike'), novaComputeValues({ ...nova, imageHandler: 'vdi_local_dev' })),
    ).find((l) => l.includes('handler=')),
    'xenserver/image_upload_handler=nova.virt.xenapi.image.vdi_through_dev.VdiThroughDevStore',
  )
  assert.throws(
    () =>
      renderFile('nova-compute', release('pike'), novaComputeValues({ ...nova, imageHandler: 'vdi_remote_stream' })),
    /image_handler "vdi_remote_stream" is not available in OpenStack pike \(xenserver\/image_upload_handler accepts direct_vhd, vdi_local_dev/,
  )
})

const agent = {
  username: 'root',
  password,
  managementAddress: '192.168.0.5',
}

test('OVS agent for Juno (ml2_conf.ini, rootwrap through Dom0) with VLAN', () => {
  const r = release('juno')
  assert.equal(filePath('ovs-agent', r), '/etc/neutron/plugins/ml2/ml2_conf.ini')
  assert.deepEqual(servicesOf('ovs-agent', r), ['neutron-plugin-openvswitch-agent'])
  const values = neutronAgentValues({ ...agent, segmentation: 'vlan', bridgeMappings: 'physnet2:xapi1' })
  assert.deepEqual(lines(renderFile('ovs-agent', r, values)), [
    'agent/root_helper=neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf',
    'agent/minimize_polling=False',
    'ovs/integration_bridge=br-int',
    'ovs/bridge_mappings=physnet2:xapi1',
    'securitygroup/firewall_driver=neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver',
    '-agent/tunnel_types',
    '-ovs/local_ip',
  ])
})

test('OVS agent for Mitaka (openvswitch_agent.ini, native OVSDB to Dom0) with VLAN and with VxLAN', () => {
  const r = release('mitaka')
  assert.equal(filePath('ovs-agent', r), '/etc/neutron/plugins/ml2/openvswitch_agent.ini')
  assert.deepEqual(servicesOf('ovs-agent', r), ['neutron-openvswitch-agent'])
  assert.deepEqual(
    lines(
      renderFile(
        'ovs-agent',
        r,
        neutronAgentValues({ ...agent, segmentation: 'vlan', bridgeMappings: 'physnet2:xapi1' }),
      ),
    ),
    [
      'agent/root_helper=neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf',
      'agent/root_helper_daemon=',
      'agent/minimize_polling=False',
      'ovs/integration_bridge=br-int',
      'ovs/bridge_mappings=physnet2:xapi1',
      'ovs/of_listen_address=192.168.0.5',
      'ovs/ovsdb_connection=tcp:169.254.0.1:6640',
      'securitygroup/firewall_driver=neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver',
      '-agent/tunnel_types',
      '-ovs/local_ip',
    ],
  )
  assert.deepEqual(
    lines(renderFile('ovs-agent', r, neutronAgentValues({ ...agent, segmentation: 'tun', localIp: '192.168.2.5' }))),
    [
      'agent/root_helper=neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf',
      'agent/root_helper_daemon=',
      'agent/minimize_polling=False',
      'agent/tunnel_types=vxlan',
      'ovs/integration_bridge=br-int',
      'ovs/local_ip=192.168.2.5',
      'ovs/of_listen_address=192.168.0.5',
      'ovs/ovsdb_connection=tcp:169.254.0.1:6640',
      'securitygroup/firewall_driver=neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver',
      '-ovs/bridge_mappings',
    ],
  )
})

test('OVS agent for Ussuri: the XenAPI root helper daemon with its [xenapi] credentials', () => {
  assert.deepEqual(
    lines(
      renderFile(
        'ovs-agent',
        release('ussuri'),
        neutronAgentValues({ ...agent, segmentation: 'vlan', bridgeMappings: 'physnet2:xapi1' }),
      ),
    ),
    [
      'agent/root_helper=',
      'agent/root_helper_daemon=xenapi_root_helper',
      'agent/minimize_polling=False',
      'ovs/integration_bridge=br-int',
      'ovs/bridge_mappings=physnet2:xapi1',
      'ovs/of_listen_address=192.168.0.5',
      'ovs/ovsdb_connection=tcp:169.254.0.1:6640',
      'xenapi/connection_url=http://169.254.0.1',
      'xenapi/connection_username=root',
      'xenapi/connection_password=***',
      'securitygroup/firewall_driver=neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver',
      '-agent/tunnel_types',
      '-ovs/local_ip',
    ],
  )
  assert.deepEqual(
    lines(
      renderFile('neutron-rootwrap', release('ussuri'), {
        connection_url: 'http://169.254.0.1',
        connection_username: 'root',
        connection_password: password,
      }),
    ),
    [
      'xenapi/xenapi_connection_url=http://169.254.0.1',
      'xenapi/xenapi_connection_username=root',
      'xenapi/xenapi_connection_password=***',
    ],
  )
})

test('the OpenStack release from Fuel spellings, and a clear error otherwise', () => {
  assert.equal(parseOpenStackRelease('mitaka-9.0').series, 'mitaka')
  assert.equal(parseOpenStackRelease('2014.2.2-6.1').series, 'juno')
  assert.equal(parseOpenStackRelease('2015.1.0-7.0').series, 'kilo')
  assert.equal(parseOpenStackRelease('liberty-8.0').series, 'liberty')
  assert.equal(parseOpenStackRelease(undefined, 'OpenStack Ussuri on Ubuntu 18.04').series, 'ussuri')
  assert.ok(parseOpenStackRelease('queens').atLeast('pike'))
  assert.ok(parseOpenStackRelease('ocata').before('pike'))
  assert.equal(
    openstackReleaseOf({ node: 'c1', models: { release: { name: 'OpenStack on Ubuntu', version: 'mitaka-9.0' } } })
      .series,
    'mitaka',
  )
  assert.throws(
    () => openstackReleaseOf({ node: 'c1', models: { release: { name: 'OpenStack on Ubuntu', version: '9.0' } } }),
    /node c1: cannot tell the OpenStack release from "9\.0" \/ "OpenStack on Ubuntu": expected a series name \(juno, kilo/,
  )
  assert.throws(() => parseOpenStackRelease('victoria'), /nova's XenAPI driver was removed in Victoria/)
})

test('multipath blacklist: added, widened from hd, inserted into an existing section, then left alone', () => {
  const added = blacklistXvd(undefined)!
  assert.equal(added, 'blacklist {\n    devnode "^(hd|xvd)[a-z]"\n}\n')
  assert.equal(blacklistXvd(added), undefined)
  assert.equal(
    blacklistXvd('defaults {\n  user_friendly_names yes\n}\nblacklist {\n  devnode "^hd[a-z]"\n}\n'),
    'defaults {\n  user_friendly_names yes\n}\nblacklist {\n  devnode "^(hd|xvd)[a-z]"\n}\n',
  )
  assert.equal(
    blacklistXvd('blacklist {\n  wwid 3600508b\n}\n'),
    'blacklist {\n    devnode "^(hd|xvd)[a-z]"\n  wwid 3600508b\n}\n',
  )
  assert.equal(blacklistXvd('defaults {\n}'), 'defaults {\n}\nblacklist {\n    devnode "^(hd|xvd)[a-z]"\n}\n')
})

test('controllers: memcached servers found in nova.conf; the token-cache keys per release', () => {
  const conf =
    '[DEFAULT]\nmemcached_servers = wrong:1\n[keystone_authtoken]\nmemcached_servers = 10.0.0.2:11211,10.0.0.3:11211\n[cache]\n'
  assert.deepEqual(memcachedServersIn(conf), {
    servers: '10.0.0.2:11211,10.0.0.3:11211',
    from: '[keystone_authtoken] memcached_servers',
  })
  assert.deepEqual(memcachedServersIn('[keystone]\nmemcached_servers = 10.0.0.9:11211\n'), {
    servers: '10.0.0.9:11211',
    from: '[keystone] memcached_servers',
  })
  assert.equal(memcachedServersIn('[DEFAULT]\ndebug = True\n'), undefined)
  const keys = (s: Parameters<typeof release>[0]) =>
    vncCacheKeys(release(s), 'm1:11211').map(([sec, k, v]) => (v === null ? `-${sec}/${k}` : `${sec}/${k}=${v}`))
  assert.deepEqual(keys('juno'), ['DEFAULT/memcached_servers=m1:11211', '-cache/enable', '-cache/memcached_servers'])
  assert.deepEqual(keys('mitaka'), [
    'cache/enabled=True',
    'cache/backend=oslo_cache.memcache_pool',
    'cache/memcache_servers=m1:11211',
    'DEFAULT/memcached_servers=m1:11211',
    '-cache/enable',
    '-cache/memcached_servers',
  ])
  assert.deepEqual(keys('ussuri'), [
    'cache/enabled=True',
    'cache/backend=oslo_cache.memcache_pool',
    'cache/memcache_servers=m1:11211',
    '-DEFAULT/memcached_servers',
    '-cache/enable',
    '-cache/memcached_servers',
  ])
  assert.deepEqual(consoleServices(release('mitaka')), ['nova-novncproxy', 'nova-consoleauth'])
  assert.deepEqual(consoleServices(release('ussuri')), ['nova-novncproxy'])
})

test('inputs from the task context: VxLAN endpoint, public endpoint and TLS, errors naming the node', async () => {
  const base = {
    node: 'compute-7',
    settings: {
      xenserver: { username: { value: 'root' }, password: { type: 'password', value: 'Ctx-Secret-3' } },
      public_ssl: { services: { value: true }, hostname: { value: 'cloud.example.org' } },
    },
    models: {
      release: { version: 'ussuri' },
      cluster: { net_segment_type: 'tun', public_vip: '203.0.113.9' },
    },
    nodeData: { addresses: { management: '10.1.0.7/22', private: '10.2.0.7/24' } },
  }
  const ctx = base as unknown as NativeTaskContext
  const inputs = await neutronAgentInputsOf(ctx)
  assert.equal(inputs.segmentation, 'tun')
  assert.equal(inputs.localIp, '10.2.0.7')
  assert.equal(inputs.managementAddress, '10.1.0.7')
  assert.equal(String(inputs.password), '***')
  assert.deepEqual(
    lines(renderFile('ovs-agent', release('ussuri'), neutronAgentValues(inputs))).filter((l) =>
      /tunnel_types|local_ip|bridge_mappings/.test(l),
    ),
    ['agent/tunnel_types=vxlan', 'ovs/local_ip=10.2.0.7', '-ovs/bridge_mappings'],
  )
  const nova = novaComputeInputsOf(ctx)
  assert.deepEqual([nova.publicHost, nova.tls], ['cloud.example.org', true])
  assert.equal(novaComputeValues(nova).novncproxy_base_url, 'https://cloud.example.org:6080/vnc_auto.html')
  const without = (patch: Record<string, unknown>) => ({ ...base, ...patch }) as unknown as NativeTaskContext
  assert.throws(
    () => novaComputeInputsOf(without({ models: { cluster: {} } })),
    /^ComputeInputError: node compute-7: the environment's public VIP is unknown/,
  )
  assert.throws(
    () => novaComputeInputsOf(without({ settings: { xenserver: { password: { value: '' } } } })),
    /node compute-7: the XenServer password setting \(xenserver\.password\) is empty/,
  )
  await assert.rejects(
    () => neutronAgentInputsOf(without({ nodeData: { addresses: { management: '10.1.0.7/22' } } })),
    /node compute-7: tunnelling needs the tunnel endpoint address: record data\.addresses\.private/,
  )
  assert.throws(
    () => novaComputeInputsOf(without({ nodeData: {} })),
    /node compute-7: its record has no management address/,
  )
})

test('the image-cache cleanup script is valid Python (it runs with nova on the compute VM)', (t) => {
  if (!requirePrerequisite(t, 'python3', () => hasExecutable('python3'))) return
  const dir = tmp('xenstack-dci-')
  const file = join(dir, 'destroy_cached_images.py')
  writeFileSync(file, DESTROY_CACHED_IMAGES_SCRIPT)
  const r = spawnSync('python3', ['-m', 'py_compile', file], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  assert.match(DESTROY_CACHED_IMAGES_SCRIPT, /^#!\/usr\/bin\/env python\n/)
  assert.match(DESTROY_CACHED_IMAGES_SCRIPT, /vm_utils\.destroy_cached_images\(/)
})
