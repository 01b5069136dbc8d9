/**
 * VM export and import as XVA (xapi-protocol.md §1: `GET /export`, `PUT /import`), in the format XAPI writes
 * (xen-api `export.ml`, `stream_vdi.ml`):
 *
 * - a tar whose first member is `ova.xml`: an XML-RPC struct `{version: {hostname, date, product_version,
 *   product_brand, build_number, xapi_major, xapi_minor, export_vsn: 2}, objects: [{class, id, snapshot}]}`, every
 *   object's record with its references replaced by export ids `Ref:<n>` (references to objects outside the export
 *   become `OpaqueRef:NULL`, as XAPI's `lookup` does);
 * - then each VDI under its id as a directory, in 1 MiB chunks `Ref:<n>/%08d`, each followed by its checksum member
 *   `Ref:<n>/%08d.xxhash` (XXH64, `%016X`). All-zero chunks are left out except the first and the last, which are
 *   always written; an importer starts from a zeroed disk. On import `.checksum` (SHA-1, hex — what XAPI wrote
 *   before xxhash) is accepted too, and a checksum that does not match fails the import.
 *
 * `use_compression=true` gzips the whole stream; an import detects gzip by its magic. zstd is refused (not built in).
 * Import creates the VM (fresh uuid unless `restore=true`; power state Halted), its VDIs on `sr_id` (else the pool's
 * default SR), VBDs and VIFs; a network is reused when one with the exported bridge, else name label, exists, and
 * created otherwise. The task's result is the set of imported VM refs. What an import created is destroyed again when
 * it fails. Host and guest-metrics objects are not exported (their references are written as NULL).
 */
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { open as fsOpen, type FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import { decodeValue, encodeValue, fromWire } from '@xenstack/xapi-wire'
import { XapiError, toErrorDescription } from './errors.js'
import type { HttpContext } from './http.js'
import { NULL_REF } from './model.js'
import type { DiskStore } from './disk.js'
import type { XapiRecord } from './store.js'

export const XVA_CHUNK = 1024 * 1024
const EXPORT_VSN = 2

// ---- XXH64 (seed 0), the checksum XAPI writes next to every chunk -------------------------------------------------

const M64 = (1n << 64n) - 1n
const P1 = 11400714785074694791n
const P2 = 14029467366897019727n
const P3 = 1609587929392839161n
const P4 = 9650029242287828579n
const P5 = 2870177450012600261n
const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (64n - r))) & M64
const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & M64, 31n) * P1) & M64
const merge = (acc: bigint, v: bigint) => (((acc ^ round(0n, v)) * P1) & M64) + P4

/** XXH64 with seed 0, as `%016X` (XAPI's `.xxhash` member content). */
export function xxh64Hex(buf: Buffer): string {
  const len = buf.length
  let p = 0
  let h: bigint
  if (len >= 32) {
    let v1 = (P1 + P2) & M64
    let v2 = P2
    let v3 = 0n
    let v4 = (M64 + 1n - P1) & M64
    for (const limit = len - 32; p <= limit; p += 32) {
      v1 = round(v1, buf.readBigUInt64LE(p))
      v2 = round(v2, buf.readBigUInt64LE(p + 8))
      v3 = round(v3, buf.readBigUInt64LE(p + 16))
      v4 = round(v4, buf.readBigUInt64LE(p + 24))
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & M64
    h = merge(h, v1) & M64
    h = merge(h, v2) & M64
    h = merge(h, v3) & M64
    h = merge(h, v4) & M64
  } else h = P5
  h = (h + BigInt(len)) & M64
  for (; p + 8 <= len; p += 8) {
    h ^= round(0n, buf.readBigUInt64LE(p))
    h = (rotl(h, 27n) * P1 + P4) & M64
  }
  if (p + 4 <= len) {
    h ^= (BigInt(buf.readUInt32LE(p)) * P1) & M64
    h = (rotl(h, 23n) * P2 + P3) & M64
    p += 4
  }
  for (; p < len; p++) {
    h ^= (BigInt(buf[p]) * P5) & M64
    h = (rotl(h, 11n) * P1) & M64
  }
  h ^= h >> 33n
  h = (h * P2) & M64
  h ^= h >> 29n
  h = (h * P3) & M64
  h ^= h >> 32n
  return h.toString(16).toUpperCase().padStart(16, '0')
}

// ---- tar (ustar), enough for XVA: regular files, names < 100 bytes -------------------------------------------------

function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(512)
  h.write(name, 0, 100, 'utf8')
  h.write('0000644\0', 100)
  h.write('0000000\0', 108)
  h.write('0000000\0', 116)
  h.write(size.toString(8).padStart(11, '0') + '\0', 124)
  h.write(Math.floor(mtime).toString(8).padStart(11, '0') + '\0', 136)
  h.write('        ', 148)
  h.write('0', 156)
  h.write('ustar\0', 257)
  h.write('00', 263)
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148)
  return h
}

/** One tar member: header, data, padding to 512. */
export function tarMember(name: string, data: Buffer, mtime = Date.now() / 1000): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512
  return [tarHeader(name, data.length, mtime), data, Buffer.alloc(pad)]
}

export const TAR_END = Buffer.alloc(1024)

/** Reads tar members (name + data) from a byte stream; each member is held in memory (XVA members are ≤ 1 MiB). */
export async function* tarMembers(source: AsyncIterable<Buffer>): AsyncGenerator<{ name: string; data: Buffer }> {
  let buf: Buffer = Buffer.alloc(0)
  let want: { name: string; size: number; total: number } | undefined
  let ended = false
  for await (const chunk of source) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
    for (;;) {
      if (!want) {
        if (buf.length < 512) break
        const h = buf.subarray(0, 512)
        if (h.every((b) => b === 0)) {
          ended = true
          buf = buf.subarray(512)
          continue
        }
        let sum = 0
        for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]
        const stored = parseInt(h.toString('latin1', 148, 156).replace(/\0.*$/, '').trim(), 8)
        if (stored !== sum)
          throw new XapiError('IMPORT_ERROR', `tar header checksum mismatch (stored ${stored}, computed ${sum})`)
        const field = (from: number, to: number) => h.toString('utf8', from, to).replace(/\0.*$/s, '')
        // ustar: a long name is split into prefix (345..500) and name
        const name = (field(345, 500) ? `${field(345, 500)}/` : '') + field(0, 100)
        const size = parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/, '').trim() || '0', 8)
        want = { name, size, total: 512 + size + ((512 - (size % 512)) % 512) }
      }
      if (buf.length < want.total) break
      const data = Buffer.from(buf.subarray(512, 512 + want.size))
      buf = buf.subarray(want.total)
      const m = { name: want.name, data }
      want = undefined
      if (!ended) yield m
    }
  }
  if (want) throw new XapiError('IMPORT_ERROR', `the archive ends inside member ${want.name}`)
}

// ---- export ----------------------------------------------------------------------------------------------------

/** Classes in the order XAPI's export writes them. */
const EXPORT_ORDER = ['VM', 'VBD', 'VIF', 'network', 'VDI', 'SR']

/** Fields blanked on export, per class (as export.ml's make_*). */
const BLANK: Record<string, XapiRecord> = {
  VM: {
    current_operations: {},
    allowed_operations: [],
    crash_dumps: [],
    consoles: [],
    metrics: NULL_REF,
    guest_metrics: NULL_REF,
    resident_on: NULL_REF,
    affinity: NULL_REF,
    protection_policy: NULL_REF,
    blobs: {},
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    snapshots: [],
    parent: NULL_REF,
    transportable_snapshot_id: '',
    suspend_VDI: NULL_REF,
    power_state: 'Halted',
  },
  VBD: { currently_attached: false, metrics: NULL_REF, current_operations: {}, allowed_operations: [] },
  VIF: { currently_attached: false, metrics: NULL_REF, current_operations: {}, allowed_operations: [] },
  network: { PIFs: [], current_operations: {}, allowed_operations: [] },
  VDI: { crash_dumps: [], current_operations: {}, allowed_operations: [] },
  SR: { PBDs: [], current_operations: {}, allowed_operations: [] },
}

interface Exported {
  ovaXml: string
  /** Export id (`Ref:<n>`) → VDI ref, in the order the disks are streamed. */
  vdis: [string, string][]
}

/** Builds ova.xml for a VM and says which disks follow. */
export function exportTable(store: DiskStore, vm: string): Exported {
  const db = store.sim.db
  const ids = new Map<string, string>()
  let n = 0
  const add = (ref: unknown) => {
    if (typeof ref === 'string' && ref !== NULL_REF && db.row(ref) && !ids.has(ref)) ids.set(ref, `Ref:${n++}`)
  }
  add(vm)
  const rec = db.must('VM', vm)
  for (const vif of rec.VIFs as string[]) {
    add(vif)
    add(db.get(vif)?.network)
  }
  for (const vbd of rec.VBDs as string[]) {
    add(vbd)
    const b = db.get(vbd)
    if (b && !b.empty && b.VDI !== NULL_REF) {
      add(b.VDI)
      add(db.get(b.VDI as string)?.SR)
    }
  }
  const lookup = (v: unknown): unknown => {
    if (typeof v === 'string' && v.startsWith('OpaqueRef:')) return ids.get(v) ?? NULL_REF
    if (Array.isArray(v)) return v.map(lookup).filter((x) => x !== NULL_REF)
    return v
  }
  const objects: unknown[] = []
  for (const cls of EXPORT_ORDER) {
    const c = db.cls(cls)
    for (const [ref, id] of ids) {
      const row = db.row(ref)!
      if (row.cls.name !== c.name) continue
      const r = db.get(ref)!
      const snap: XapiRecord = {}
      for (const f of c.fields) {
        const blank = BLANK[c.name]?.[f.name]
        snap[f.name] =
          blank !== undefined ? blank : f.type.kind === 'ref' || f.type.kind === 'set' ? lookup(r[f.name]) : r[f.name]
      }
      objects.push({ class: c.name, id, snapshot: encodedRecord(c.name, snap) })
    }
  }
  const host = store.sim.db.get(store.sim.master) ?? {}
  const sw = (host.software_version ?? {}) as Record<string, string>
  const version = {
    hostname: String(host.hostname ?? host.name_label ?? 'xapi-sim'),
    date: new Date().toISOString().slice(0, 10),
    product_version: sw.product_version ?? '',
    product_brand: sw.product_brand ?? '',
    build_number: sw.build_number ?? '',
    xapi_major: Number((sw.xapi ?? '1.20').split('.')[0]),
    xapi_minor: Number((sw.xapi ?? '1.20').split('.')[1] ?? 0),
    export_vsn: EXPORT_VSN,
  }
  // records are typed by the datamodel (ints untagged, as XAPI writes them); the envelope is untyped
  const body =
    '<value><struct>' +
    `<member><name>version</name>${encodeValue(version)}</member>` +
    `<member><name>objects</name><value><array><data>${objects
      .map((o) => {
        const ob = o as { class: string; id: string; snapshot: string }
        return `<value><struct><member><name>class</name><value>${ob.class}</value></member><member><name>id</name><value>${ob.id}</value></member><member><name>snapshot</name>${ob.snapshot}</member></struct></value>`
      })
      .join('')}</data></array></value></member>` +
    '</struct></value>'
  const vdis = [...ids]
    .filter(([ref]) => db.row(ref)!.cls.name === 'VDI')
    .map(([ref, id]) => [id, ref] as [string, string])
  vdis.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  return { ovaXml: body, vdis }
}

function encodedRecord(cls: string, rec: XapiRecord): string {
  return encodeValue(rec, { kind: 'record', class: cls })
}

const ZERO_CHUNK = Buffer.alloc(XVA_CHUNK)
/** All zeros? (a native compare: a per-byte callback made exporting a 1 GiB disk take over a minute) */
const isZero = (buf: Buffer) => buf.equals(buf.length === XVA_CHUNK ? ZERO_CHUNK : Buffer.alloc(buf.length))

/** The XVA stream of a VM: ova.xml, then every disk's chunks with their checksums. */
export async function* xvaStream(store: DiskStore, vm: string): AsyncGenerator<Buffer> {
  const { ovaXml, vdis } = exportTable(store, vm)
  const now = Date.now() / 1000
  yield* tarMember('ova.xml', Buffer.from(ovaXml), now)
  for (const [id, vdi] of vdis) {
    const size = Number(store.sim.db.must('VDI', vdi).virtual_size)
    const fh = await fsOpen(await store.file(vdi), 'r')
    try {
      const last = Math.max(0, Math.ceil(size / XVA_CHUNK) - 1)
      // one read buffer; a chunk that is sent gets its own copy (the stream may still hold it)
      const scratch = Buffer.alloc(XVA_CHUNK)
      for (let i = 0; i * XVA_CHUNK < size; i++) {
        const len = Math.min(XVA_CHUNK, size - i * XVA_CHUNK)
        const view = scratch.subarray(0, len)
        const { bytesRead } = await fh.read(view, 0, len, i * XVA_CHUNK)
        if (bytesRead < len) view.fill(0, bytesRead)
        if (i !== 0 && i !== last && isZero(view)) continue
        const buf = Buffer.from(view)
        const name = `${id}/${String(i).padStart(8, '0')}`
        yield* tarMember(name, buf, now)
        yield* tarMember(`${name}.xxhash`, Buffer.from(xxh64Hex(buf)), now)
      }
    } finally {
      await fh.close()
    }
  }
  yield TAR_END
}

// ---- import ----------------------------------------------------------------------------------------------------

interface OvaObject {
  cls: string
  id: string
  snapshot: XapiRecord
}

/** Parses ova.xml into typed records (refs still export ids). */
export function parseOvaXml(xml: Buffer | string): { version: Record<string, unknown>; objects: OvaObject[] } {
  let top: Record<string, unknown>
  try {
    top = decodeValue(xml) as Record<string, unknown>
  } catch (e) {
    throw new XapiError('IMPORT_ERROR', `ova.xml is not an XML-RPC value: ${(e as Error).message}`)
  }
  if (!top || typeof top !== 'object' || !Array.isArray(top.objects))
    throw new XapiError('IMPORT_ERROR', 'ova.xml: expected a struct with "version" and "objects"')
  const objects = (top.objects as Record<string, unknown>[]).map((o, i) => {
    if (typeof o?.class !== 'string' || typeof o.id !== 'string' || typeof o.snapshot !== 'object')
      throw new XapiError('IMPORT_ERROR', `ova.xml: object ${i}: expected class, id and snapshot`)
    return { cls: o.class, id: o.id, snapshot: o.snapshot as XapiRecord }
  })
  return { version: (top.version ?? {}) as Record<string, unknown>, objects }
}

async function importXva(
  store: DiskStore,
  body: AsyncIterable<Buffer>,
  opts: { session: string; sr?: string; restore: boolean },
): Promise<string[]> {
  const sim = store.sim
  const db = sim.db
  const created: string[] = []
  const refs = new Map<string, string>()
  const vdiSizes = new Map<string, number>()
  const vms: string[] = []
  const call = async (m: string, ...a: unknown[]) => {
    const r = (await sim.callOrThrow(m, opts.session, ...a)) as string
    created.push(r)
    return r
  }
  let open: { vdi: string; fh: FileHandle } | undefined
  try {
    let first = true
    let pending: { name: string; data: Buffer } | undefined
    const closeOpen = async () => {
      if (open) await open.fh.close()
      open = undefined
    }
    const flushChunk = async (name: string, data: Buffer, sum?: { ext: string; value: string }) => {
      const m = /^(Ref:[^/]+)\/(\d{8})$/.exec(name)
      if (!m) throw new XapiError('IMPORT_ERROR', `unexpected member ${name} (expected Ref:<id>/<8 digits>)`)
      const vdi = refs.get(m[1])
      if (!vdi || db.row(vdi)?.cls.name !== 'VDI')
        throw new XapiError('IMPORT_ERROR', `member ${name}: ${m[1]} is not a VDI of ova.xml`)
      if (sum) {
        const want = sum.ext === 'xxhash' ? xxh64Hex(data) : createHash('sha1').update(data).digest('hex')
        if (want.toLowerCase() !== sum.value.trim().toLowerCase())
          throw new XapiError(
            'IMPORT_ERROR',
            `checksum mismatch on ${name}: .${sum.ext} says ${sum.value.trim()}, data hashes to ${want}`,
          )
      }
      const offset = Number(m[2]) * XVA_CHUNK
      if (offset + data.length > vdiSizes.get(vdi)!)
        throw new XapiError('IMPORT_ERROR', `member ${name} lies beyond the VDI's virtual size ${vdiSizes.get(vdi)}`)
      if (open?.vdi !== vdi) {
        await closeOpen()
        open = { vdi, fh: await fsOpen(await store.file(vdi), 'r+') }
      }
      if (data.length) await open.fh.write(data, 0, data.length, offset)
    }
    for await (const m of tarMembers(body)) {
      if (first) {
        first = false
        if (m.name !== 'ova.xml') throw new XapiError('IMPORT_ERROR', `the first member is ${m.name}, expected ova.xml`)
        await createObjects(m.data)
        continue
      }
      const ck = /^(.*)\.(xxhash|checksum)$/.exec(m.name)
      if (ck) {
        if (!pending || pending.name !== ck[1])
          throw new XapiError('IMPORT_ERROR', `checksum ${m.name} without its chunk before it`)
        await flushChunk(pending.name, pending.data, { ext: ck[2], value: m.data.toString('latin1') })
        pending = undefined
        continue
      }
      if (pending) await flushChunk(pending.name, pending.data) // a chunk without checksum (very old exports)
      pending = m
    }
    if (first) throw new XapiError('IMPORT_ERROR', 'empty archive: no ova.xml')
    if (pending) await flushChunk(pending.name, pending.data)
    await closeOpen()
    for (const v of vdiSizes.keys()) await store.account(v)
    return vms
  } catch (e) {
    await open?.fh.close().catch(() => undefined)
    // newest first (VIFs, VBDs, the VM, then VDIs and networks), through the messages so VDI files go too
    for (const r of created.reverse()) {
      const cls = db.row(r)?.cls.name
      if (cls) await sim.callOrThrow(`${cls}.destroy`, opts.session, r).catch(() => db.row(r) && db.destroy(r))
    }
    throw e
  }

  async function createObjects(xml: Buffer): Promise<void> {
    const { objects } = parseOvaXml(xml)
    const typed = objects.map((o) => {
      const cls = db.cls(o.cls).name
      return { ...o, cls, rec: fromWire(o.snapshot, { kind: 'record', class: cls }) as XapiRecord }
    })
    const sr = opts.sr ?? (db.get(sim.pool)!.default_SR as string)
    if (!db.has('SR', sr)) throw new XapiError('SR_NOT_FOUND', sr) // XAPI's answer when no SR can take the disks
    for (const o of typed.filter((x) => x.cls === 'network')) {
      const found =
        db.find('network', (n) => n.bridge === o.rec.bridge && o.rec.bridge !== '') ??
        db.find('network', (n) => n.name_label === o.rec.name_label)
      if (found) refs.set(o.id, found)
      else
        refs.set(
          o.id,
          await call('network.create', {
            name_label: o.rec.name_label,
            name_description: o.rec.name_description,
            MTU: o.rec.MTU,
            other_config: o.rec.other_config,
            tags: o.rec.tags ?? [],
          }),
        )
    }
    for (const o of typed.filter((x) => x.cls === 'VDI')) {
      const size = Number(o.rec.virtual_size)
      const vdi = await call('VDI.create', {
        name_label: o.rec.name_label,
        name_description: o.rec.name_description,
        SR: sr,
        virtual_size: size,
        type: o.rec.type,
        sharable: o.rec.sharable,
        read_only: o.rec.read_only,
        other_config: o.rec.other_config,
        tags: o.rec.tags ?? [],
      })
      vdiSizes.set(vdi, size)
      refs.set(o.id, vdi)
      // the disk starts zeroed: chunks left out of the archive are zeros
      await store.file(vdi)
    }
    const remap = (v: unknown): unknown =>
      typeof v === 'string' && v.startsWith('Ref:') ? (refs.get(v) ?? NULL_REF) : v
    for (const o of typed.filter((x) => x.cls === 'VM')) {
      const r = { ...o.rec }
      for (const f of ['VIFs', 'VBDs', 'VGPUs', 'VTPMs', 'snapshots', 'crash_dumps', 'consoles', 'attached_PCIs'])
        if (f in r) r[f] = []
      for (const [k, v] of Object.entries(r)) if (typeof v === 'string' && v.startsWith('Ref:')) r[k] = remap(v)
      if (!opts.restore) delete r.uuid
      else if (db.refOfUuid('VM', String(r.uuid))) throw new XapiError('DUPLICATE_VM', String(r.uuid))
      const vm = await call('VM.create', r)
      const fixed: XapiRecord = { is_a_template: o.rec.is_a_template, power_state: 'Halted' }
      if (opts.restore) fixed.uuid = o.rec.uuid
      db.update(vm, fixed)
      refs.set(o.id, vm)
      vms.push(vm)
    }
    for (const o of typed.filter((x) => x.cls === 'VBD')) {
      const vm = refs.get(String(o.snapshot.VM))
      if (!vm) continue
      const vdi = refs.get(String(o.snapshot.VDI))
      refs.set(
        o.id,
        await call('VBD.create', {
          ...o.rec,
          VM: vm,
          VDI: vdi ?? NULL_REF,
          empty: !vdi,
          currently_attached: false,
        }),
      )
    }
    for (const o of typed.filter((x) => x.cls === 'VIF')) {
      const vm = refs.get(String(o.snapshot.VM))
      const network = refs.get(String(o.snapshot.network))
      if (!vm || !network) continue
      refs.set(o.id, await call('VIF.create', { ...o.rec, VM: vm, network }))
    }
  }
}

// ---- handlers ----------------------------------------------------------------------------------------------------

function sendError(res: ServerResponse, status: number, ed: string[]): void {
  if (res.headersSent) return void res.destroy()
  const body = `${ed.join(' ')}\n`
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function exportHandler(store: DiskStore, req: IncomingMessage, res: ServerResponse, ctx: HttpContext) {
  const sim = store.sim
  const q = ctx.url.searchParams
  const taskRef = q.get('task_id') ?? undefined
  const task = taskRef && sim.db.has('task', taskRef) ? taskRef : undefined
  req.resume()
  const fail = (status: number, e: unknown) => {
    const ed = toErrorDescription(e)
    if (task) sim.tasks.complete(task, { error: ed })
    sendError(res, status, ed)
  }
  try {
    await sim.http.session(req, ctx.url, ctx.host)
  } catch (e) {
    return fail(401, e)
  }
  let vm: string
  try {
    const ref = q.get('ref')
    const uuid = q.get('uuid')
    if (ref) {
      sim.db.must('VM', ref)
      vm = ref
    } else {
      const r = uuid ? sim.db.refOfUuid('VM', uuid) : undefined
      if (!r) throw new XapiError('HANDLE_INVALID', 'VM', uuid ?? '')
      vm = r
    }
  } catch (e) {
    return fail(404, e)
  }
  const compression = (q.get('use_compression') ?? 'false').toLowerCase()
  if (compression === 'zstd')
    return fail(
      400,
      new XapiError('INTERNAL_ERROR', 'use_compression=zstd is not supported by the simulator (use true for gzip)'),
    )
  if (task) sim.tasks.attach(task)
  res.writeHead(200, { 'content-type': 'application/octet-stream', ...(task ? { 'task-id': task } : {}) })
  try {
    const body = Readable.from(xvaStream(store, vm))
    if (compression === 'true') await pipeline(body, createGzip(), res)
    else await pipeline(body, res)
    if (task) sim.tasks.complete(task, { result: '<value></value>' })
  } catch (e) {
    if (task) sim.tasks.complete(task, { error: toErrorDescription(e) })
    res.destroy()
  }
}

/** A stream that is gunzipped when it starts with gzip's magic. */
async function* maybeGunzip(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = src[Symbol.asyncIterator]()
  const first = await it.next()
  if (first.done) return
  const rest: AsyncIterable<Buffer> = {
    [Symbol.asyncIterator]: () => ({ next: () => it.next() }),
  }
  if (first.value[0] === 0x1f && first.value[1] === 0x8b) {
    const gunzip = createGunzip()
    const feeding = (async () => {
      gunzip.write(first.value)
      for await (const c of rest) if (!gunzip.write(c)) await new Promise((r) => gunzip.once('drain', r))
      gunzip.end()
    })()
    feeding.catch((e) => gunzip.destroy(e as Error))
    yield* gunzip as AsyncIterable<Buffer>
    await feeding
  } else {
    yield first.value
    yield* rest
  }
}

async function importHandler(store: DiskStore, req: IncomingMessage, res: ServerResponse, ctx: HttpContext) {
  const sim = store.sim
  const q = ctx.url.searchParams
  // xen-api's redirect probe: an empty PUT without a task changes nothing
  if (req.headers['content-length'] === '0' && !q.get('task_id')) {
    req.resume()
    res.writeHead(200, { 'content-length': '0' })
    return void res.end()
  }
  const taskRef = q.get('task_id') ?? undefined
  const task = taskRef && sim.db.has('task', taskRef) ? taskRef : undefined
  const done = (vms: string[] | undefined, error?: unknown) => {
    if (task) {
      if (error === undefined)
        sim.tasks.complete(task, {
          result: `<value><array><data>${vms!.map((v) => `<value>${v}</value>`).join('')}</data></array></value>`,
        })
      else sim.tasks.complete(task, { error: toErrorDescription(error) })
    }
    if (res.headersSent || res.destroyed) return void res.end()
    if (error !== undefined && !task) return sendError(res, 500, toErrorDescription(error))
    res.writeHead(200, { ...(task ? { 'task-id': task } : {}), 'content-length': '0' })
    res.end()
  }
  let session: { ref: string }
  try {
    session = await sim.http.session(req, ctx.url, ctx.host)
  } catch (e) {
    req.resume()
    if (task) sim.tasks.complete(task, { error: toErrorDescription(e) })
    return sendError(res, 401, toErrorDescription(e))
  }
  const sr = q.get('sr_id') || undefined
  if (sr && !sim.db.has('SR', sr)) {
    req.resume()
    return done(undefined, new XapiError('HANDLE_INVALID', 'SR', sr))
  }
  if (task) sim.tasks.attach(task)
  try {
    const vms = await importXva(store, maybeGunzip(req), {
      session: session.ref,
      sr,
      restore: q.get('restore') === 'true',
    })
    done(vms)
  } catch (e) {
    req.resume()
    done(undefined, e)
  }
}

/** Registers `GET /export` and `PUT /import` on the simulator that owns `store`. */
export function installXvaHandlers(store: DiskStore): void {
  // routes match by prefix: /export_metadata and /import_metadata are other handlers, which the simulator lacks
  const exact =
    (path: string, h: typeof exportHandler) =>
    (req: IncomingMessage, res: ServerResponse, ctx: HttpContext): Promise<void> | void => {
      if (ctx.url.pathname === path || ctx.url.pathname === `${path}/`) return h(store, req, res, ctx)
      req.resume()
      sendError(res, 404, ['INTERNAL_ERROR', `${ctx.url.pathname} is not implemented by the simulator`])
    }
  store.sim.http.route('GET', '/export', exact('/export', exportHandler))
  store.sim.http.route('PUT', '/import', exact('/import', importHandler))
}
