/**
 * `xenstack xen private-lab` against the XAPI simulator: from nothing it creates the three private networks and the
 * Fuel, Controller and Compute VMs as specified (NICs in order, ≥ 4 GiB, ≥ 50 GiB disk, boot order, HIMN on
 * Compute); a second run changes nothing; --dry-run changes nothing; a same-named network it did not create is not
 * taken over.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { runCli } from '../cli/run.js'

const PASSWORD = 'prep-lab-Secr3t!'
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }
const GiB = 1024 ** 3

async function withSim<T>(fn: (sim: SimServer, xapi: Xapi, conn: string[]) => Promise<T>): Promise<T> {
  const sim = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  const xapi = await connect({ url: sim.url, username: 'root', password: PASSWORD })
  try {
    return await fn(sim, xapi, ['--url', sim.url, '--username', 'root'])
  } finally {
    await xapi.close().catch(() => undefined)
    await sim.close()
  }
}

/** Everything the command could touch, for "changed nothing" comparisons. */
async function snapshot(xapi: Xapi): Promise<string> {
  const out: Record<string, unknown> = {}
  for (const cls of ['network', 'VM', 'VIF', 'VBD', 'VDI'])
    out[cls] = await xapi.call(`${cls}.get_all_records`).then((r) => {
      const rec = r as Record<string, Record<string, unknown>>
      // fields that move on their own (metrics timestamps, allowed operations) are not our changes
      return Object.fromEntries(
        Object.entries(rec).map(([k, v]) => [
          k,
          Object.fromEntries(Object.entries(v).filter(([f]) => !/operations|metrics|last_updated/.test(f))),
        ]),
      )
    })
  return JSON.stringify(out)
}

let shared: { sim: SimServer; xapi: Xapi; conn: string[] }
before(async () => {
  const sim = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  shared = {
    sim,
    xapi: await connect({ url: sim.url, username: 'root', password: PASSWORD }),
    conn: ['--url', sim.url, '--username', 'root'],
  }
})
after(async () => {
  await shared?.xapi.close().catch(() => undefined)
  await shared?.sim.close()
})

test('private-lab: --dry-run on an empty host lists every step and changes nothing', async () => {
  const { xapi, conn } = shared
  const before = await snapshot(xapi)
  const r = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22', '--dry-run', '--json'], env)
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.equal(out.dryRun, true)
  assert.equal(out.changed, true)
  for (const n of ['pxe', 'private', 'br100']) assert.ok(out.steps.includes(`create network ${n} (private: no PIF)`), n)
  for (const vm of ['Fuel', 'Controller', 'Compute'])
    assert.ok(out.steps.includes(`create VM ${vm} from "Other install media"`), vm)
  assert.ok(out.steps.includes('VM Compute: attach the host internal management network (HIMN)'))
  assert.equal(out.gateway.address, '10.1.0.1')
  assert.equal(out.gateway.cidr, '10.1.0.0/22')
  assert.match(out.gateway.skipped, /no --dom0-ssh/)
  assert.equal(await snapshot(xapi), before, 'a dry run changed the pool')
})

test('private-lab: converges from nothing to the specified networks and VMs; a second run and a dry run change nothing', async () => {
  const { xapi, conn } = shared
  const r = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22'], env)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /create network private/)
  assert.match(r.stdout, /next steps:/)

  const nets = (await xapi.call('network.get_all_records')) as Record<string, any>
  const byName = (n: string) => Object.entries(nets).filter(([, x]) => x.name_label === n)
  for (const n of ['pxe', 'private', 'br100']) {
    assert.equal(byName(n).length, 1, `one network ${n}`)
    assert.equal(byName(n)[0][1].other_config.xenstack_private_lab, n)
    assert.deepEqual(byName(n)[0][1].PIFs, [], `${n} is private (no PIF)`)
  }
  const pifs = (await xapi.call('PIF.get_all_records')) as Record<string, any>
  const external = Object.values(pifs).find((p) => p.device === 'eth0').network
  const himn = Object.entries(nets).find(([, x]) => x.other_config.is_host_internal_management_network === 'true')![0]
  const want: Record<string, string[]> = {
    Fuel: [byName('pxe')[0][0], external],
    Controller: [byName('pxe')[0][0], byName('private')[0][0], byName('br100')[0][0]],
    Compute: [byName('pxe')[0][0], byName('private')[0][0], byName('br100')[0][0]],
  }
  for (const [name, networks] of Object.entries(want)) {
    const refs = (await xapi.call('VM.get_by_name_label', name)) as string[]
    assert.equal(refs.length, 1, `one VM ${name}`)
    const vm = (await xapi.call('VM.get_record', refs[0])) as any
    assert.equal(vm.is_a_template, false)
    assert.equal(vm.other_config.xenstack_private_lab, name.toLowerCase())
    assert.equal(vm.other_config.disks, undefined, 'no template disks left for a later VM.provision')
    assert.ok(vm.memory_static_max >= 4 * GiB, `${name} memory`)
    assert.equal(vm.HVM_boot_params.order, name === 'Fuel' ? 'dcn' : 'ncd')
    const vifs = await Promise.all(vm.VIFs.map((v: string) => xapi.call('VIF.get_record', v)))
    const byDevice = Object.fromEntries(vifs.map((v: any) => [v.device, v.network]))
    networks.forEach((n, i) => assert.equal(byDevice[String(i)], n, `${name} eth${i}`))
    assert.equal(Object.values(byDevice).includes(himn), name === 'Compute', `${name}: HIMN only on Compute`)
    const vbds = (await Promise.all(vm.VBDs.map((b: string) => xapi.call('VBD.get_record', b)))) as any[]
    const disk = vbds.find((b) => b.type === 'Disk' && b.userdevice === '0')
    assert.ok(disk, `${name} disk 0`)
    assert.ok(Number(await xapi.call('VDI.get_virtual_size', disk.VDI)) >= 50 * GiB, `${name} disk size`)
    assert.equal(
      vbds.some((b) => b.type === 'CD'),
      name === 'Fuel',
      `${name} CD drive`,
    )
  }

  const converged = await snapshot(xapi)
  const again = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22', '--json'], env)
  assert.equal(again.code, 0, again.stderr)
  const out = JSON.parse(again.stdout)
  assert.equal(out.changed, false)
  assert.deepEqual(out.steps, [])
  assert.equal(await snapshot(xapi), converged, 'a second run changed the pool')
  const dry = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22', '--dry-run'], env)
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stdout, /nothing to do/)
  assert.equal(await snapshot(xapi), converged)
})

test('private-lab: a drifted VM (a VIF removed, boot order changed) gets exactly those two back', async () => {
  const { xapi, conn } = shared
  const ctl = ((await xapi.call('VM.get_by_name_label', 'Controller')) as string[])[0]
  assert.ok(ctl, 'the converge test ran first')
  const vm = (await xapi.call('VM.get_record', ctl)) as any
  for (const v of vm.VIFs as string[])
    if ((await xapi.call('VIF.get_device', v)) === '2') await xapi.call('VIF.destroy', v)
  await xapi.call('VM.set_HVM_boot_params', ctl, { order: 'cd' })
  const r = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22', '--json'], env)
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(JSON.parse(r.stdout).steps, [
    'VM Controller: boot order cd → ncd',
    'VM Controller: VIF 2 (eth2) on br100',
  ])
  const again = await runCli(['xen', 'private-lab', ...conn, '--cidr', '10.1.0.0/22', '--json'], env)
  assert.deepEqual(JSON.parse(again.stdout).steps, [])
})

test('private-lab: a same-named network xenstack did not create is not taken over; the error says how to adopt it', async () => {
  await withSim(async (_sim, xapi, conn) => {
    const ref = (await xapi.call('network.create', {
      name_label: 'pxe',
      name_description: '',
      MTU: 1500,
      other_config: {},
      tags: [],
    })) as string
    const uuid = await xapi.call('network.get_uuid', ref)
    const before = await snapshot(xapi)
    const r = await runCli(['xen', 'private-lab', ...conn], env)
    assert.equal(r.code, 1)
    assert.match(r.stderr, new RegExp(`network pxe \\(uuid ${uuid}\\) exists but xenstack did not create it`))
    assert.match(r.stderr, /other-config:xenstack_private_lab=pxe/)
    assert.equal(await snapshot(xapi), before, 'nothing changed')
  })
})

test('private-lab: a bad --cidr is a usage error before anything is read', async () => {
  const r = await runCli(['xen', 'private-lab', '--url', 'http://127.0.0.1:1', '--cidr', '10.1.0.0'], env)
  assert.equal(r.code, 2)
  assert.match(r.stderr, /--cidr 10\.1\.0\.0: expected a prefix/)
})
