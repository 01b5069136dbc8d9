/**
 * VHD (Microsoft Virtual Hard Disk, the format XenServer's blktap uses) — reading fixed and dynamic images into a
 * raw sparse file, and writing a raw file out as a fixed or dynamic image.
 *
 * Layout (all integers big-endian):
 *  - fixed:   <raw data, current_size bytes> <footer 512>
 *  - dynamic: <footer copy 512> <dynamic header 1024 at footer.data_offset> <BAT at header.table_offset:
 *             max_table_entries × u32 sector offsets, 0xFFFFFFFF = unallocated, padded to a sector>
 *             <blocks: sector bitmap (block_size/512 bits, padded to a sector) + block_size bytes> <footer 512>
 * Checksums are the one's complement of the byte sum of the structure with its checksum field zeroed.
 * Differencing disks (type 4) are rejected: XAPI's raw import takes the leaf contents only.
 */
import { randomUUID } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'

export const VHD_SECTOR = 512
export const VHD_DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
const FOOTER_COOKIE = 'conectix'
const HEADER_COOKIE = 'cxsparse'
const UNALLOCATED = 0xffffffff
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z). */
const VHD_EPOCH = 946684800

export type VhdDiskType = 'fixed' | 'dynamic'

export class VhdFormatError extends Error {
  constructor(
    readonly field: string,
    readonly offset: number,
    message: string,
  ) {
    super(`invalid VHD: ${field} at byte ${offset}: ${message}`)
    this.name = 'VhdFormatError'
  }
}

export interface VhdFooter {
  features: number
  formatVersion: number
  dataOffset: bigint
  timestamp: number
  creatorApp: string
  creatorVersion: number
  creatorHostOs: number
  originalSize: number
  currentSize: number
  geometry: { cylinders: number; heads: number; sectorsPerTrack: number }
  diskType: number
  checksum: number
  uuid: string
  savedState: number
}

export interface VhdDynamicHeader {
  dataOffset: bigint
  tableOffset: number
  headerVersion: number
  maxTableEntries: number
  blockSize: number
  checksum: number
}

/** One's complement of the byte sum, with the 4 checksum bytes at `checksumAt` counted as zero. */
export function vhdChecksum(buf: Buffer, checksumAt: number): number {
  let sum = 0
  for (let i = 0; i < buf.length; i++) if (i < checksumAt || i >= checksumAt + 4) sum += buf[i]
  return ~sum >>> 0
}

/** CHS geometry exactly as the VHD specification (appendix "CHS calculation") derives it. */
export function chsGeometry(size: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  let totalSectors = Math.floor(size / VHD_SECTOR)
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255
  let spt: number
  let heads: number
  let cth: number
  if (totalSectors >= 65535 * 16 * 63) {
    spt = 255
    heads = 16
    cth = Math.floor(totalSectors / spt)
  } else {
    spt = 17
    cth = Math.floor(totalSectors / spt)
    heads = Math.floor((cth + 1023) / 1024)
    if (heads < 4) heads = 4
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31
      heads = 16
      cth = Math.floor(totalSectors / spt)
    }
    if (cth >= heads * 1024) {
      spt = 63
      heads = 16
      cth = Math.floor(totalSectors / spt)
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt }
}

function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex')
}
function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

export function encodeFooter(opts: {
  size: number
  type: VhdDiskType
  uuid?: string
  timestamp?: Date
  /** Where the dynamic header lives (dynamic only); 512 by convention. */
  dataOffset?: number
}): Buffer {
  const b = Buffer.alloc(VHD_SECTOR)
  b.write(FOOTER_COOKIE, 0, 'ascii')
  b.writeUInt32BE(2, 8) // features: "reserved" bit, always set
  b.writeUInt32BE(0x00010000, 12)
  if (opts.type === 'fixed') b.writeBigUInt64BE(0xffffffffffffffffn, 16)
  else b.writeBigUInt64BE(BigInt(opts.dataOffset ?? VHD_SECTOR), 16)
  const ts = Math.max(0, Math.floor((opts.timestamp ?? new Date()).getTime() / 1000) - VHD_EPOCH)
  b.writeUInt32BE(ts >>> 0, 24)
  // Creator "tap\0" is what XenServer's blktap writes; readers (qemu included) then trust current_size over CHS.
  b.write('tap\0', 28, 'latin1')
  b.writeUInt32BE(0x00010003, 32)
  b.writeUInt32BE(0x00000000, 36) // creator host OS: XenServer writes 0
  b.writeBigUInt64BE(BigInt(opts.size), 40)
  b.writeBigUInt64BE(BigInt(opts.size), 48)
  const g = chsGeometry(opts.size)
  b.writeUInt16BE(g.cylinders, 56)
  b.writeUInt8(g.heads, 58)
  b.writeUInt8(g.sectorsPerTrack, 59)
  b.writeUInt32BE(opts.type === 'fixed' ? 2 : 3, 60)
  uuidToBytes(opts.uuid ?? randomUUID()).copy(b, 68)
  b.writeUInt32BE(vhdChecksum(b, 64), 64)
  return b
}

export function decodeFooter(b: Buffer, at = 0): VhdFooter {
  if (b.length < VHD_SECTOR) throw new VhdFormatError('footer', at, `expected 512 bytes, got ${b.length}`)
  const cookie = b.toString('latin1', 0, 8)
  if (cookie !== FOOTER_COOKIE)
    throw new VhdFormatError('footer.cookie', at, `expected "conectix", got ${JSON.stringify(cookie)}`)
  const checksum = b.readUInt32BE(64)
  const expected = vhdChecksum(b.subarray(0, VHD_SECTOR), 64)
  if (checksum !== expected)
    throw new VhdFormatError(
      'footer.checksum',
      at + 64,
      `expected 0x${expected.toString(16)}, got 0x${checksum.toString(16)}`,
    )
  const diskType = b.readUInt32BE(60)
  return {
    features: b.readUInt32BE(8),
    formatVersion: b.readUInt32BE(12),
    dataOffset: b.readBigUInt64BE(16),
    timestamp: b.readUInt32BE(24),
    creatorApp: b.toString('latin1', 28, 32),
    creatorVersion: b.readUInt32BE(32),
    creatorHostOs: b.readUInt32BE(36),
    originalSize: Number(b.readBigUInt64BE(40)),
    currentSize: Number(b.readBigUInt64BE(48)),
    geometry: { cylinders: b.readUInt16BE(56), heads: b.readUInt8(58), sectorsPerTrack: b.readUInt8(59) },
    diskType,
    checksum,
    uuid: bytesToUuid(b.subarray(68, 84)),
    savedState: b.readUInt8(84),
  }
}

export function encodeDynamicHeader(opts: { maxTableEntries: number; blockSize: number; tableOffset: number }): Buffer {
  const b = Buffer.alloc(1024)
  b.write(HEADER_COOKIE, 0, 'ascii')
  b.writeBigUInt64BE(0xffffffffffffffffn, 8)
  b.writeBigUInt64BE(BigInt(opts.tableOffset), 16)
  b.writeUInt32BE(0x00010000, 24)
  b.writeUInt32BE(opts.maxTableEntries, 28)
  b.writeUInt32BE(opts.blockSize, 32)
  b.writeUInt32BE(vhdChecksum(b, 36), 36)
  return b
}

export function decodeDynamicHeader(b: Buffer, at: number): VhdDynamicHeader {
  if (b.length < 1024) throw new VhdFormatError('dynamic header', at, `expected 1024 bytes, got ${b.length}`)
  const cookie = b.toString('latin1', 0, 8)
  if (cookie !== HEADER_COOKIE)
    throw new VhdFormatError('header.cookie', at, `expected "cxsparse", got ${JSON.stringify(cookie)}`)
  const checksum = b.readUInt32BE(36)
  const expected = vhdChecksum(b.subarray(0, 1024), 36)
  if (checksum !== expected)
    throw new VhdFormatError(
      'header.checksum',
      at + 36,
      `expected 0x${expected.toString(16)}, got 0x${checksum.toString(16)}`,
    )
  const blockSize = b.readUInt32BE(32)
  if (blockSize === 0 || blockSize % VHD_SECTOR !== 0)
    throw new VhdFormatError('header.block_size', at + 32, `expected a non-zero multiple of 512, got ${blockSize}`)
  return {
    dataOffset: b.readBigUInt64BE(8),
    tableOffset: Number(b.readBigUInt64BE(16)),
    headerVersion: b.readUInt32BE(24),
    maxTableEntries: b.readUInt32BE(28),
    blockSize,
    checksum,
  }
}

async function readExactly(fh: FileHandle, length: number, position: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(length)
  const { bytesRead } = await fh.read(buf, 0, length, position)
  if (bytesRead !== length)
    throw new VhdFormatError(what, position, `file ends after ${bytesRead} of ${length} bytes (truncated image)`)
  return buf
}

const isZero = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

const PAGE = 4096

/** Writes buf at pos, skipping 4 KiB pages that are all zeros so the destination stays sparse. */
export async function writeSparse(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let runStart = -1
  for (let off = 0; off < buf.length; off += PAGE) {
    const end = Math.min(off + PAGE, buf.length)
    const zero = isZero(buf.subarray(off, end))
    if (!zero && runStart < 0) runStart = off
    if (zero && runStart >= 0) {
      await fh.write(buf, runStart, off - runStart, pos + runStart)
      runStart = -1
    }
  }
  if (runStart >= 0) await fh.write(buf, runStart, buf.length - runStart, pos + runStart)
}

/**
 * Writes buf over existing contents at pos: only 4 KiB pages that differ from what is there are written, so zeros
 * written over zeros (holes) keep the file sparse while zeros over data do overwrite it.
 */
export async function writeOver(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  const old = Buffer.alloc(buf.length)
  const { bytesRead } = await fh.read(old, 0, buf.length, pos)
  if (bytesRead < buf.length) old.fill(0, bytesRead)
  let runStart = -1
  for (let off = 0; off < buf.length; off += PAGE) {
    const end = Math.min(off + PAGE, buf.length)
    const same = buf.subarray(off, end).equals(old.subarray(off, end))
    if (!same && runStart < 0) runStart = off
    if (same && runStart >= 0) {
      await fh.write(buf, runStart, off - runStart, pos + runStart)
      runStart = -1
    }
  }
  if (runStart >= 0) await fh.write(buf, runStart, buf.length - runStart, pos + runStart)
}

export interface VhdInfo {
  type: VhdDiskType
  virtualSize: number
  footer: VhdFooter
}

/** Reads the footer (from the end of the file) and says what kind of image it is. */
export async function inspectVhd(path: string): Promise<VhdInfo> {
  const fh = await open(path, 'r')
  try {
    const { size } = await fh.stat()
    if (size < VHD_SECTOR) throw new VhdFormatError('footer', 0, `file is ${size} bytes, shorter than a footer`)
    // Some writers leave a 511-byte footer; XenServer and qemu write 512. Try the last 512 bytes, then the copy at 0.
    let footer: VhdFooter
    try {
      footer = decodeFooter(await readExactly(fh, VHD_SECTOR, size - VHD_SECTOR, 'footer'), size - VHD_SECTOR)
    } catch (e) {
      if (!(e instanceof VhdFormatError)) throw e
      try {
        footer = decodeFooter(await readExactly(fh, VHD_SECTOR, 0, 'footer copy'), 0)
      } catch {
        throw e
      }
    }
    if (footer.diskType === 2) return { type: 'fixed', virtualSize: footer.currentSize, footer }
    if (footer.diskType === 3) return { type: 'dynamic', virtualSize: footer.currentSize, footer }
    if (footer.diskType === 4)
      throw new VhdFormatError('footer.disk_type', size - VHD_SECTOR + 60, 'differencing disks are not supported here')
    throw new VhdFormatError(
      'footer.disk_type',
      size - VHD_SECTOR + 60,
      `expected 2 (fixed) or 3 (dynamic), got ${footer.diskType}`,
    )
  } finally {
    await fh.close()
  }
}

/**
 * Writes the contents of the VHD image at `vhdPath` into the raw file `rawPath` (which must already exist; it is
 * truncated to the image's virtual size). Zero blocks are not written, so the raw file stays sparse.
 * Returns the virtual size.
 */
export async function vhdToRaw(vhdPath: string, rawPath: string, opts: { maxSize?: number } = {}): Promise<number> {
  const info = await inspectVhd(vhdPath)
  if (opts.maxSize !== undefined && info.virtualSize > opts.maxSize)
    throw new VhdFormatError(
      'footer.current_size',
      48,
      `image is ${info.virtualSize} bytes, the VDI holds ${opts.maxSize}`,
    )
  const src = await open(vhdPath, 'r')
  const dst = await open(rawPath, 'r+')
  try {
    await dst.truncate(0)
    await dst.truncate(info.virtualSize)
    const chunk = 1024 * 1024
    if (info.type === 'fixed') {
      for (let pos = 0; pos < info.virtualSize; pos += chunk) {
        const n = Math.min(chunk, info.virtualSize - pos)
        const buf = await readExactly(src, n, pos, 'fixed data')
        await writeSparse(dst, buf, pos)
      }
      return info.virtualSize
    }
    const headerAt = Number(info.footer.dataOffset)
    const header = decodeDynamicHeader(await readExactly(src, 1024, headerAt, 'dynamic header'), headerAt)
    const blocksNeeded = Math.ceil(info.virtualSize / header.blockSize)
    if (header.maxTableEntries < blocksNeeded)
      throw new VhdFormatError(
        'header.max_table_entries',
        headerAt + 28,
        `expected at least ${blocksNeeded} entries for ${info.virtualSize} bytes, got ${header.maxTableEntries}`,
      )
    const bat = await readExactly(src, header.maxTableEntries * 4, header.tableOffset, 'BAT')
    const sectorsPerBlock = header.blockSize / VHD_SECTOR
    const bitmapBytes = Math.ceil(Math.ceil(sectorsPerBlock / 8) / VHD_SECTOR) * VHD_SECTOR
    for (let i = 0; i < blocksNeeded; i++) {
      const sector = bat.readUInt32BE(i * 4)
      if (sector === UNALLOCATED) continue
      const blockAt = sector * VHD_SECTOR
      const bitmap = await readExactly(src, bitmapBytes, blockAt, `block ${i} bitmap`)
      const blockStart = i * header.blockSize
      const blockLen = Math.min(header.blockSize, info.virtualSize - blockStart)
      const data = await readExactly(src, blockLen, blockAt + bitmapBytes, `block ${i} data`)
      // Sectors whose bitmap bit is clear read as zeros (they are not present in this image).
      for (let s = 0; s * VHD_SECTOR < blockLen; s++) {
        if ((bitmap[s >> 3] & (0x80 >> (s & 7))) === 0) data.fill(0, s * VHD_SECTOR, (s + 1) * VHD_SECTOR)
      }
      await writeSparse(dst, data, blockStart)
    }
    return info.virtualSize
  } finally {
    await src.close()
    await dst.close()
  }
}

/** A VHD image of a raw file, planned (its length known) before it is produced. */
export interface VhdExport {
  length: number
  chunks(): AsyncGenerator<Buffer>
}

/**
 * Plans a VHD image of the raw file: for dynamic images, one read pass finds the blocks that hold non-zero data
 * (only those are allocated), so the exact length is known for Content-Length before streaming starts.
 */
export async function planVhdExport(
  rawPath: string,
  opts: { type?: VhdDiskType; size?: number; uuid?: string; blockSize?: number } = {},
): Promise<VhdExport> {
  const type = opts.type ?? 'dynamic'
  const blockSize = opts.blockSize ?? VHD_DEFAULT_BLOCK_SIZE
  const fh = await open(rawPath, 'r')
  let size: number
  const allocated: number[] = []
  try {
    size = opts.size ?? (await fh.stat()).size
    if (type === 'dynamic') {
      const buf = Buffer.alloc(blockSize)
      for (let i = 0; i * blockSize < size; i++) {
        const len = Math.min(blockSize, size - i * blockSize)
        const { bytesRead } = await fh.read(buf, 0, len, i * blockSize)
        if (!isZero(buf.subarray(0, bytesRead))) allocated.push(i)
      }
    }
  } finally {
    await fh.close()
  }
  const footer = encodeFooter({ size, type, uuid: opts.uuid })
  const entries = Math.ceil(size / blockSize)
  const tableOffset = VHD_SECTOR + 1024
  const batBytes = Math.ceil((entries * 4) / VHD_SECTOR) * VHD_SECTOR
  const bitmapBytes = Math.ceil(Math.ceil(blockSize / VHD_SECTOR / 8) / VHD_SECTOR) * VHD_SECTOR
  const length =
    type === 'fixed'
      ? size + VHD_SECTOR
      : VHD_SECTOR + 1024 + batBytes + allocated.length * (bitmapBytes + blockSize) + VHD_SECTOR
  async function* chunks(): AsyncGenerator<Buffer> {
    const fh = await open(rawPath, 'r')
    const readAt = async (pos: number, len: number): Promise<Buffer> => {
      const buf = Buffer.alloc(len)
      const { bytesRead } = await fh.read(buf, 0, len, pos)
      if (bytesRead < len) buf.fill(0, bytesRead) // beyond the end of a short raw file reads as zeros
      return buf
    }
    try {
      if (type === 'fixed') {
        const chunk = 1024 * 1024
        for (let pos = 0; pos < size; pos += chunk) yield await readAt(pos, Math.min(chunk, size - pos))
        yield footer
        return
      }
      const bat = Buffer.alloc(batBytes, 0xff)
      let next = (tableOffset + batBytes) / VHD_SECTOR
      for (const i of allocated) {
        bat.writeUInt32BE(next, i * 4)
        next += (bitmapBytes + blockSize) / VHD_SECTOR
      }
      yield footer
      yield encodeDynamicHeader({ maxTableEntries: entries, blockSize, tableOffset })
      yield bat
      // Every sector of an allocated block is marked present.
      const bitmap = Buffer.alloc(bitmapBytes, 0)
      bitmap.fill(0xff, 0, blockSize / VHD_SECTOR / 8)
      for (const i of allocated) {
        yield bitmap
        const len = Math.min(blockSize, size - i * blockSize)
        yield await readAt(i * blockSize, blockSize).then((b) => (len === blockSize ? b : b.fill(0, len)))
      }
      yield footer
    } finally {
      await fh.close()
    }
  }
  return { length, chunks }
}
