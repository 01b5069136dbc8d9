/**
 * The datamodel-driven object store: one table per class, every record holding the class's full field set in wire
 * form (ints and floats as numbers, datetimes as XAPI strings `20250319T04:16:24Z`, refs as `OpaqueRef:<uuid>`,
 * sets as arrays, maps as objects). Nested values are never mutated in place — updates replace them — so empty sets
 * and maps are shared frozen objects and snapshots taken for events stay valid.
 *
 * Every mutation bumps a global generation; rows remember the generation they were created and last changed at, and
 * a change log ordered by generation lets event.from answer "what changed since token T" without scanning tables.
 * One-to-many relations (VIF.VM ↔ VM.VIFs, …) are kept consistent on create, update and destroy.
 */
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import { XapiError } from './errors.js'
import { NULL_REF, type ClassModel, type Model, model as sharedModel } from './model.js'

export type XapiRecord = Record<string, unknown>

export interface Row {
  ref: string
  uuid: string
  cls: ClassModel
  rec: XapiRecord
  /** Generation of the last change. */
  gen: number
  /** Generation at which the row was created. */
  born: number
  /**
   * Serialisation caches (valid while `jsonGen`/`xmlGen` equal `gen`): unchanged records are sent as stored text.
   * Each encoding is kept in one form at a time — text (`json`, `xml`: event.from, get_all_records) or UTF-8 bytes
   * (`jsonBytes`, `xmlBytes`: get_record answers written as they are) — so a warm cache never holds a record twice.
   */
  json: string | undefined
  jsonBytes: Buffer | undefined
  jsonGen: number
  xml: string | undefined
  xmlBytes: Buffer | undefined
  xmlGen: number
}

/** Bytes of a text in a buffer of their own (a pooled slice would keep its whole 8 KiB pool alive). */
export function ownBytes(text: string): Buffer {
  const b = Buffer.allocUnsafeSlow(Buffer.byteLength(text))
  b.write(text, 0, 'utf8')
  return b
}

export type ChangeOp = 'add' | 'mod' | 'del'

/** What `db.on('change', …)` listeners receive. */
export interface Change {
  op: ChangeOp
  /** Class name as in the datamodel (`VM`, `VIF`). */
  cls: string
  ref: string
  /** The record after the change (for `del`, the last state). */
  rec: XapiRecord
  /** Fields whose value changed (for `mod`). */
  fields?: string[]
  gen: number
}

interface LogEntry {
  gen: number
  row: Row
  /** Set when the entry records a deletion. */
  deleted: boolean
}

/** One-to-many relations: [child class, child ref field, parent class, parent set field]. */
const RELATIONS: [string, string, string, string][] = [
  ['VIF', 'VM', 'VM', 'VIFs'],
  ['VBD', 'VM', 'VM', 'VBDs'],
  ['VBD', 'VDI', 'VDI', 'VBDs'],
  ['console', 'VM', 'VM', 'consoles'],
  ['crashdump', 'VM', 'VM', 'crash_dumps'],
  ['VTPM', 'VM', 'VM', 'VTPMs'],
  ['VUSB', 'VM', 'VM', 'VUSBs'],
  ['VGPU', 'VM', 'VM', 'VGPUs'],
  ['VM', 'snapshot_of', 'VM', 'snapshots'],
  ['VM', 'parent', 'VM', 'children'],
  ['VM', 'resident_on', 'host', 'resident_VMs'],
  ['VM', 'appliance', 'VM_appliance', 'VMs'],
  ['VDI', 'SR', 'SR', 'VDIs'],
  ['VDI', 'snapshot_of', 'VDI', 'snapshots'],
  ['PBD', 'SR', 'SR', 'PBDs'],
  ['PBD', 'host', 'host', 'PBDs'],
  ['PIF', 'host', 'host', 'PIFs'],
  ['PIF', 'network', 'network', 'PIFs'],
  ['PIF', 'bond_slave_of', 'Bond', 'slaves'],
  ['VIF', 'network', 'network', 'VIFs'],
  ['host_cpu', 'host', 'host', 'host_CPUs'],
  ['host_crashdump', 'host', 'host', 'crashdumps'],
  ['host_patch', 'host', 'host', 'patches'],
  ['host_patch', 'pool_patch', 'pool_patch', 'host_patches'],
  ['task', 'subtask_of', 'task', 'subtasks'],
  ['Bond', 'master', 'PIF', 'bond_master_of'],
  ['VLAN', 'untagged_PIF', 'PIF', 'VLAN_master_of'],
  ['VLAN', 'tagged_PIF', 'PIF', 'VLAN_slave_of'],
  ['tunnel', 'access_PIF', 'PIF', 'tunnel_access_PIF_of'],
  ['tunnel', 'transport_PIF', 'PIF', 'tunnel_transport_PIF_of'],
  ['PCI', 'host', 'host', 'PCIs'],
  ['PGPU', 'host', 'host', 'PGPUs'],
  ['PUSB', 'host', 'host', 'PUSBs'],
]

interface Shape {
  names: string[]
  /** Field name → its index in `names`. */
  position: Map<string, number>
  initial: unknown[]
  uuidIndex: number
  /** Reused argument array for the constructor (saves an allocation per row). */
  scratch: unknown[]
  Ctor: new (v: unknown[]) => XapiRecord
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x)
    Object.freeze(v)
  }
  return v
}

const EMPTY_ARRAY: readonly unknown[] = Object.freeze([])
const EMPTY_OBJECT: Readonly<Record<string, unknown>> = Object.freeze({})

/** Shared immutable empty set/map values (records never mutate nested values in place). */
export function frozenEmpty(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.length === 0 ? EMPTY_ARRAY : v
  // Called for every map value of every record created: test for a key without allocating Object.keys' array.
  for (const k in v) if (Object.hasOwn(v, k)) return v
  return EMPTY_OBJECT
}

// UUIDs: a random per-process prefix and a counter, formatted as version-4 UUIDs. Unique within the process by
// construction (and across processes with overwhelming probability), and much cheaper than crypto per object when
// a 50,000-VM pool is built.
const PREFIX = randomBytes(8).toString('hex')
let uuidCounter = Math.floor(Math.random() * 2 ** 32)
const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
/** The constant middle of a uuid, per value of its variant digit. */
const UUID_MID = [...'89ab'].map(
  (v) => `-${PREFIX.slice(0, 4)}-4${PREFIX.slice(4, 7)}-${v}${PREFIX.slice(7, 10)}-${PREFIX.slice(10, 15)}`,
)
let uuidHighValue = -1
let uuidHigh = ''

/** A fresh version-4 style UUID; the counter's fast-changing bits come first, so short prefixes differ too. */
export function newUuid(): string {
  const n = ++uuidCounter
  // Same layout as `hex15 = n.toString(16).padStart(15, '0')`: hex15.slice(7) (the low 32 bits), the prefix, then
  // hex15.slice(0, 7) (the bits above) — built from a 2-digit table and cached pieces, without per-call slicing and
  // padding (newUuid runs ~400,000 times when a 50,000-VM pool is built).
  const lo = n % 2 ** 32
  const hi = (n - lo) / 2 ** 32
  if (hi !== uuidHighValue) {
    uuidHighValue = hi
    uuidHigh = hi.toString(16).padStart(7, '0')
  }
  const low = HEX2[lo >>> 24] + HEX2[(lo >>> 16) & 255] + HEX2[(lo >>> 8) & 255] + HEX2[lo & 255]
  return low + UUID_MID[n & 3] + uuidHigh
}

export function newRef(): string {
  return `OpaqueRef:${newUuid()}`
}

export class Database extends EventEmitter {
  readonly model: Model
  /** The current generation (the number of mutations so far). */
  generation = 0
  private readonly tables = new Map<string, Map<string, Row>>()
  private readonly rows = new Map<string, Row>()
  /** uuid → ref, built on first use (a bulk build of 300,000 rows does not pay for it) and kept up to date. */
  private uuids: Map<string, string> | undefined

  private uuidIndex(): Map<string, string> {
    if (!this.uuids) {
      this.uuids = new Map()
      for (const row of this.rows.values()) this.uuids.set(row.uuid, row.ref)
    }
    return this.uuids
  }
  private log: LogEntry[] = []
  /** Oldest generation the log can still answer from exactly (older tokens get every live object). */
  private logHorizon = 0
  /** child class → [child field, parent class, parent field][]; parent class → [parent field, child class, child field][]. */
  private readonly childRel = new Map<string, [string, string, string][]>()
  private readonly parentRel = new Map<string, [string, string, string][]>()
  /** Rows whose class emits events are logged; hooks fire for every class. */
  private notifyScheduled = false
  private readonly shapes = new Map<string, Shape>()
  private readonly byName = new Map<string, ClassModel>()
  private bulk = false
  /** Number of destroys so far (batch() needs to know whether any happened). */
  private deletions = 0
  /** Parent-side relation arrays created by the store (safe to append to in place). */
  private readonly owned = new WeakSet<unknown[]>()
  private readonly index = new WeakMap<unknown[], Set<string>>()
  private readonly waiters = new Set<() => void>()

  constructor(m: Model = sharedModel()) {
    super()
    this.setMaxListeners(0)
    this.model = m
    for (const c of m.classes) this.tables.set(c.name, new Map())
    for (const [cc, cf, pc, pf] of RELATIONS) {
      const ccm = m.cls(cc)
      const pcm = m.cls(pc)
      if (!ccm?.fieldByName.has(cf) || !pcm?.fieldByName.has(pf)) continue
      if (!this.childRel.has(ccm.name)) this.childRel.set(ccm.name, [])
      this.childRel.get(ccm.name)!.push([cf, pcm.name, pf])
      if (!this.parentRel.has(pcm.name)) this.parentRel.set(pcm.name, [])
      this.parentRel.get(pcm.name)!.push([pf, ccm.name, cf])
    }
  }

  /**
   * Per-class record constructor and initial values. Records are built by a generated constructor assigning every
   * field by name, so V8 keeps them in fast (in-object) mode; assigning ~90 computed keys one by one would turn
   * each record into a dictionary (several times the memory). Initial values are the datamodel defaults (frozen:
   * nested values are never mutated in place, so they are shared) or the type's zero value.
   */
  private shape(c: ClassModel): Shape {
    let s = this.shapes.get(c.name)
    if (s) return s
    const names = c.fields.map((f) => f.name)
    // Classes without a uuid field (event, auth, data_source, …) get none in their records: records carry exactly
    // the datamodel's fields. Their rows still have a uuid (Row.uuid) for uniqueness.
    const body = names.map((n, i) => `this[${JSON.stringify(n)}] = v[${i}]`).join('\n')
    const Ctor = new Function('v', body) as unknown as new (v: unknown[]) => XapiRecord
    const initial = names.map((n) => {
      const f = c.fieldByName.get(n)
      return f ? deepFreeze(frozenEmpty(this.model.initial(f))) : ''
    })
    const position = new Map(names.map((n, i) => [n, i]))
    s = { names, position, initial, uuidIndex: names.indexOf('uuid'), scratch: new Array<unknown>(names.length), Ctor }
    this.shapes.set(c.name, s)
    return s
  }

  /** The class model for a name (case-insensitive); throws for unknown classes. */
  cls(name: string): ClassModel {
    // Exact spellings are cached: the case-insensitive lookup allocates a lowercase string per call.
    let c = this.byName.get(name)
    if (c) return c
    c = this.model.cls(name)
    if (!c) throw new Error(`xapi-sim: unknown class ${name}`)
    this.byName.set(name, c)
    return c
  }

  table(cls: string): Map<string, Row> {
    return this.tables.get(this.cls(cls).name)!
  }

  // -- reads ------------------------------------------------------------------------------------------------------

  /** The row for a ref (any class), or undefined. */
  row(ref: string): Row | undefined {
    return this.rows.get(ref)
  }

  /** The record of a ref (any class), or undefined. */
  get(ref: string): XapiRecord | undefined {
    return this.rows.get(ref)?.rec
  }

  /** The JSON text of a row's record (cached until the row changes). */
  json(row: Row): string {
    if (row.jsonGen === row.gen) {
      if (row.json !== undefined) return row.json
      // Cached as bytes (get_record): decoded, not cached twice.
      if (row.jsonBytes !== undefined) return row.jsonBytes.toString('utf8')
    }
    row.json = JSON.stringify(row.rec)
    row.jsonBytes = undefined
    row.jsonGen = row.gen
    return row.json
  }

  /** The JSON of a row's record as UTF-8 bytes (cached until the row changes; replaces a cached text). */
  jsonBytes(row: Row): Buffer {
    if (row.jsonGen === row.gen && row.jsonBytes !== undefined) return row.jsonBytes
    const text = row.jsonGen === row.gen && row.json !== undefined ? row.json : JSON.stringify(row.rec)
    row.jsonBytes = ownBytes(text)
    row.json = undefined
    row.jsonGen = row.gen
    return row.jsonBytes
  }

  /** The row of a ref of a given class; throws HANDLE_INVALID [class, ref] otherwise. */
  mustRow(cls: string, ref: unknown): Row {
    const row = typeof ref === 'string' ? this.rows.get(ref) : undefined
    if (!row || row.cls.name !== this.cls(cls).name) throw new XapiError('HANDLE_INVALID', this.cls(cls).name, ref)
    return row
  }

  /** The record of a ref of a given class; throws HANDLE_INVALID [class, ref] otherwise. */
  must(cls: string, ref: unknown): XapiRecord {
    const row = typeof ref === 'string' ? this.rows.get(ref) : undefined
    if (!row || row.cls.name !== this.cls(cls).name) throw new XapiError('HANDLE_INVALID', this.cls(cls).name, ref)
    return row.rec
  }

  has(cls: string, ref: unknown): boolean {
    const row = typeof ref === 'string' ? this.rows.get(ref) : undefined
    return !!row && row.cls.name === this.cls(cls).name
  }

  /** The ref of a uuid within a class, or undefined. */
  refOfUuid(cls: string, uuid: string): string | undefined {
    const ref = this.uuidIndex().get(uuid)
    if (!ref) return undefined
    return this.rows.get(ref)?.cls.name === this.cls(cls).name ? ref : undefined
  }

  /** Every [ref, record] of a class. */
  *all(cls: string): IterableIterator<[string, XapiRecord]> {
    for (const [ref, row] of this.table(cls)) yield [ref, row.rec]
  }

  refs(cls: string): string[] {
    return [...this.table(cls).keys()]
  }

  count(cls: string): number {
    return this.table(cls).size
  }

  /** Refs of a class whose record matches. */
  where(cls: string, pred: (rec: XapiRecord, ref: string) => boolean): string[] {
    const out: string[] = []
    for (const [ref, row] of this.table(cls)) if (pred(row.rec, ref)) out.push(ref)
    return out
  }

  /** The first ref of a class whose record matches, or undefined. */
  find(cls: string, pred: (rec: XapiRecord, ref: string) => boolean): string | undefined {
    for (const [ref, row] of this.table(cls)) if (pred(row.rec, ref)) return ref
    return undefined
  }

  // -- writes -----------------------------------------------------------------------------------------------------

  /**
   * Creates a row with every field of the class: given values, else the datamodel default, else the type's zero.
   * Returns the new ref. `opts.ref`/`fields.uuid` may be given (scenarios, persistence); both must be unused.
   * `opts.restore` (persistence) stores the record as given without adding it to its parents' sets.
   * `opts.freshUuid` says `fields.uuid` came from newUuid() and was never used (skips the uniqueness lookup).
   */
  create(
    cls: string,
    fields: XapiRecord = {},
    opts: { ref?: string; restore?: boolean; freshUuid?: boolean } = {},
  ): string {
    const c = this.cls(cls)
    // Generated refs and uuids are unique by construction; only given ones are checked.
    const ref = opts.ref ?? newRef()
    if (opts.ref !== undefined && this.rows.has(ref))
      throw new XapiError('DB_UNIQUENESS_CONSTRAINT_VIOLATION', c.name, 'ref', ref)
    let uuid = fields.uuid as string | undefined
    if (uuid === undefined || uuid === '') uuid = newUuid()
    else if (!opts.freshUuid && this.uuidIndex().has(uuid))
      throw new XapiError('DB_UNIQUENESS_CONSTRAINT_VIOLATION', c.name, 'uuid', uuid)
    const shape = this.shape(c)
    // Start from the class's defaults and overlay the given fields: a caller gives ~10 of a VM's ~150 fields, and
    // looking every field name up in `fields` (a differently shaped object per call site) was most of create's time.
    const vals = shape.scratch
    const initial = shape.initial
    for (let i = 0; i < vals.length; i++) vals[i] = initial[i]
    for (const k in fields) {
      const i = shape.position.get(k)
      const v = fields[k]
      if (i !== undefined && v !== undefined) vals[i] = frozenEmpty(v)
    }
    if (shape.uuidIndex >= 0) vals[shape.uuidIndex] = uuid
    const rec = new shape.Ctor(vals)
    vals.fill(undefined)
    const gen = ++this.generation
    const row: Row = {
      ref,
      uuid,
      cls: c,
      rec,
      gen,
      born: gen,
      json: undefined,
      jsonBytes: undefined,
      jsonGen: -1,
      xml: undefined,
      xmlBytes: undefined,
      xmlGen: -1,
    }
    this.tables.get(c.name)!.set(ref, row)
    this.rows.set(ref, row)
    this.uuids?.set(uuid, ref)
    this.logChange(row, false)
    if (this.watched) this.fire({ op: 'add', cls: c.name, ref, rec, gen })
    else this.wake(c.name)
    // Relations: add this child to its parents' sets (restored rows already carry both sides).
    const cr = opts.restore ? undefined : this.childRel.get(c.name)
    if (cr) for (const [cf, , pf] of cr) this.linkChild(rec[cf], pf, ref)
    return ref
  }

  /** Changes fields of a row (only those whose value differs count), bumping its generation once. */
  update(ref: string, patch: XapiRecord): void {
    const row = this.rows.get(ref)
    if (!row) throw new XapiError('HANDLE_INVALID', 'object', ref)
    const rec = row.rec
    const changed: string[] = []
    const cr = this.childRel.get(row.cls.name)
    for (const k in patch) {
      if (!row.cls.fieldByName.has(k) || k === 'uuid') continue
      const v = frozenEmpty(patch[k])
      const old = rec[k]
      if (old === v) continue
      if (cr) {
        for (const [cf, , pf] of cr) {
          if (cf !== k) continue
          this.unlinkChild(old, pf, ref)
          this.linkChild(v, pf, ref)
        }
      }
      rec[k] = v
      changed.push(k)
    }
    if (changed.length === 0) return
    this.touchRow(row, changed)
  }

  /** Sets one field. */
  set(ref: string, field: string, value: unknown): void {
    this.update(ref, { [field]: value })
  }

  /** Marks a row changed without changing it (event.inject). */
  touch(ref: string): void {
    const row = this.rows.get(ref)
    if (!row) throw new XapiError('HANDLE_INVALID', 'object', ref)
    this.touchRow(row, [])
  }

  /** Removes a row; children's ref fields keep pointing at it (as in XAPI), parents' sets drop it. */
  destroy(ref: string): void {
    const row = this.rows.get(ref)
    if (!row) throw new XapiError('HANDLE_INVALID', 'object', ref)
    this.tables.get(row.cls.name)!.delete(ref)
    this.rows.delete(ref)
    this.uuids?.delete(row.uuid)
    const cr = this.childRel.get(row.cls.name)
    if (cr) for (const [cf, , pf] of cr) this.unlinkChild(row.rec[cf], pf, ref)
    const gen = ++this.generation
    row.gen = gen
    this.deletions++
    this.logChange(row, true)
    if (this.watched) this.fire({ op: 'del', cls: row.cls.name, ref, rec: row.rec, gen })
    else this.wake(row.cls.name)
  }

  private touchRow(row: Row, fields: string[]): void {
    const gen = ++this.generation
    row.gen = gen
    this.logChange(row, false)
    if (this.watched) this.fire({ op: 'mod', cls: row.cls.name, ref: row.ref, rec: row.rec, fields, gen })
    else this.wake(row.cls.name)
  }

  private linkChild(parentRef: unknown, parentField: string, childRef: string): void {
    if (typeof parentRef !== 'string' || parentRef === NULL_REF) return
    const prow = this.rows.get(parentRef)
    if (!prow) return
    let cur = prow.rec[parentField] as string[]
    // Already listed (a restored parent lists its children): nothing to do. Long sets keep a membership index.
    if (cur.length <= 32 ? cur.includes(childRef) : this.members(cur).has(childRef)) return
    // Arrays the store built itself are appended in place (a 50,000-VIF network stays linear to build); any other
    // array may be shared with a caller, so it is copied once first.
    if (!this.owned.has(cur)) {
      cur = [...cur]
      this.owned.add(cur)
      prow.rec[parentField] = cur
    }
    cur.push(childRef)
    this.index.get(cur)?.add(childRef)
    this.touchRow(prow, [parentField])
  }

  /** The membership index of a long relation array (built on first use, kept up to date for owned arrays). */
  private members(arr: string[]): Set<string> {
    let set = this.index.get(arr)
    if (!set) this.index.set(arr, (set = new Set(arr)))
    return set
  }

  private unlinkChild(parentRef: unknown, parentField: string, childRef: string): void {
    if (typeof parentRef !== 'string' || parentRef === NULL_REF) return
    const prow = this.rows.get(parentRef)
    if (!prow) return
    const cur = prow.rec[parentField] as string[]
    const i = cur.indexOf(childRef)
    if (i < 0) return
    if (this.owned.has(cur)) {
      cur.splice(i, 1)
      this.index.get(cur)?.delete(childRef)
    } else {
      const next = cur.filter((r) => r !== childRef)
      this.owned.add(next)
      prow.rec[parentField] = next
    }
    this.touchRow(prow, [parentField])
  }

  /** True while someone listens to 'change' (the Change objects are only built then). */
  private get watched(): boolean {
    return this.listenerCount('change') > 0
  }

  private fire(ch: Change): void {
    this.emit('change', ch)
    this.wake(ch.cls)
  }

  /** Wakes blocked event.from/next callers (in a microtask, once per batch of changes). */
  private wake(cls: string): void {
    if (cls !== 'session' && this.waiters.size > 0 && !this.notifyScheduled) {
      this.notifyScheduled = true
      queueMicrotask(() => {
        this.notifyScheduled = false
        for (const w of [...this.waiters]) w()
      })
    }
  }

  // -- change log (events) ----------------------------------------------------------------------------------------

  private logChange(row: Row, deleted: boolean): void {
    if (!row.cls.emitsEvents || this.bulk) return
    this.log.push({ gen: row.gen, row, deleted })
    if (this.log.length > 4 * (this.rows.size + 1024)) this.compactLog()
  }

  /**
   * Runs a bulk load (building a pool, restoring state): the change log is not kept entry by entry but rebuilt at the
   * end (one entry per live object, in generation order), which makes building 300,000 rows several times cheaper.
   * Tokens taken before the batch get EVENTS_LOST if deletions happened inside it.
   */
  batch<T>(fn: () => T): T {
    if (this.bulk) return fn()
    this.bulk = true
    const before = this.generation
    const deletionsBefore = this.deletions
    try {
      return fn()
    } finally {
      this.bulk = false
      const kept = this.log.filter((e) => e.gen <= before)
      const seen = new Set<Row>()
      const fresh: LogEntry[] = []
      for (const row of this.rows.values()) {
        if (!row.cls.emitsEvents || row.gen <= before) continue
        seen.add(row)
        fresh.push({ gen: row.gen, row, deleted: false })
      }
      fresh.sort((a, b) => a.gen - b.gen)
      // Entries of rows changed in the batch are superseded by their fresh entry.
      this.log = kept.filter((e) => !seen.has(e.row)).concat(fresh)
      if (this.deletions !== deletionsBefore) this.logHorizon = Math.max(this.logHorizon, this.generation)
    }
  }

  /** Keeps only the latest entry per object; deletions older than the newest 10,000 are forgotten. */
  private compactLog(): void {
    const latest = new Map<string, LogEntry>()
    for (const e of this.log) latest.set(e.row.ref, e)
    let kept = [...latest.values()].sort((a, b) => a.gen - b.gen)
    const dels = kept.filter((e) => e.deleted)
    if (dels.length > 10_000) {
      const cut = dels[dels.length - 10_001].gen
      this.logHorizon = Math.max(this.logHorizon, cut)
      kept = kept.filter((e) => !e.deleted || e.gen > cut)
    }
    this.log = kept
  }

  /**
   * Objects changed after generation `since`, coalesced per object (§7.1): created after → add (latest state),
   * existed before and changed → mod, existed before and deleted → del, created and deleted inside → nothing.
   * Returns undefined when `since` is older than what the log still knows about deletions (EVENTS_LOST).
   */
  changesSince(since: number, accept: (row: Row) => boolean): { op: ChangeOp; row: Row }[] | undefined {
    if (since >= 0 && since < this.logHorizon) return undefined
    const log = this.log
    // binary search for the first entry with gen > since
    let lo = 0
    let hi = log.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (log[mid].gen <= since) lo = mid + 1
      else hi = mid
    }
    const seen = new Set<string>()
    const out: { op: ChangeOp; row: Row }[] = []
    // Walk newest first so the latest entry per object decides; then restore generation order.
    for (let i = log.length - 1; i >= lo; i--) {
      const e = log[i]
      const ref = e.row.ref
      if (seen.has(ref)) continue
      seen.add(ref)
      if (!accept(e.row)) continue
      const existedBefore = e.row.born <= since
      if (e.deleted) {
        if (existedBefore) out.push({ op: 'del', row: e.row })
      } else out.push({ op: existedBefore ? 'mod' : 'add', row: e.row })
    }
    out.reverse()
    return out
  }

  /** Registers a callback run (in a microtask) after the next change; returns an unsubscribe function. */
  onNextChange(cb: () => void): () => void {
    this.waiters.add(cb)
    return () => this.waiters.delete(cb)
  }

  /** Live row counts per lowercase table name, for every table (valid_ref_counts). */
  refCounts(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const c of this.model.classes) out[c.lower] = this.tables.get(c.name)!.size
    return out
  }
}
