/** VM lifecycle (§11), devices and storage. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { start } from './rpc.js'

const GiB = 1024 ** 3

test('power-state rules, VM_BAD_POWER_STATE, allowed_operations, resident_on, domid, metrics', async (t) => {
  const r = await start({ hosts: 2, vms: [{ name: 'v', powerState: 'Halted', host: 1 }] })
  t.after(() => r.close())
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const get = () => r.ok<Record<string, unknown>>('VM.get_record', vm)
  let rec = await get()
  assert.equal(rec.power_state, 'Halted')
  assert.equal(rec.resident_on, 'OpaqueRef:NULL')
  assert.equal(rec.domid, -1)
  assert.ok((rec.allowed_operations as string[]).includes('start'))
  assert.ok(!(rec.allowed_operations as string[]).includes('clean_shutdown'))
  assert.deepEqual(await r.err('VM.clean_shutdown', vm), ['VM_BAD_POWER_STATE', vm, 'running', 'halted'])
  assert.deepEqual(await r.err('VM.unpause', vm), ['VM_BAD_POWER_STATE', vm, 'paused', 'halted'])
  assert.deepEqual(await r.err('VM.hard_shutdown', vm), [
    'VM_BAD_POWER_STATE',
    vm,
    'paused, suspended, running',
    'halted',
  ])
  await r.ok('VM.start', vm, false, false)
  rec = await get()
  assert.equal(rec.power_state, 'Running')
  assert.equal(rec.resident_on, r.sim.db.refs('host')[1], 'started on its affinity host')
  assert.ok((rec.domid as number) > 0)
  assert.ok((rec.allowed_operations as string[]).includes('clean_shutdown'))
  assert.ok(!(rec.allowed_operations as string[]).includes('start'))
  assert.ok(!(rec.allowed_operations as string[]).includes('destroy'))
  assert.deepEqual(await r.err('VM.start', vm, false, false), ['VM_BAD_POWER_STATE', vm, 'halted', 'running'])
  assert.deepEqual(await r.err('VM.destroy', vm), ['VM_BAD_POWER_STATE', vm, 'halted, suspended', 'running'])
  const metrics = await r.ok<Record<string, unknown>>('VM_metrics.get_record', rec.metrics)
  assert.equal(metrics.memory_actual, GiB)
  const gm = await r.ok<Record<string, unknown>>('VM_guest_metrics.get_record', rec.guest_metrics)
  assert.equal(gm.PV_drivers_detected, true)
  const hostVms = await r.ok<string[]>('host.get_resident_VMs', rec.resident_on)
  assert.ok(hostVms.includes(vm))
  const dom = rec.domid as number
  await r.ok('VM.clean_reboot', vm)
  assert.notEqual((await get()).domid, dom)
  await r.ok('VM.pause', vm)
  assert.equal((await get()).power_state, 'Paused')
  await r.ok('VM.unpause', vm)
  await r.ok('VM.suspend', vm)
  rec = await get()
  assert.equal(rec.power_state, 'Suspended')
  assert.equal(rec.resident_on, 'OpaqueRef:NULL')
  assert.deepEqual(
    rec.allowed_operations,
    [...(rec.allowed_operations as string[])].filter((o) => o !== 'start'),
  )
  await r.ok('VM.resume', vm, false, false)
  assert.equal((await get()).power_state, 'Running')
  await r.ok('VM.hard_shutdown', vm)
  rec = await get()
  assert.equal(rec.power_state, 'Halted')
  assert.equal(rec.guest_metrics, 'OpaqueRef:NULL')
  await r.ok('VM.start', vm, true, false)
  assert.equal((await get()).power_state, 'Paused', 'start_paused')
  await r.ok('VM.hard_shutdown', vm)
  const vbds = (await get()).VBDs as string[]
  await r.ok('VM.destroy', vm)
  assert.equal(r.sim.db.has('VBD', vbds[0]), false, 'VBDs go with the VM')
})

test('templates: clone, provision, copy; VM_IS_TEMPLATE; snapshots', async (t) => {
  const r = await start({ hosts: 1, vms: [{ name: 'v', powerState: 'Halted' }] })
  t.after(() => r.close())
  const tpl = (await r.ok<string[]>('VM.get_by_name_label', 'Debian Stretch 9.0'))[0]
  const trec = await r.ok<Record<string, unknown>>('VM.get_record', tpl)
  assert.equal(trec.is_a_template, true)
  assert.equal(trec.is_default_template, true)
  assert.deepEqual(
    [...(trec.allowed_operations as string[])].sort(),
    [
      'changing_dynamic_range',
      'changing_shadow_memory',
      'changing_static_range',
      'clone',
      'copy',
      'export',
      'metadata_export',
      'provision',
      'changing_NVRAM',
    ].sort(),
  )
  assert.deepEqual(await r.err('VM.start', tpl, false, false), ['VM_IS_TEMPLATE', tpl, 'start'])
  assert.deepEqual(await r.err('VM.destroy', tpl), ['VM_IS_TEMPLATE', tpl, 'destroy'])
  const vm = await r.ok<string>('VM.clone', tpl, 'new-vm')
  let rec = await r.ok<Record<string, unknown>>('VM.get_record', vm)
  assert.equal(rec.is_a_template, true)
  assert.equal(rec.is_default_template, false)
  await r.ok('VM.provision', vm)
  rec = await r.ok<Record<string, unknown>>('VM.get_record', vm)
  assert.equal(rec.is_a_template, false)
  assert.equal((rec.VBDs as string[]).length, 1)
  await r.ok('VM.start', vm, false, false)
  const src = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const sr = r.sim.db.find('SR', (s) => s.name_label === 'Local storage')!
  const copy = await r.ok<string>('VM.copy', src, 'v-copy', sr)
  const crec = await r.ok<Record<string, unknown>>('VM.get_record', copy)
  assert.equal((crec.VBDs as string[]).length, 1)
  const vdi = await r.ok<string>('VBD.get_VDI', (crec.VBDs as string[])[0])
  assert.notEqual(vdi, r.sim.db.get((r.sim.db.get(src)!.VBDs as string[])[0])!.VDI)
  const snap = await r.ok<string>('VM.snapshot', src, 'snap', [])
  const srec = await r.ok<Record<string, unknown>>('VM.get_record', snap)
  assert.equal(srec.is_a_snapshot, true)
  assert.equal(srec.snapshot_of, src)
  assert.ok((await r.ok<string[]>('VM.get_snapshots', src)).includes(snap))
})

test('Async VM operations run as tasks; current_operations while running; result XML-serialised', async (t) => {
  const r = await start({ hosts: 1, vms: [{ name: 'v', powerState: 'Halted' }] })
  t.after(() => r.close())
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const seen: string[] = []
  r.sim.db.on('change', (c) => {
    if (c.ref === vm && c.fields?.includes('current_operations'))
      seen.push(JSON.stringify(Object.values(c.rec.current_operations as object)))
  })
  const task = await r.ok<string>('Async.VM.start', vm, false, false)
  assert.match(task, /^OpaqueRef:/)
  let trec: Record<string, unknown>
  for (;;) {
    trec = await r.ok<Record<string, unknown>>('task.get_record', task)
    if (trec.status !== 'pending') break
    await new Promise((res) => setTimeout(res, 5))
  }
  assert.equal(trec.status, 'success')
  assert.equal(trec.progress, 1)
  assert.equal(trec.result, '<value></value>')
  assert.equal(trec.name_label, 'Async.VM.start')
  assert.deepEqual(seen, ['["start"]', '[]'])
  const finished = async (task: string) => {
    for (;;) {
      const rec = await r.ok<Record<string, unknown>>('task.get_record', task)
      if (rec.status !== 'pending') return rec
      await new Promise((res) => setTimeout(res, 5))
    }
  }
  const t2 = await r.ok<string>('Async.VM.clone', vm, 'c')
  const t2rec = await finished(t2)
  assert.equal(t2rec.status, 'failure')
  assert.deepEqual(t2rec.error_info, ['VM_BAD_POWER_STATE', vm, 'halted', 'running'])
  await r.ok('VM.hard_shutdown', vm)
  const t3 = await r.ok<string>('Async.VM.clone', vm, 'c')
  const result = (await finished(t3)).result as string
  assert.match(result, /^<value>OpaqueRef:[0-9a-f-]{36}<\/value>$/)
  await r.ok('task.destroy', t3)
  assert.deepEqual(await r.err('task.get_record', t3), ['HANDLE_INVALID', 'task', t3])
})

test('VIF/VBD hot-plug rules, device uniqueness, MACs', async (t) => {
  const r = await start({
    hosts: 1,
    vms: [
      { name: 'pv', powerState: 'Running', pvDrivers: true },
      { name: 'nopv', powerState: 'Running', pvDrivers: false },
      { name: 'off', powerState: 'Halted' },
    ],
  })
  t.after(() => r.close())
  const ref = (n: string) => r.sim.db.find('VM', (v) => v.name_label === n)!
  const net = r.sim.db.find('network', (n) => n.bridge === 'xenapi')!
  const vifOf = (vm: string, device: string, MAC = '') =>
    r.ok<string>('VIF.create', {
      device,
      network: net,
      VM: vm,
      MAC,
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    })
  const v1 = await vifOf(ref('pv'), '1')
  assert.deepEqual(
    await r.err('VIF.create', {
      device: '1',
      network: net,
      VM: ref('pv'),
      MAC: '',
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    }),
    ['DEVICE_ALREADY_EXISTS', '1'],
  )
  assert.deepEqual(
    await r.err('VIF.create', {
      device: '2',
      network: net,
      VM: ref('pv'),
      MAC: 'zz',
      MTU: 1500,
      other_config: {},
      qos_algorithm_type: '',
      qos_algorithm_params: {},
    }),
    ['MAC_INVALID', 'zz'],
  )
  assert.equal(await r.ok('VIF.get_currently_attached', v1), false)
  await r.ok('VIF.plug', v1)
  assert.equal(await r.ok('VIF.get_currently_attached', v1), true)
  assert.deepEqual(await r.err('VIF.plug', v1), ['DEVICE_ALREADY_ATTACHED', v1])
  await r.ok('VIF.unplug', v1)
  assert.deepEqual(await r.err('VIF.unplug', v1), ['DEVICE_ALREADY_DETACHED', v1])
  const v2 = await vifOf(ref('nopv'), '1', '02:00:00:00:00:01')
  assert.equal(await r.ok('VIF.get_MAC', v2), '02:00:00:00:00:01')
  assert.deepEqual(await r.err('VIF.plug', v2), ['VM_MISSING_PV_DRIVERS', ref('nopv')])
  const v3 = await vifOf(ref('off'), '1')
  assert.deepEqual(await r.err('VIF.plug', v3), ['VM_BAD_POWER_STATE', ref('off'), 'running', 'halted'])
  await r.ok('VM.start', ref('off'), false, false)
  assert.equal(await r.ok('VIF.get_currently_attached', v3), true, 'devices attach at start')
  // VBDs
  const sr = r.sim.db.find('SR', (s) => s.type === 'ext')!
  const vdi = await r.ok<string>('VDI.create', {
    name_label: 'd',
    SR: sr,
    virtual_size: GiB,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  })
  const vbd = await r.ok<string>('VBD.create', {
    VM: ref('pv'),
    VDI: vdi,
    userdevice: 'autodetect',
    bootable: false,
    mode: 'RW',
    type: 'Disk',
    empty: false,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  assert.equal(await r.ok('VBD.get_userdevice', vbd), '1')
  await r.ok('VBD.plug', vbd)
  assert.deepEqual(await r.err('VBD.plug', vbd), ['DEVICE_ALREADY_ATTACHED', vbd])
  assert.deepEqual(await r.err('VDI.destroy', vdi), ['VDI_IN_USE', vdi, 'destroy'])
  await r.ok('VBD.unplug', vbd)
  await r.ok('VBD.destroy', vbd)
  assert.deepEqual(await r.ok('VDI.get_VBDs', vdi), [])
})

test('SR types, sizes, SR_FULL, scan; VDI create/resize/clone/destroy', async (t) => {
  const r = await start({ hosts: 2, srs: [{ name: 'nfs', type: 'nfs', sizeBytes: 10 * GiB, shared: true }] })
  t.after(() => r.close())
  const nfs = r.sim.db.find('SR', (s) => s.name_label === 'nfs')!
  const srec = await r.ok<Record<string, unknown>>('SR.get_record', nfs)
  assert.equal(srec.type, 'nfs')
  assert.equal(srec.physical_size, 10 * GiB)
  assert.equal((srec.PBDs as string[]).length, 2, 'a shared SR has a PBD per host')
  const mk = (size: number) =>
    r.json('VDI.create', [
      r.sim.login(),
      {
        name_label: 'd',
        SR: nfs,
        virtual_size: size,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      },
    ])
  const v = (await mk(6 * GiB)).result as string
  assert.equal(await r.ok('SR.get_virtual_allocation', nfs), 6 * GiB)
  assert.deepEqual((await mk(5 * GiB)).error, { code: 1, message: 'SR_FULL', data: [String(5 * GiB), String(4 * GiB)] })
  await r.ok('VDI.resize', v, 8 * GiB)
  assert.equal(await r.ok('VDI.get_virtual_size', v), 8 * GiB)
  assert.equal((await r.err('VDI.resize', v, 1 * GiB))[0], 'VDI_TOO_SMALL')
  assert.equal((await r.err('VDI.clone', v, {}))[0], 'SR_FULL')
  await r.ok('VDI.resize', v, 4 * GiB).catch(() => undefined)
  await r.ok('VDI.destroy', v)
  assert.equal(await r.ok('SR.get_virtual_allocation', nfs), 0)
  const v2 = (await mk(1 * GiB)).result as string
  const c = await r.ok<string>('VDI.clone', v2, {})
  assert.equal(await r.ok('VDI.get_virtual_size', c), GiB)
  await r.ok('SR.scan', nfs)
  assert.equal(await r.ok('SR.get_virtual_allocation', nfs), 2 * GiB)
  assert.deepEqual(await r.err('SR.create', r.sim.master, {}, 0, 'x', '', 'bogus', 'user', false, {}), [
    'SR_UNKNOWN_DRIVER',
    'bogus',
  ])
  const lvm = await r.ok<string>(
    'SR.create',
    r.sim.master,
    { device: '/dev/sdc' },
    100 * GiB,
    'lvm',
    '',
    'lvm',
    'user',
    false,
    {},
  )
  assert.equal(await r.ok('SR.get_physical_size', lvm), 100 * GiB)
  assert.deepEqual(await r.err('SR.destroy', lvm), ['SR_HAS_PBD', lvm])
  const pbd = (await r.ok<string[]>('SR.get_PBDs', lvm))[0]
  await r.ok('PBD.unplug', pbd)
  await r.ok('SR.destroy', lvm)
  assert.equal(r.sim.db.has('PBD', pbd), false)
  assert.ok((await r.ok<string[]>('SR.get_supported_types')).includes('iso'))
})

test('an operation in progress blocks conflicting ones (OTHER_OPERATION_IN_PROGRESS) and empties allowed_operations', async (t) => {
  const r = await start({ hosts: 1, vms: [{ name: 'v', powerState: 'Running' }] })
  t.after(() => r.close())
  const s = r.sim.login()
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const during = new Promise<[unknown, string[]]>((resolve) => {
    const on = (c: { ref: string; rec: Record<string, unknown> }) => {
      if (c.ref !== vm || Object.keys(c.rec.current_operations as object).length === 0) return
      r.sim.db.off('change', on)
      queueMicrotask(() => {
        const allowed = [...(r.sim.db.get(vm)!.allowed_operations as string[])]
        void Promise.resolve(r.sim.call('VM.hard_shutdown', [s, vm])).then((o) => resolve([o, allowed]))
      })
    }
    r.sim.db.on('change', on)
  })
  const started = await r.sim.call('Async.VM.clean_reboot', [s, vm])
  assert.ok(started.ok)
  const [o, allowedDuring] = await during
  assert.deepEqual(o, {
    ok: false,
    errorDescription: ['OTHER_OPERATION_IN_PROGRESS', 'VM', vm, 'clean_reboot', started.value as string],
  })
  assert.deepEqual(allowedDuring, [], 'nothing else allowed while rebooting')
})

test('pool_migrate moves a running VM; memory and VCPU changes are checked', async (t) => {
  const r = await start({ hosts: 2, vms: [{ name: 'v', powerState: 'Running', host: 0, vcpus: 2 }] })
  t.after(() => r.close())
  const vm = r.sim.db.find('VM', (v) => v.name_label === 'v')!
  const [h1, h2] = r.sim.db.refs('host')
  assert.equal(await r.ok('VM.get_resident_on', vm), h1)
  await r.ok('VM.pool_migrate', vm, h2, {})
  assert.equal(await r.ok('VM.get_resident_on', vm), h2)
  assert.ok((await r.ok<string[]>('host.get_resident_VMs', h2)).includes(vm))
  assert.ok(!(await r.ok<string[]>('host.get_resident_VMs', h1)).includes(vm))
  await r.ok('VM.set_VCPUs_number_live', vm, 1)
  assert.equal((await r.err('VM.set_VCPUs_number_live', vm, 9))[0], 'INVALID_VALUE')
  assert.equal((await r.err('VM.set_memory_dynamic_range', vm, 10, 1))[0], 'MEMORY_CONSTRAINT_VIOLATION')
  await r.ok('VM.hard_shutdown', vm)
  assert.deepEqual(await r.err('VM.pool_migrate', vm, h1, {}), ['VM_BAD_POWER_STATE', vm, 'running', 'halted'])
})
