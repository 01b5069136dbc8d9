/**
 * Persistence of a simulated pool under a state directory, so that it survives restarts.
 *
 * Layout of `<state>/`:
 *   state.json                      every row of every class except sessions and tasks (which a restart drops, as
 *                                   a toolstack restart does), plus the root password as a salted scrypt hash
 *   vdis/<vdi uuid>.raw             VDI contents (sparse files, see disk.ts)
 *   hosts/<host>/etc/xapi.d/plugins each host's plugins directory (unless overridden)
 *
 * Writes are atomic: the JSON goes to `state.json.tmp`, is fsynced, then renamed over `state.json`. A flush is
 * skipped when nothing changed since the last one (the database generation is unchanged).
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { open, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type { Simulator } from './simulator.js'

export const STATE_FORMAT = 'xenstack-xapi-sim-state'
export const STATE_VERSION = 1
/** Classes never persisted. */
const EPHEMERAL = new Set(['session', 'task', 'event'])

export interface PasswordHash {
  scheme: 'scrypt'
  salt: string
  hash: string
}

export interface StateFile {
  format: typeof STATE_FORMAT
  version: number
  saved: string
  scenario: string
  password: PasswordHash
  /** Extra per-pool facts (plugins directories of hosts, …). */
  meta: Record<string, unknown>
  rows: { cls: string; ref: string; rec: Record<string, unknown> }[]
}

export class StateError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`)
    this.name = 'StateError'
  }
}

export function hashPassword(password: string): PasswordHash {
  const salt = randomBytes(16)
  return { scheme: 'scrypt', salt: salt.toString('base64'), hash: scryptSync(password, salt, 32).toString('base64') }
}

export function verifyPassword(password: string, h: PasswordHash): boolean {
  const want = Buffer.from(h.hash, 'base64')
  const got = scryptSync(password, Buffer.from(h.salt, 'base64'), want.length)
  return timingSafeEqual(want, got)
}

export function statePath(dir: string): string {
  return join(dir, 'state.json')
}

/** Reads `<dir>/state.json`; undefined when there is none yet. */
export async function readState(dir: string): Promise<StateFile | undefined> {
  const file = statePath(dir)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new StateError(file, `cannot read: ${(e as Error).message}`)
  }
  let s: StateFile
  try {
    s = JSON.parse(text) as StateFile
  } catch (e) {
    throw new StateError(file, `not valid JSON (${(e as Error).message}); expected a state file written by xapi-sim`)
  }
  if (s?.format !== STATE_FORMAT)
    throw new StateError(file, `format: expected "${STATE_FORMAT}", got ${JSON.stringify(s?.format)}`)
  if (s.version !== STATE_VERSION)
    throw new StateError(file, `version: expected ${STATE_VERSION}, got ${JSON.stringify(s.version)}`)
  if (!Array.isArray(s.rows)) throw new StateError(file, 'rows: expected a list of {cls, ref, rec}')
  return s
}

/** Recreates the rows of a state file in an empty simulator database. */
export function restoreRows(sim: Simulator, state: StateFile, file = 'state.json'): void {
  state.rows.forEach((r, i) => {
    if (typeof r?.cls !== 'string' || typeof r.ref !== 'string' || r.rec === null || typeof r.rec !== 'object')
      throw new StateError(file, `rows[${i}]: expected {cls, ref, rec}`)
    try {
      sim.db.create(r.cls, r.rec, { ref: r.ref })
    } catch (e) {
      throw new StateError(file, `rows[${i}] (${r.cls} ${r.ref}): ${(e as Error).message}`)
    }
  })
}

/** Keeps a simulator's state directory up to date. */
export class StatePersister {
  private lastGeneration = -1
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()

  constructor(
    readonly dir: string,
    private readonly sim: Simulator,
    private readonly fixed: { scenario: string; password: PasswordHash; meta: () => Record<string, unknown> },
  ) {
    mkdirSync(dir, { recursive: true })
  }

  /** Has the database changed since the last write? */
  get dirty(): boolean {
    return this.sim.db.generation !== this.lastGeneration
  }

  /** Writes the state if anything changed since the last flush (or always with `force`). */
  flush(force = false): Promise<void> {
    // Serialise flushes; each one snapshots the database synchronously when it starts.
    this.writing = this.writing.catch(() => undefined).then(() => this.write(force))
    return this.writing
  }

  private async write(force: boolean): Promise<void> {
    const gen = this.sim.db.generation
    if (!force && gen === this.lastGeneration) return
    // Serialised synchronously (one consistent snapshot) into chunks of rows rather than one string: a 50,000-VM
    // pool is hundreds of MB of JSON, beyond what one V8 string can hold.
    const head: Omit<StateFile, 'rows'> = {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      saved: new Date().toISOString(),
      scenario: this.fixed.scenario,
      password: this.fixed.password,
      meta: this.fixed.meta(),
    }
    const chunks: string[] = [JSON.stringify(head).slice(0, -1) + ',"rows":[']
    let batch: string[] = []
    let first = true
    for (const c of this.sim.model.classes) {
      if (EPHEMERAL.has(c.name)) continue
      for (const [ref, rec] of this.sim.db.all(c.name)) {
        batch.push(JSON.stringify({ cls: c.name, ref, rec }))
        if (batch.length === 2000) {
          chunks.push((first ? '' : ',') + batch.join(','))
          first = false
          batch = []
        }
      }
    }
    if (batch.length > 0) chunks.push((first ? '' : ',') + batch.join(','))
    chunks.push(']}')
    const file = statePath(this.dir)
    const tmp = `${file}.tmp`
    const fh = await open(tmp, 'w', 0o600)
    try {
      for (const chunk of chunks) await fh.write(chunk)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, file)
    this.lastGeneration = gen
  }

  /** Flushes every `ms` milliseconds when something changed. */
  start(ms: number): void {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), ms)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.flush()
  }
}
