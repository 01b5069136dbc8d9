/**
 * The devstack template as an XVA, through the simulator's `GET /export` and `PUT /import`: `devstack install
 * --export-template` writes XAPI's layout (ova.xml first, 1 MiB chunks `Ref:<n>/%08d` each followed by its XXH64
 * `.xxhash`, all-zero chunks left out except the first and last); `--template-xva` imports it into another pool with
 * the same disk bytes (sha256) and the same metadata; a corrupted chunk is refused and leaves nothing behind; gzip
 * (`use_compression=true`) round-trips too.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { parseOvaXml, startSimServer, tarMembers, xxh64Hex, XVA_CHUNK, type SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { importXvaFile } from '../../src/prep/devstack/index.js'
import { runCli } from '../cli/run.js'

const PASSWORD = 'devstack-xva-Secr3t!'
const scratch = scratchDirs()
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }
const TEMPLATE = 'jeos_template_for_ubuntu'
const DISK = 5 * XVA_CHUNK

let a: { sim: SimServer; xapi: Xapi }
let b: { sim: SimServer; xapi: Xapi }
let dir: string
let content: Buffer

async function pool() {
  const sim = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD })
  return { sim, xapi: await connect({ url: sim.url, username: 'root', password: PASSWORD }) }
}

before(async () => {
  a = await pool()
  b = await pool()
  dir = scratch('xenstack-devstack-xva-')
  // a template as the netinstall leaves it: a disk with data in chunks 0, 1 (partly) and 4; 2 and 3 all zeros
  const x = a.xapi
  const all = (await x.call('VM.get_all_records')) as Record<string, any>
  const other = Object.entries(all).find(([, v]) => v.is_a_template && v.name_label === 'Other install media')![0]
  const vm = (await x.call('VM.clone', other, TEMPLATE)) as string
  await x.call('VM.remove_from_other_config', vm, 'disks')
  await x.call('VM.add_to_other_config', vm, 'xenstack_devstack', 'template')
  await x.call('VM.set_PV_args', vm, 'console=hvc0')
  await x.call('VM.set_memory_limits', vm, 2 ** 31, 2 ** 31, 2 ** 31, 2 ** 31)
  const sr = (await x.call('pool.get_default_SR', ((await x.call('pool.get_all')) as string[])[0])) as string
  const vdi = (await x.call('VDI.create', {
    name_label: 'jeos disk',
    name_description: 'root',
    SR: sr,
    virtual_size: DISK,
    type: 'system',
    sharable: false,
    read_only: false,
    other_config: { origin: 'test' },
  })) as string
  await x.call('VBD.create', {
    VM: vm,
    VDI: vdi,
    userdevice: '0',
    bootable: true,
    mode: 'RW',
    type: 'Disk',
    empty: false,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  const pifs = (await x.call('PIF.get_all_records')) as Record<string, any>
  await x.call('VIF.create', {
    VM: vm,
    network: Object.values(pifs).find((p) => p.management).network,
    device: '0',
    MAC: '02:16:3e:12:34:56',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  content = Buffer.alloc(DISK)
  randomBytes(XVA_CHUNK + 4096).copy(content, 0)
  randomBytes(1000).copy(content, DISK - 1000)
  await x.importVdi(vdi, content, { format: 'raw' })
})
after(async () => {
  for (const p of [a, b]) {
    await p?.xapi.close().catch(() => undefined)
    await p?.sim.close()
  }
})

async function templateOf(x: Xapi) {
  const refs = (await x.call('VM.get_by_name_label', TEMPLATE)) as string[]
  assert.equal(refs.length, 1, `one ${TEMPLATE}`)
  const vm = (await x.call('VM.get_record', refs[0])) as any
  const vbds = (await Promise.all(vm.VBDs.map((r: string) => x.call('VBD.get_record', r)))) as any[]
  const disk = vbds.find((v) => v.type === 'Disk')
  const vdi = (await x.call('VDI.get_record', disk.VDI)) as any
  const vifs = (await Promise.all(vm.VIFs.map((r: string) => x.call('VIF.get_record', r)))) as any[]
  const hash = createHash('sha256')
  for await (const c of await x.exportVdi(disk.VDI, { format: 'raw' })) hash.update(c as Buffer)
  return {
    metadata: {
      name_label: vm.name_label,
      is_a_template: vm.is_a_template,
      memory: [vm.memory_static_max, vm.memory_dynamic_max, vm.memory_dynamic_min, vm.memory_static_min],
      VCPUs: [vm.VCPUs_max, vm.VCPUs_at_startup],
      PV_args: vm.PV_args,
      HVM_boot_params: vm.HVM_boot_params,
      other_config: vm.other_config,
      vbds: vbds.map((v) => [v.userdevice, v.type, v.bootable, v.mode]),
      vifs: vifs.map((v) => [v.device, v.MAC, v.MTU]),
      vdi: [vdi.name_label, vdi.name_description, vdi.virtual_size, vdi.type, vdi.other_config],
    },
    sha256: hash.digest('hex'),
    uuid: vm.uuid,
  }
}

test("XVA: the chunk checksum is XXH64 (seed 0) as XAPI's %016X", () => {
  // reference values of XXH64
  assert.equal(xxh64Hex(Buffer.from('')), 'EF46DB3751D8E999')
  assert.equal(xxh64Hex(Buffer.from('a')), 'D24EC4F1A98C6E5B')
  assert.equal(xxh64Hex(Buffer.from('abc')), '44BC2CF5AD770999')
  assert.equal(xxh64Hex(Buffer.from('Nobody inspects the spammish repetition')), 'FBCEA83C8A378BF1')
})

test('XVA: --export-template writes XAPI layout; --template-xva imports it with equal disk sha256 and metadata', async () => {
  const file = join(dir, 'jeos.xva')
  const r = await runCli(
    ['devstack', 'install', '127.0.0.1', '--url', a.sim.url, '--data-dir', dir, '--export-template', file, '--json'],
    env,
  )
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout)
  assert.equal(out.steps.find((s: { id: string }) => s.id === 'export-template').state, 'changed')
  assert.equal(out.steps.find((s: { id: string }) => s.id === 'domu').state, 'not reached', 'export stops the run (-e)')

  const members: { name: string; data: Buffer }[] = []
  for await (const m of tarMembers(createReadStream(file))) members.push(m)
  assert.equal(members[0].name, 'ova.xml')
  const ova = parseOvaXml(members[0].data)
  assert.equal(ova.version.export_vsn, 2)
  assert.deepEqual(
    ova.objects.map((o) => o.cls),
    ['VM', 'VBD', 'VIF', 'network', 'VDI', 'SR'],
  )
  const vdiId = ova.objects.find((o) => o.cls === 'VDI')!.id
  assert.match(vdiId, /^Ref:\d+$/)
  assert.equal(ova.objects.find((o) => o.cls === 'VM')!.snapshot.power_state, 'Halted')
  // chunk 0 and 1 (data), 2 and 3 left out (zeros), 4 (data, and the last one)
  assert.deepEqual(
    members.slice(1).map((m) => m.name),
    ['00000000', '00000001', '00000004'].flatMap((n) => [`${vdiId}/${n}`, `${vdiId}/${n}.xxhash`]),
  )
  for (let i = 1; i < members.length; i += 2) {
    assert.equal(members[i].data.length, XVA_CHUNK)
    assert.equal(members[i + 1].data.toString(), xxh64Hex(members[i].data))
    assert.match(members[i + 1].data.toString(), /^[0-9A-F]{16}$/)
  }

  const imported = await runCli(
    [
      'devstack',
      'install',
      '127.0.0.1',
      '--url',
      b.sim.url,
      '--data-dir',
      scratch('xenstack-devstack-xva-b-'),
      '--template-xva',
      file,
      '--no-wait',
      '--json',
    ],
    env,
  )
  const out2 = JSON.parse(imported.stdout)
  assert.equal(out2.steps.find((s: { id: string }) => s.id === 'template').state, 'changed', imported.stderr)
  const src = await templateOf(a.xapi)
  const dst = await templateOf(b.xapi)
  assert.equal(dst.sha256, createHash('sha256').update(content).digest('hex'))
  assert.equal(dst.sha256, src.sha256)
  assert.deepEqual(dst.metadata, src.metadata)
  assert.notEqual(dst.uuid, src.uuid, 'a fresh uuid (not restore=true)')
})

test('XVA: a corrupted chunk is refused with the member named, nothing is left behind; gzip round-trips', async () => {
  const file = join(dir, 'jeos.xva')
  const bytes = readFileSync(file)
  const bad = Buffer.from(bytes)
  // the first data chunk starts after ova.xml's header+data and the chunk's own header
  const ovaSize = parseInt(bad.toString('latin1', 124, 135), 8)
  const firstData = 512 + Math.ceil(ovaSize / 512) * 512 + 512
  bad[firstData + 10] ^= 0xff
  const badFile = join(dir, 'bad.xva')
  writeFileSync(badFile, bad)
  const before =
    JSON.stringify(await b.xapi.call('VDI.get_all_records')) + JSON.stringify(await b.xapi.call('VM.get_all'))
  await assert.rejects(importXvaFile(b.xapi, badFile), /IMPORT_ERROR.*checksum mismatch on Ref:\d+\/00000000/)
  assert.equal(
    JSON.stringify(await b.xapi.call('VDI.get_all_records')) + JSON.stringify(await b.xapi.call('VM.get_all')),
    before,
    'a refused import leaves no VM or VDI',
  )

  const session = await a.xapi.ensureSession()
  const tpl = ((await a.xapi.call('VM.get_by_name_label', TEMPLATE)) as string[])[0]
  const res = await fetch(`${a.sim.url}/export?session_id=${session}&ref=${tpl}&use_compression=true`)
  const gz = Buffer.from(await res.arrayBuffer())
  const noSession = await fetch(`${a.sim.url}/export?ref=${tpl}`)
  assert.equal(noSession.status, 401, 'an export needs a session')
  await noSession.arrayBuffer()
  const meta = await fetch(`${a.sim.url}/export_metadata?session_id=${session}&uuid=x`)
  assert.equal(meta.status, 404, '/export_metadata is another handler, not this one')
  await meta.arrayBuffer()
  assert.deepEqual([...gz.subarray(0, 2)], [0x1f, 0x8b], 'gzip stream')
  const gzFile = join(dir, 'jeos.xva.gz')
  writeFileSync(gzFile, gz)
  const vms = await importXvaFile(a.xapi, gzFile)
  assert.equal(vms.length, 1)
  assert.equal(await a.xapi.call('VM.get_name_label', vms[0]), TEMPLATE)
})
