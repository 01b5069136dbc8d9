import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  applyBindings,
  bindingsOf,
  componentAvailability,
  matchComponentName,
  requirementsOf,
  validateSelection,
  type Component,
} from '../src/index.js'

test('component names match part by part; a trailing * matches one or more parts', () => {
  assert.equal(matchComponentName('hypervisor:*', 'hypervisor:xenserver'), true)
  assert.equal(matchComponentName('hypervisor:*', 'hypervisor'), false)
  assert.equal(matchComponentName('network:neutron:*', 'network:neutron:ml2:vlan'), true)
  assert.equal(matchComponentName('network:*:ml2:vlan', 'network:neutron:ml2:vlan'), true)
  assert.equal(matchComponentName('network:*:ml2', 'network:neutron:ml2:vlan'), false)
  assert.equal(matchComponentName('storage:block:ceph', 'storage:block:ceph'), true)
  assert.equal(matchComponentName('storage:block', 'storage:block:ceph'), false)
})

const registry: Component[] = [
  { name: 'hypervisor:qemu', label: 'QEMU', bind: [{ 'settings:common.libvirt_type.value': 'qemu' }] },
  { name: 'hypervisor:kvm', label: 'KVM', bind: [['settings:common.libvirt_type.value', 'kvm']] },
  {
    name: 'hypervisor:xenserver',
    label: 'XenServer',
    incompatible: [{ name: 'hypervisor:qemu', message: 'XenServer replaces QEMU' }, { name: 'storage:*' }],
    bind: ['settings:fuel-plugin-xenserver.metadata.enabled'],
  },
  { name: 'network:neutron:core:ml2', label: 'ML2', compatible: [{ name: 'hypervisor:*' }] },
  { name: 'storage:block:lvm', label: 'LVM' },
  {
    name: 'additional_service:a',
    label: 'A',
    requires: [
      { one_of: { items: ['hypervisor:qemu', 'hypervisor:kvm'], message: 'A needs exactly one libvirt hypervisor' } },
    ],
  },
  {
    name: 'additional_service:b',
    label: 'B',
    requires: [{ none_of: { items: ['hypervisor:xenserver'], message: 'B cannot run with XenServer' } }],
  },
  {
    name: 'additional_service:c',
    label: 'C',
    requires: [
      {
        any_of: {
          items: ['hypervisor:vmware'],
          message: 'C needs vCenter',
          message_invalid: 'C needs vCenter, which this release does not offer',
        },
      },
    ],
  },
]

test('predicates one_of, none_of, any_of (with message_invalid) and all violations at once', () => {
  assert.deepEqual(validateSelection(registry, ['hypervisor:qemu', 'additional_service:a']), [])
  assert.deepEqual(
    validateSelection(registry, ['hypervisor:qemu', 'hypervisor:kvm', 'additional_service:a']).map((v) => v.message),
    ['A needs exactly one libvirt hypervisor'],
  )
  const v = validateSelection(registry, [
    'hypervisor:xenserver',
    'hypervisor:qemu',
    'storage:block:lvm',
    'additional_service:b',
    'additional_service:c',
    'unknown:thing',
  ])
  assert.deepEqual(
    v.map((x) => [x.kind, x.component, x.message]),
    [
      ['unknown', 'unknown:thing', v[0].message],
      ['incompatible', 'hypervisor:xenserver', 'XenServer replaces QEMU'],
      [
        'incompatible',
        'hypervisor:xenserver',
        'XenServer (hypervisor:xenserver) is incompatible with LVM (storage:block:lvm)',
      ],
      ['requires', 'additional_service:b', 'B cannot run with XenServer'],
      ['requires', 'additional_service:c', 'C needs vCenter, which this release does not offer'],
    ],
  )
  assert.match(v[0].message, /^Unknown component "unknown:thing" \(expected one of hypervisor:qemu, /)
})

test('mixing the two requires forms is an error', () => {
  assert.throws(
    () => requirementsOf({ name: 'x:y', requires: [{ name: 'hypervisor:qemu' }, { all_of: { items: ['a:b'] } }] }),
    /mixes the list form/,
  )
})

test('bind: every form, applied to the models; conflicting binds are refused', () => {
  assert.deepEqual(bindingsOf(registry[2]), [
    { component: 'hypervisor:xenserver', target: 'settings:fuel-plugin-xenserver.metadata.enabled', value: true },
  ])
  const models: Record<string, any> = { settings: { common: { libvirt_type: { value: 'kvm' } } }, cluster: {} }
  const applied = applyBindings(registry, ['hypervisor:qemu', 'hypervisor:xenserver'], models)
  assert.equal(applied.length, 2)
  assert.equal(models.settings.common.libvirt_type.value, 'qemu')
  assert.equal(models.settings['fuel-plugin-xenserver'].metadata.enabled, true)
  assert.throws(
    () => applyBindings(registry, ['hypervisor:qemu', 'hypervisor:kvm'], {}),
    /bind settings:common\.libvirt_type\.value to different values/,
  )
})

test('availability for the wizard: incompatible in either direction, compatible, available', () => {
  assert.deepEqual(componentAvailability(registry, ['hypervisor:xenserver'], 'storage:block:lvm'), {
    availability: 'incompatible',
    messages: ['Incompatible with XenServer'],
  })
  assert.deepEqual(componentAvailability(registry, ['hypervisor:qemu'], 'hypervisor:xenserver').messages, [
    'XenServer replaces QEMU',
  ])
  assert.equal(
    componentAvailability(registry, ['hypervisor:qemu'], 'network:neutron:core:ml2').availability,
    'compatible',
  )
  assert.equal(componentAvailability(registry, [], 'storage:block:lvm').availability, 'available')
})
