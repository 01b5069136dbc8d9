import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkRoleAssignment, type RoleMeta } from '../src/index.js'

const roles: Record<string, RoleMeta> = {
  controller: {
    name: 'Controller',
    conflicts: ['compute'],
    limits: {
      min: 1,
      recommended: 3,
      overrides: [
        {
          condition: 'settings:neutron_l3_ha.value == true',
          min: 2,
          message: 'Neutron L3 HA requires at least 2 Controller nodes.',
        },
      ],
    },
  },
  compute: { name: 'Compute' },
  'base-os': { name: 'Operating System', conflicts: '*' },
  mongo: {
    name: 'Telemetry - MongoDB',
    restrictions: [
      { condition: 'settings:ceilometer.value == false', message: 'MongoDB is only needed with Ceilometer.' },
    ],
    limits: { max: 'settings:mongo_max.value' },
  },
}
const models = (over: Record<string, unknown> = {}) => ({
  settings: { neutron_l3_ha: { value: false }, ceilometer: { value: true }, mongo_max: { value: 1 }, ...over },
})

test('role assignment: conflicts (list and "*"), limits with overrides and expressions, restrictions', () => {
  assert.deepEqual(
    checkRoleAssignment(
      roles,
      [
        { name: 'n1', roles: ['controller'] },
        { name: 'n2', roles: ['compute'] },
      ],
      models(),
    ).map((p) => [p.severity, p.message]),
    [['warning', '3 Controller nodes are recommended, found 1']],
  )
  const p = checkRoleAssignment(
    roles,
    [
      { name: 'n1', roles: ['controller', 'compute'] },
      { name: 'n2', roles: ['base-os', 'mongo'] },
      { name: 'n3', roles: ['mongo', 'frobnicator'] },
    ],
    models({ neutron_l3_ha: { value: true }, ceilometer: { value: false } }),
  )
  assert.deepEqual(
    p.map((x) => x.message),
    [
      'Node n1: role Controller cannot be combined with Compute',
      'Node n2: role Operating System cannot be combined with Telemetry - MongoDB',
      'Node n3: unknown role "frobnicator"',
      'Neutron L3 HA requires at least 2 Controller nodes.',
      'Role Telemetry - MongoDB cannot be assigned: MongoDB is only needed with Ceilometer.',
    ],
  )
  // With Ceilometer on, the role is available and its max (an expression) applies.
  const q = checkRoleAssignment(
    roles,
    [
      { name: 'n1', roles: ['controller'] },
      { name: 'n2', roles: ['mongo'] },
      { name: 'n3', roles: ['mongo'] },
    ],
    models({ mongo_max: { value: '1' } }),
  )
  assert.deepEqual(
    q.map((x) => `${x.severity} ${x.kind} ${x.message}`),
    [
      'warning recommended 3 Controller nodes are recommended, found 1',
      'error max At most 1 Telemetry - MongoDB node is allowed, found 2',
    ],
  )
})
