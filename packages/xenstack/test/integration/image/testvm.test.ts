import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import {
  TESTVM_DISK_SIZE,
  TESTVM_MESSAGE,
  bootSector,
  buildTestVm,
  testVmDir,
  vhdChecksum,
} from '../../../src/integration/image/testvm.js'

const tmp = scratchDirs()

test('TestVM is a valid dynamic VHD of a bootable disk, packed as 0.vhd in a tgz; qemu-img reads back the same disk', async (t) => {
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  const dir = tmp('xs-testvm-')
  const img = await buildTestVm(dir)
  assert.equal(img.built, true)
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', img.vhdPath], { encoding: 'utf8' })) as {
    format: string
    'virtual-size': number
    'cluster-size'?: number
  }
  assert.equal(info.format, 'vpc')
  assert.equal(info['virtual-size'], TESTVM_DISK_SIZE)
  const vhd = readFileSync(img.vhdPath)
  const footer = vhd.subarray(vhd.length - 512)
  assert.equal(footer.toString('latin1', 0, 8), 'conectix')
  assert.equal(footer.readUInt32BE(60), 3, 'disk type 3: dynamic')
  assert.equal(footer.readUInt32BE(64), vhdChecksum(footer), 'footer checksum valid')
  assert.ok(vhd.subarray(0, 512).equals(footer), 'the footer copy at the start matches')
  assert.ok(vhd.length < 3 * 1024 * 1024, `only the allocated block is stored (${vhd.length} bytes)`)
  // back to raw: the boot sector, then zeros
  const raw = join(dir, 'back.raw')
  execFileSync('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', img.vhdPath, raw])
  const disk = readFileSync(raw)
  assert.equal(disk.length, TESTVM_DISK_SIZE)
  assert.ok(disk.subarray(0, 512).equals(bootSector()))
  assert.equal(disk[510], 0x55)
  assert.equal(disk[511], 0xaa)
  assert.ok(disk.subarray(0, 512).includes(Buffer.from(TESTVM_MESSAGE, 'latin1')))
  assert.ok(disk.subarray(512).every((b) => b === 0))
  // the Glance payload: a ustar archive holding exactly 0.vhd with the VHD's bytes
  const tar = gunzipSync(readFileSync(img.tgzPath))
  assert.equal(tar.toString('latin1', 0, 5), '0.vhd')
  assert.equal(tar.toString('latin1', 257, 262), 'ustar')
  const size = parseInt(tar.toString('latin1', 124, 135), 8)
  assert.equal(size, vhd.length)
  assert.ok(tar.subarray(512, 512 + size).equals(vhd))
  const listing = execFileSync('tar', ['-tzvf', img.tgzPath], { encoding: 'utf8' })
  assert.match(listing, /^-rw-r--r-- 0\/0 +2100224 1970-01-01 00:00 0\.vhd\n$/)
})

test('TestVM builds are deterministic; the cache is reused, and rebuilt when damaged', async (t) => {
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  const a = await buildTestVm(tmp('xs-testvm-a-'))
  const b = await buildTestVm(tmp('xs-testvm-b-'))
  assert.equal(a.vhdSha256, b.vhdSha256)
  assert.equal(a.tgzSha256, b.tgzSha256)
  assert.equal(a.tgzMd5, b.tgzMd5)
  assert.ok(readFileSync(a.tgzPath).equals(readFileSync(b.tgzPath)))
  const dir = tmp('xs-testvm-c-')
  const first = await buildTestVm(dir)
  const again = await buildTestVm(dir)
  assert.equal(again.built, false)
  assert.equal(again.vhdPath, join(testVmDir(dir), 'testvm.vhd'))
  writeFileSync(first.vhdPath, 'damaged')
  const repaired = await buildTestVm(dir)
  assert.equal(repaired.built, true)
  assert.equal(repaired.vhdSha256, a.vhdSha256)
})
