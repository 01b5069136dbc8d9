/**
 * The TestVM image, built by xenstack (no download; offline sites get it too): what the original plugin uploaded as
 * `cirros-0.3.4-x86_64-disk.vhd.tgz`, reduced to a tiny bootable disk.
 *
 * The payload is a 16 MiB raw disk whose first sector is a boot sector xenstack assembles itself: a few bytes of
 * 16-bit code that print "xenstack TestVM booted" on COM1 and the BIOS console and halt (HVM boot), followed by
 * an MBR disk signature and the 0x55AA mark. qemu-img converts it to a **dynamic** VHD (`-O vpc -o
 * subformat=dynamic`): that is the format XenServer's storage keeps VDIs in and what `/import_raw_vdi?format=vhd`,
 * nova's XenAPI glance plugin and os-xenapi's stream_to_vdis consume; only allocated 2 MiB blocks are stored, so
 * the file is ~2 MiB for a 16 MiB disk (a fixed VHD would be the full 16 MiB). The size is a whole number of VHD
 * CHS cylinders (482 × 4 heads × 17 sectors), so qemu-img keeps it exactly and the VHD's size is the raw size.
 *
 * For Glance the VHD is packed the way nova's XenAPI driver expects images with `container_format=ovf,
 * disk_format=vhd`: a gzip'd tar holding `0.vhd` (the VHD chain's leaf), like the cirros .vhd.tgz.
 *
 * Deterministic: the same bytes every build (same qemu-img). qemu-img writes the build time and a random UUID into
 * the VHD footer (and its copy at the start); both are replaced by fixed values (timestamp 0, a UUID derived from
 * the disk's content) and the footer checksum recomputed. The tar has fixed metadata and gzip no name or time.
 *
 * Cached in the data directory (`<data dir>/images/testvm-v<FORMAT>/`) with a manifest of SHA-256 sums; a cached
 * build is reused only when its files still match the manifest.
 */
import { createHash } from 'node:crypto'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { gzipSync } from 'node:zlib'

const execFileP = promisify(execFile)

/** Bumped whenever the payload or packing changes (a new cache directory, a new checksum in Glance). */
export const TESTVM_FORMAT = 1
/** 482 cylinders × 4 heads × 17 sectors × 512 bytes: exactly representable in a VHD's CHS geometry. */
export const TESTVM_DISK_SIZE = 482 * 4 * 17 * 512
export const TESTVM_MESSAGE = 'xenstack TestVM booted\r\n'

export interface TestVmImage {
  /** Dynamic VHD (for `/import_raw_vdi?format=vhd` and `xenstack image upload`). */
  vhdPath: string
  /** gzip'd tar with 0.vhd: what goes to Glance as TestVM. */
  tgzPath: string
  /** Virtual size of the disk in bytes. */
  virtualSize: number
  vhdSha256: string
  tgzSha256: string
  /** md5 of the tgz: the `checksum` Glance reports for the uploaded TestVM. */
  tgzMd5: string
  /** Whether this call built it (false: taken from the cache). */
  built: boolean
}

/** The boot sector: hand-assembled real-mode code (offsets in the comments), then the message. */
export function bootSector(): Buffer {
  const msgOffset = 39
  // prettier-ignore
  const code = [
    0xfa, //                 0: cli
    0x31, 0xc0, //           1: xor ax,ax
    0x8e, 0xd8, //           3: mov ds,ax
    0x8e, 0xc0, //           5: mov es,ax
    0x8e, 0xd0, //           7: mov ss,ax
    0xbc, 0x00, 0x7c, //     9: mov sp,0x7c00
    0xfb, //                12: sti
    0xfc, //                13: cld
    0xbe, (0x7c00 + msgOffset) & 0xff, (0x7c00 + msgOffset) >> 8, // 14: mov si,msg
    0xac, //                17: lodsb                    (loop)
    0x84, 0xc0, //          18: test al,al
    0x74, 0x0d, //          20: jz 35                    (done)
    0xba, 0xf8, 0x03, //    22: mov dx,0x3f8 (COM1)
    0xee, //                25: out dx,al
    0xb4, 0x0e, //          26: mov ah,0x0e (BIOS teletype)
    0xbb, 0x07, 0x00, //    28: mov bx,7
    0xcd, 0x10, //          31: int 0x10
    0xeb, 0xee, //          33: jmp 17
    0xfa, //                35: cli                      (done)
    0xf4, //                36: hlt
    0xeb, 0xfc, //          37: jmp 35
  ]
  if (code.length !== msgOffset) throw new Error(`boot sector code is ${code.length} bytes, expected ${msgOffset}`)
  const s = Buffer.alloc(512)
  Buffer.from(code).copy(s, 0)
  s.write(TESTVM_MESSAGE + '\0', msgOffset, 'latin1')
  s.write('XSTV', 440, 'latin1') // MBR disk signature
  s[510] = 0x55
  s[511] = 0xaa
  return s
}

const VHD_FOOTER = 512

/** VHD footer checksum: ones' complement of the byte sum, the checksum field itself excluded (VHD spec). */
export function vhdChecksum(footer: Buffer): number {
  let sum = 0
  for (let i = 0; i < VHD_FOOTER; i++) if (i < 64 || i > 67) sum += footer[i]
  return ~sum >>> 0
}

/**
 * Replaces qemu-img's build time and random UUID in a VHD's footer (and the dynamic disk's copy of it at offset 0)
 * with fixed values, and recomputes the checksum. Returns the normalised footer.
 */
export function normaliseVhdFooter(vhd: Buffer, uuid: Buffer): Buffer {
  const end = vhd.length - VHD_FOOTER
  const footer = vhd.subarray(end)
  if (footer.toString('latin1', 0, 8) !== 'conectix')
    throw new Error(`not a VHD: no "conectix" footer cookie at byte ${end}`)
  footer.writeUInt32BE(0, 24) // timestamp: seconds since 2000-01-01
  uuid.copy(footer, 68, 0, 16)
  footer.writeUInt32BE(vhdChecksum(footer), 64)
  const diskType = footer.readUInt32BE(60)
  if (diskType === 3 || diskType === 4) {
    // dynamic/differencing disks carry a copy of the footer in their first 512 bytes
    if (vhd.toString('latin1', 0, 8) !== 'conectix') throw new Error('dynamic VHD without its footer copy at byte 0')
    footer.copy(vhd, 0)
  }
  return footer
}

/** A one-file POSIX ustar archive with fixed metadata (mode 0644, uid/gid 0, mtime 0). */
export function tarOneFile(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512)
  const field = (value: string, offset: number, length: number) => h.write(value, offset, length, 'latin1')
  const octal = (n: number, offset: number, length: number) =>
    field(n.toString(8).padStart(length - 1, '0') + '\0', offset, length)
  field(name, 0, 100)
  octal(0o644, 100, 8)
  octal(0, 108, 8)
  octal(0, 116, 8)
  octal(data.length, 124, 12)
  octal(0, 136, 12)
  field('        ', 148, 8) // checksum counted as spaces
  field('0', 156, 1)
  field('ustar\0', 257, 6)
  field('00', 263, 2)
  let sum = 0
  for (const b of h) sum += b
  field(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8)
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512)
  return Buffer.concat([h, data, pad, Buffer.alloc(1024)])
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

interface Manifest {
  format: number
  virtualSize: number
  vhdSha256: string
  tgzSha256: string
  tgzMd5: string
}

/** The directory TestVM is cached in under a data directory. */
export const testVmDir = (dataDir: string): string => join(dataDir, 'images', `testvm-v${TESTVM_FORMAT}`)

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await execFileP('qemu-img', args, { maxBuffer: 1 << 20 })).stdout
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string }
    if (err.code === 'ENOENT')
      throw new Error('qemu-img is not installed (Debian package qemu-utils; run scripts/setup.sh)')
    throw new Error(`qemu-img ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`)
  }
}

function cached(dir: string): TestVmImage | undefined {
  const mf = join(dir, 'manifest.json')
  if (!existsSync(mf)) return undefined
  try {
    const m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest
    const vhdPath = join(dir, 'testvm.vhd')
    const tgzPath = join(dir, 'testvm.vhd.tgz')
    if (m.format !== TESTVM_FORMAT) return undefined
    if (sha256(readFileSync(vhdPath)) !== m.vhdSha256 || sha256(readFileSync(tgzPath)) !== m.tgzSha256) return undefined
    return {
      vhdPath,
      tgzPath,
      virtualSize: m.virtualSize,
      vhdSha256: m.vhdSha256,
      tgzSha256: m.tgzSha256,
      tgzMd5: m.tgzMd5,
      built: false,
    }
  } catch {
    return undefined
  }
}

/**
 * Returns TestVM from the cache under `dataDir`, building it first when the cache is missing or damaged.
 * `rebuild` forces a fresh build (the result is the same bytes).
 */
export async function buildTestVm(dataDir: string, opts: { rebuild?: boolean } = {}): Promise<TestVmImage> {
  const dir = testVmDir(dataDir)
  if (!opts.rebuild) {
    const hit = cached(dir)
    if (hit) return hit
  }
  mkdirSync(join(dataDir, 'images'), { recursive: true })
  const work = mkdtempSync(join(dataDir, 'images', '.testvm-build-'))
  try {
    const raw = Buffer.alloc(TESTVM_DISK_SIZE)
    bootSector().copy(raw, 0)
    writeFileSync(join(work, 'testvm.raw'), raw)
    await qemuImg([
      'convert',
      '-q',
      '-f',
      'raw',
      '-O',
      'vpc',
      '-o',
      'subformat=dynamic',
      join(work, 'testvm.raw'),
      join(work, 'testvm.vhd'),
    ])
    const vhd = readFileSync(join(work, 'testvm.vhd'))
    // a stable UUID from the content, shaped as an RFC 4122 version 4 UUID
    const uuid = createHash('sha256').update('xenstack TestVM').update(raw).digest().subarray(0, 16)
    uuid[6] = (uuid[6] & 0x0f) | 0x40
    uuid[8] = (uuid[8] & 0x3f) | 0x80
    const footer = normaliseVhdFooter(vhd, uuid)
    const virtualSize = Number(footer.readBigUInt64BE(48))
    if (virtualSize !== TESTVM_DISK_SIZE)
      throw new Error(`qemu-img made a VHD of ${virtualSize} bytes from a ${TESTVM_DISK_SIZE}-byte disk (CHS rounding)`)
    writeFileSync(join(work, 'testvm.vhd'), vhd)
    // qemu-img must read the normalised file back as the same disk (vpc has no `qemu-img check`)
    await qemuImg(['compare', '-q', '-f', 'raw', '-F', 'vpc', join(work, 'testvm.raw'), join(work, 'testvm.vhd')])
    const tgz = gzipSync(tarOneFile('0.vhd', vhd), { level: 9 })
    writeFileSync(join(work, 'testvm.vhd.tgz'), tgz)
    rmSync(join(work, 'testvm.raw'))
    const manifest: Manifest = {
      format: TESTVM_FORMAT,
      virtualSize,
      vhdSha256: sha256(vhd),
      tgzSha256: sha256(tgz),
      tgzMd5: createHash('md5').update(tgz).digest('hex'),
    }
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')
    // replace the cache in one rename (a concurrent builder makes the same bytes, so losing the race is harmless)
    rmSync(dir, { recursive: true, force: true })
    try {
      renameSync(work, dir)
    } catch (e) {
      if (!cached(dir)) throw e
    }
    return {
      vhdPath: join(dir, 'testvm.vhd'),
      tgzPath: join(dir, 'testvm.vhd.tgz'),
      virtualSize,
      vhdSha256: manifest.vhdSha256,
      tgzSha256: manifest.tgzSha256,
      tgzMd5: manifest.tgzMd5,
      built: true,
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
