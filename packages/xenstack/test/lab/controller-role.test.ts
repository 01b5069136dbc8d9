// The lab's controller role: every lab controller gets the /etc/nova/nova.conf a Fuel-deployed controller has, naming
// every controller's memcached in [keystone_authtoken] (what the XenServer plugin's controller task copies), with
// addresses from the lab's own management network and no password. Pure: the plan only, no root.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planLab } from '../../src/lab/topology.js'
import { CONTROLLER_NOVA_CONF, controllerNovaConf, roleFiles } from '../../src/lab/controller-role.js'
import { memcachedServersIn } from '../../src/integration/controller/vnc-cache.js'
import { parseIni } from '../../src/health/xenserver/ini-check.js'

test('lab controllers have a Fuel controller nova.conf naming every controller memcached; other roles get none', () => {
  const plan = planLab('ctlrole', 201, { hosts: 1, controllers: 2, networks: { management: { cidr: '10.61.0.0/22' } } })
  const [c1, c2] = plan.hosts.filter((h) => h.role === 'controller')
  for (const c of [c1!, c2!]) {
    const files = roleFiles(plan, c)
    assert.deepEqual(Object.keys(files), [CONTROLLER_NOVA_CONF])
    const text = files[CONTROLLER_NOVA_CONF]!
    const ini = parseIni(text)
    assert.deepEqual(ini.errors, [], 'oslo.config reads every line')
    // the servers the plugin's controller task (and the ha health check) find, the same on both controllers
    assert.deepEqual(memcachedServersIn(text), {
      servers: '10.61.0.2:11211,10.61.0.3:11211',
      from: '[keystone_authtoken] memcached_servers',
    })
    assert.equal(ini.sections.get('DEFAULT')?.get('my_ip'), c.addresses.management!.split('/')[0])
    // the database URL points at the VIP (first controller) and carries no password
    assert.equal(ini.sections.get('database')?.get('connection'), 'mysql+pymysql://nova@10.61.0.2/nova?read_timeout=60')
    assert.doesNotMatch(text, /password/i)
  }
  for (const h of plan.hosts.filter((x) => x.role !== 'controller')) assert.deepEqual(roleFiles(plan, h), {})
  assert.throws(
    () =>
      controllerNovaConf(
        plan,
        plan.hosts.find((h) => h.role === 'dom0')!,
      ),
    /dom0-1 is a dom0/,
  )
})
