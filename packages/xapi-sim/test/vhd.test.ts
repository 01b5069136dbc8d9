/**
 * The VHD codec against an independent implementation: qemu-img (Debian qemu-utils) produces fixed and dynamic
 * VHDs that we import, and reads back the VHDs we export (`qemu-img info` and `qemu-img compare`, which walks every
 * block through qemu's own vpc driver; `qemu-img check` does not support vpc images).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  mkdtempSync,
  rmSync,
  writeFileSync,
  readFileSync,
  openSync,
  writeSync,
  closeSync,
  statSync,
  createWriteStream,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { requirePrerequisite, hasExecutable } from '@xenstack/testkit'
import {
  vhdToRaw,
  planVhdExport,
  inspectVhd,
  chsGeometry,
  encodeFooter,
  decodeFooter,
  VhdFormatError,
} from '../src/vhd.js'

const MiB = 1024 * 1024
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex')
const qemu = (...args: string[]) => execFileSync('qemu-img', args, { encoding: 'utf8' })

/** A 9 MiB raw disk (4.5 VHD blocks) with data at the start, mid-block, across a block edge and in the last sector. */
function makeRaw(dir: string): string {
  const p = join(dir, 'disk.raw')
  writeFileSync(p, '')
  const fd = openSync(p, 'r+')
  writeSync(fd, randomBytes(64 * 1024), 0, 64 * 1024, 0)
  writeSync(fd, randomBytes(4096), 0, 4096, 3 * MiB + 512)
  writeSync(fd, randomBytes(8192), 0, 8192, 4 * MiB - 4096)
  writeSync(fd, randomBytes(512), 0, 512, 9 * MiB - 512)
  closeSync(fd)
  return p
}

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xsim-vhd-'))
    try {
      await fn(dir)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

for (const subformat of ['dynamic', 'fixed'] as const) {
  test(`imports a ${subformat} VHD written by qemu-img into the same raw contents, sparse`, async (t) => {
    if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
    await withDir(async (dir) => {
      const raw = makeRaw(dir)
      const vhd = join(dir, 'disk.vhd')
      qemu('convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${subformat},force_size=on`, raw, vhd)
      const info = await inspectVhd(vhd)
      assert.equal(info.type, subformat)
      assert.equal(info.virtualSize, 9 * MiB)
      const out = join(dir, 'out.raw')
      writeFileSync(out, '')
      assert.equal(await vhdToRaw(vhd, out), 9 * MiB)
      assert.equal(statSync(out).size, 9 * MiB)
      assert.equal(sha(out), sha(raw))
      // Zero regions were not written: far fewer blocks allocated than the virtual size.
      assert.ok(
        statSync(out).blocks * 512 < 2 * MiB,
        `expected a sparse file, ${statSync(out).blocks * 512} bytes used`,
      )
    })()
  })

  test(`exports a ${subformat} VHD that qemu-img reads as the same disk`, async (t) => {
    if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
    await withDir(async (dir) => {
      const raw = makeRaw(dir)
      const vhd = join(dir, 'export.vhd')
      const plan = await planVhdExport(raw, { type: subformat })
      await pipeline(Readable.from(plan.chunks()), createWriteStream(vhd))
      assert.equal(statSync(vhd).size, plan.length)
      const info = JSON.parse(qemu('info', '--output=json', '-f', 'vpc', vhd))
      assert.equal(info['virtual-size'], 9 * MiB)
      assert.equal(info.format, 'vpc')
      qemu('compare', '-f', 'vpc', '-F', 'raw', vhd, raw) // exits non-zero on any difference
      const back = join(dir, 'back.raw')
      qemu('convert', '-f', 'vpc', '-O', 'raw', vhd, back)
      assert.equal(sha(back), sha(raw))
      if (subformat === 'dynamic') {
        // Blocks 0, 1, 2 (two edits) and 4 hold data; block 3 is all zeros and must not be allocated.
        assert.equal(plan.length, 512 + 1024 + 512 + 4 * (512 + 2 * MiB) + 512)
      }
      // Our export imports back to the same bytes, too.
      const again = join(dir, 'again.raw')
      writeFileSync(again, '')
      await vhdToRaw(vhd, again)
      assert.equal(sha(again), sha(raw))
    })()
  })
}

test('rejects a VHD whose footer checksum is wrong, naming the field and offset', async () => {
  await withDir(async (dir) => {
    const footer = encodeFooter({ size: 4 * MiB, type: 'fixed' })
    footer[48] ^= 0xff // corrupt current_size without fixing the checksum
    const p = join(dir, 'bad.vhd')
    writeFileSync(p, Buffer.concat([Buffer.alloc(4 * MiB), footer]))
    await assert.rejects(inspectVhd(p), (e: unknown) => {
      assert.ok(e instanceof VhdFormatError)
      assert.equal(e.field, 'footer.checksum')
      assert.match(e.message, /footer\.checksum at byte \d+: expected 0x[0-9a-f]+, got 0x[0-9a-f]+/)
      return true
    })
  })()
})

test('rejects a file that is not a VHD with the cookie it found', async () => {
  await withDir(async (dir) => {
    const p = join(dir, 'not.vhd')
    writeFileSync(p, Buffer.alloc(4096, 0x41))
    await assert.rejects(inspectVhd(p), /footer\.cookie at byte 3584: expected "conectix", got "AAAAAAAA"/)
  })()
})

test('CHS geometry follows the VHD specification', () => {
  // 127 GiB and beyond saturates at 65535 × 16 × 255.
  assert.deepEqual(chsGeometry(200 * 1024 ** 3), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 })
  // 10 MiB = 20480 sectors → 17 sectors/track, 4 heads, 301 cylinders.
  assert.deepEqual(chsGeometry(10 * MiB), { cylinders: 301, heads: 4, sectorsPerTrack: 17 })
  const f = decodeFooter(
    encodeFooter({ size: 10 * MiB, type: 'dynamic', uuid: '01234567-89ab-cdef-0123-456789abcdef' }),
  )
  assert.equal(f.uuid, '01234567-89ab-cdef-0123-456789abcdef')
  assert.equal(f.currentSize, 10 * MiB)
  assert.equal(f.diskType, 3)
  assert.equal(f.creatorApp, 'tap\0')
})
