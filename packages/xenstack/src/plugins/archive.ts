/**
 * Plugin archives: a gzip'd POSIX ustar file written and read in pure Node (no tar binary, no native module).
 * Layout: `<name>-<version>/` + the plugin's files + `checksums.sha256` (`<sha256>  <path>` per file, like
 * fpb's checksums.sha1 but with SHA-256). Archives are reproducible: fixed mtime, sorted entries, uid/gid 0.
 */
import { createHash } from 'node:crypto'
import { gunzipSync, gzipSync } from 'node:zlib'

export interface ArchiveEntry {
  path: string
  data: Buffer
  mode: number
}

export const CHECKSUMS_FILE = 'checksums.sha256'

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0'
}

function header(path: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512)
  let name = path
  let prefix = ''
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf('/', 155)
    if (cut <= 0 || Buffer.byteLength(path.slice(cut + 1)) > 100) {
      throw new Error(`path too long for a tar archive (max 255 bytes with a "/" near the middle): ${path}`)
    }
    prefix = path.slice(0, cut)
    name = path.slice(cut + 1)
  }
  h.write(name, 0, 100, 'utf8')
  h.write(octal(mode & 0o7777, 8), 100, 'ascii')
  h.write(octal(0, 8), 108, 'ascii')
  h.write(octal(0, 8), 116, 'ascii')
  h.write(octal(size, 12), 124, 'ascii')
  h.write(octal(0, 12), 136, 'ascii')
  h.write('        ', 148, 'ascii')
  h.write(type, 156, 'ascii')
  h.write('ustar\0', 257, 'ascii')
  h.write('00', 263, 'ascii')
  h.write('root', 265, 'ascii')
  h.write('root', 297, 'ascii')
  h.write(prefix, 345, 155, 'utf8')
  let sum = 0
  for (const b of h) sum += b
  h.write(octal(sum, 7) + ' ', 148, 'ascii')
  return h
}

/** Writes entries (sorted, directories implied) as a .tar.gz buffer. */
export function writeTarGz(entries: ArchiveEntry[]): Buffer {
  const blocks: Buffer[] = []
  const dirs = new Set<string>()
  for (const e of [...entries].sort((a, b) => a.path.localeCompare(b.path))) {
    const parts = e.path.split('/')
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/') + '/'
      if (!dirs.has(d)) {
        dirs.add(d)
        blocks.push(header(d, 0, 0o755, '5'))
      }
    }
    blocks.push(header(e.path, e.data.length, e.mode, '0'), e.data)
    const pad = (512 - (e.data.length % 512)) % 512
    if (pad) blocks.push(Buffer.alloc(pad))
  }
  blocks.push(Buffer.alloc(1024))
  return gzipSync(Buffer.concat(blocks), { level: 9 })
}

/** Reads a .tar.gz buffer; throws a clear error on a corrupt archive. Only regular files are returned. */
export function readTarGz(buf: Buffer, name = 'archive'): ArchiveEntry[] {
  let tar: Buffer
  try {
    tar = gunzipSync(buf)
  } catch (e) {
    throw new Error(
      `${name}: not a gzip file (${(e as Error).message}); expected a plugin .tar.gz made by "xenstack plugins build"`,
    )
  }
  const out: ArchiveEntry[] = []
  let off = 0
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512)
    if (h.every((b) => b === 0)) break
    const str = (a: number, n: number) => h.toString('utf8', a, a + n).replace(/\0.*$/s, '')
    const size = parseInt(str(124, 12).trim() || '0', 8)
    const type = str(156, 1) || '0'
    let sum = 0
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]
    if (sum !== parseInt(str(148, 8).trim(), 8)) throw new Error(`${name}: corrupt tar header at byte ${off}`)
    const prefix = str(345, 155)
    const path = (prefix ? prefix + '/' : '') + str(0, 100)
    const mode = parseInt(str(100, 8).trim() || '644', 8)
    const dataStart = off + 512
    if (dataStart + size > tar.length) throw new Error(`${name}: truncated archive (entry ${path})`)
    if (type === '0' || type === '\0')
      out.push({ path, data: Buffer.from(tar.subarray(dataStart, dataStart + size)), mode })
    off = dataStart + Math.ceil(size / 512) * 512
  }
  return out
}

export function checksumsText(files: { path: string; data: Buffer }[]): string {
  return [...files]
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((f) => `${sha256(f.data)}  ${f.path}\n`)
    .join('')
}

/** fpb's checksum list in Fuel-built `.fp` packages (package_version 1.0.0): SHA-1, paths written `./path`. */
export const FUEL_CHECKSUMS_FILE = 'checksums.sha1'

/**
 * Verifies the checksum list against the files: every file listed, every listed file present with its digest.
 * xenstack archives carry `checksums.sha256`; Fuel's `.fp` packages carry `checksums.sha1`, accepted too.
 * Returns the problems (empty when the archive is intact).
 */
export function verifyChecksums(files: Map<string, Buffer>): string[] {
  const name = files.has(CHECKSUMS_FILE)
    ? CHECKSUMS_FILE
    : files.has(FUEL_CHECKSUMS_FILE)
      ? FUEL_CHECKSUMS_FILE
      : undefined
  if (!name) return [`${CHECKSUMS_FILE} is missing (expected a checksum list made by "xenstack plugins build")`]
  const algorithm = name === CHECKSUMS_FILE ? 'sha256' : 'sha1'
  const hexLength = algorithm === 'sha256' ? 64 : 40
  const digest = (d: Buffer) => createHash(algorithm).update(d).digest('hex')
  const problems: string[] = []
  const listed = new Map<string, string>()
  files
    .get(name)!
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .forEach((line, i) => {
      const m = new RegExp(`^([0-9a-f]{${hexLength}}) [ *](.+)$`).exec(line)
      if (!m) problems.push(`${name}:${i + 1}: expected "<${algorithm}>  <path>", found ${JSON.stringify(line)}`)
      else listed.set(m[2].replace(/^\.\//, ''), m[1])
    })
  for (const [path, expected] of listed) {
    const data = files.get(path)
    if (!data) problems.push(`${path}: listed in ${name} but missing from the archive`)
    else if (digest(data) !== expected)
      problems.push(`${path}: checksum mismatch (expected ${expected}, found ${digest(data)})`)
  }
  for (const path of files.keys()) {
    if (path !== name && !listed.has(path)) problems.push(`${path}: not listed in ${name}`)
  }
  return problems
}
