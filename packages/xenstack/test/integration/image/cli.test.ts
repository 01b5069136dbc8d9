import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { connect, type Xapi } from '@xenstack/xenapi'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { buildTestVm, bootSector, TESTVM_DISK_SIZE } from '../../../src/integration/image/testvm.js'
import { cliBin, runCli } from '../../cli/run.js'

const PASSWORD = 'image-cli-Secr3t!'
const tmp = scratchDirs()
let sim: SimServer
let xapi: Xapi
let conn: string[]
let sr: { uuid: string; name: string }
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }

before(async () => {
  sim = await startSimServer({ password: PASSWORD })
  conn = ['--url', sim.url, '--username', 'root']
  xapi = await connect({ url: sim.url, username: 'root', password: PASSWORD })
  const srs = (await xapi.call('SR.get_all_records')) as Record<
    string,
    { uuid: string; name_label: string; type: string }
  >
  const local = Object.values(srs).find((s) => s.type === 'ext' || s.type === 'lvm' || s.type === 'nfs')!
  sr = { uuid: local.uuid, name: local.name_label }
})
after(async () => {
  await xapi?.close()
  await sim?.close()
})

interface UploadJson {
  vdi: { ref: string; uuid: string; name_label: string }
  sr: { ref: string; uuid: string; name_label: string }
  file: string
  format: string
  bytes: number
  virtual_size: number
  seconds: number
  mib_per_second: number
}

test('image upload (raw) --json then image export: the same bytes come back; the VDI has the file size', async () => {
  const dir = tmp('xs-image-cli-')
  const data = randomBytes(3 * 1024 * 1024 + 512)
  writeFileSync(join(dir, 'disk.raw'), data)
  const up = await runCli(
    ['image', 'upload', join(dir, 'disk.raw'), '--sr', sr.uuid, '--name', 'cli-raw', ...conn, '--json'],
    env,
  )
  assert.equal(up.code, 0, up.stderr)
  const r = JSON.parse(up.stdout) as UploadJson
  assert.deepEqual(Object.keys(r).sort(), [
    'bytes',
    'file',
    'format',
    'mib_per_second',
    'seconds',
    'sr',
    'vdi',
    'virtual_size',
  ])
  assert.equal(r.format, 'raw')
  assert.equal(r.bytes, data.length)
  assert.equal(r.virtual_size, data.length)
  assert.equal(r.sr.uuid, sr.uuid)
  assert.equal(r.vdi.name_label, 'cli-raw')
  assert.match(r.vdi.ref, /^OpaqueRef:/)
  assert.equal(typeof r.mib_per_second, 'number')
  const vdiRef = (await xapi.call('VDI.get_by_uuid', r.vdi.uuid)) as string
  assert.equal(Number(await xapi.call('VDI.get_virtual_size', vdiRef)), data.length)
  assert.equal(await xapi.call('VDI.get_SR', vdiRef), r.sr.ref)

  const out = join(dir, 'back.raw')
  const ex = await runCli(['image', 'export', r.vdi.uuid, out, ...conn, '--json'], env)
  assert.equal(ex.code, 0, ex.stderr)
  const e = JSON.parse(ex.stdout) as { bytes: number; format: string; vdi: { uuid: string } }
  assert.equal(e.bytes, data.length)
  assert.equal(e.format, 'raw')
  assert.equal(e.vdi.uuid, r.vdi.uuid)
  assert.ok(readFileSync(out).equals(data), 'exported bytes equal the uploaded ones')
  assert.ok(!existsSync(`${out}.part`))
})

test('image upload of the TestVM VHD (format found from its footer): the VDI holds the disk; plain progress lines without a terminal', async (t) => {
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  const dir = tmp('xs-image-cli-vhd-')
  const img = await buildTestVm(dir)
  const up = await runCli(['image', 'upload', img.vhdPath, '--sr', sr.uuid, ...conn], env)
  assert.equal(up.code, 0, up.stderr)
  assert.match(
    up.stdout,
    /^imported .*testvm\.vhd \(vhd, 2\.0 MiB\) into VDI [0-9a-f-]{36} on SR .+: [\d.]+ s, [\d.]+ MiB\/s\n$/,
  )
  assert.deepEqual(
    up.stderr
      .trim()
      .split('\n')
      .map((l) => l.replace(/ \(.*\)$/, '')),
    [
      'uploading testvm.vhd: 25%',
      'uploading testvm.vhd: 50%',
      'uploading testvm.vhd: 75%',
      'uploading testvm.vhd: 100%',
    ],
  )
  const uuid = /into VDI ([0-9a-f-]{36})/.exec(up.stdout)![1]
  const ref = (await xapi.call('VDI.get_by_uuid', uuid)) as string
  assert.equal(Number(await xapi.call('VDI.get_virtual_size', ref)), TESTVM_DISK_SIZE)
  const out = join(dir, 'testvm.raw')
  const ex = await runCli(['image', 'export', uuid, out, ...conn, '--format', 'raw'], env)
  assert.equal(ex.code, 0, ex.stderr)
  const disk = readFileSync(out)
  assert.equal(disk.length, TESTVM_DISK_SIZE)
  assert.ok(disk.subarray(0, 512).equals(bootSector()))
  assert.ok(disk.subarray(512).every((b) => b === 0))
  // exported as VHD, qemu-img reads the same disk
  const vhdOut = join(dir, 'back.vhd')
  const exv = await runCli(['image', 'export', uuid, vhdOut, ...conn, '--format', 'vhd', '--json'], env)
  assert.equal(exv.code, 0, exv.stderr)
  assert.equal((JSON.parse(exv.stdout) as { format: string }).format, 'vhd')
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', vhdOut], { encoding: 'utf8' })) as {
    format: string
    'virtual-size': number
  }
  assert.equal(info.format, 'vpc')
  assert.equal(info['virtual-size'], TESTVM_DISK_SIZE)
  execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'vpc', out, vhdOut])
})

test('image errors: unknown SR (exit 3), not a VHD (exit 5), bad --format (exit 2), wrong password (exit 4, password not shown)', async () => {
  const dir = tmp('xs-image-cli-err-')
  writeFileSync(join(dir, 'disk.raw'), Buffer.alloc(4096, 1))
  const noSr = await runCli(['image', 'upload', join(dir, 'disk.raw'), '--sr', 'no-such-sr', ...conn], env)
  assert.equal(noSr.code, 3)
  assert.match(noSr.stderr, /no SR "no-such-sr" in the pool at http:\/\/127\.0\.0\.1:\d+/)
  assert.match(noSr.stderr, /xenstack xapi sr-list/)
  // the default pool has a "Local storage" SR on each host: a name must be unique
  const ambiguous = await runCli(['image', 'upload', join(dir, 'disk.raw'), '--sr', sr.name, ...conn], env)
  assert.equal(ambiguous.code, 2)
  assert.match(ambiguous.stderr, new RegExp(`2 SRs are named "${sr.name}"`))
  assert.match(ambiguous.stderr, /hint: name one by uuid: [0-9a-f-]{36}, [0-9a-f-]{36}/)
  const notVhd = await runCli(
    ['image', 'upload', join(dir, 'disk.raw'), '--sr', sr.uuid, '--format', 'vhd', ...conn],
    env,
  )
  assert.equal(notVhd.code, 5)
  assert.match(notVhd.stderr, /disk\.raw is not a VHD: no "conectix" footer/)
  const badFormat = await runCli(
    ['image', 'upload', join(dir, 'disk.raw'), '--sr', sr.uuid, '--format', 'qcow2', ...conn],
    env,
  )
  assert.equal(badFormat.code, 2)
  assert.match(badFormat.stderr, /--format qcow2: expected vhd or raw/)
  const missing = await runCli(['image', 'upload', join(dir, 'nope.vhd'), '--sr', sr.uuid, ...conn], env)
  assert.equal(missing.code, 3)
  assert.match(missing.stderr, /nope\.vhd: ENOENT/)
  const noVdi = await runCli(['image', 'export', '00000000-0000-4000-8000-000000000000', join(dir, 'x'), ...conn], env)
  assert.equal(noVdi.code, 3)
  assert.match(noVdi.stderr, /no VDI "00000000-0000-4000-8000-000000000000"/)
  assert.ok(!existsSync(join(dir, 'x')) && !existsSync(join(dir, 'x.part')))

  const wrong = 'Wr0ng-pa55word-xyz'
  const denied = await runCli(['image', 'upload', join(dir, 'disk.raw'), '--sr', sr.uuid, ...conn], {
    ...env,
    XENSTACK_XAPI_PASSWORD: wrong,
  })
  assert.equal(denied.code, 4)
  assert.match(denied.stderr, /login as root refused \(SESSION_AUTHENTICATION_FAILED\)/)
  assert.ok(!denied.stdout.includes(wrong) && !denied.stderr.includes(wrong), 'the password is not shown')
  // nothing was created by the failed calls
  const vdis = (await xapi.call('VDI.get_all_records')) as Record<string, { name_label: string }>
  assert.ok(!Object.values(vdis).some((v) => v.name_label === 'disk.raw'))
})

test("image upload on a terminal draws a progress bar with throughput (through script(1)'s pseudo-terminal)", async (t) => {
  if (!requirePrerequisite(t, 'script (util-linux)', () => hasExecutable('script'))) return
  const dir = tmp('xs-image-cli-tty-')
  writeFileSync(join(dir, 'tty.raw'), randomBytes(2 * 1024 * 1024))
  const cmd = [process.execPath, cliBin, 'image', 'upload', join(dir, 'tty.raw'), '--sr', sr.uuid, ...conn]
    .map((a) => `'${a}'`)
    .join(' ')
  const out = await new Promise<{ code: number | null; text: string }>((resolve, reject) => {
    const p = spawn('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, ...env, XENSTACK_POOL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let text = ''
    p.stdout.on('data', (b: Buffer) => (text += b.toString()))
    p.stderr.on('data', (b: Buffer) => (text += b.toString()))
    p.on('error', reject)
    p.on('exit', (code) => resolve({ code, text }))
  })
  assert.equal(out.code, 0, out.text)
  // the terminal's cursor/colour escapes (ESC [ … letter) removed to read the text
  // eslint-disable-next-line no-control-regex
  const plain = out.text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
  assert.match(plain, /uploading tty\.raw \[[█░]+\] 100% 2\.0 MiB\/2\.0 MiB [\d.]+ MiB\/s/)
  assert.match(plain, /imported .*tty\.raw \(raw, 2\.0 MiB\) into VDI/)
  assert.ok(!plain.includes(PASSWORD))
})
