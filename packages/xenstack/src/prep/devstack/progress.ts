/**
 * The record of a `devstack install` run, so a re-run knows where the last one stopped: one JSON file per XenServer
 * host and DomU under the data directory (`<data dir>/devstack/<host>/<domU>.json`, 0600, written atomically).
 *
 * Why a file and not the state store: nothing here is shared with an environment or a deployment, and every step
 * re-checks the pool itself before acting (the record never makes a step skip its check); the record only says
 * which steps finished, which one stopped the run and why, and what is in flight (the installer VM's uuid).
 * It holds no secrets.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

export type StepStatus = 'done' | 'blocked' | 'failed'

export interface StepRecord {
  status: StepStatus
  at: string
  message?: string
}

export interface DevstackRecord {
  host: string
  domU: string
  steps: Record<string, StepRecord>
  /** Step-specific values that must survive a stop (e.g. the installer VM's uuid). */
  notes: Record<string, string>
}

export class ProgressFile {
  readonly path: string
  record: DevstackRecord

  constructor(dataDir: string, host: string, domU: string) {
    const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_')
    this.path = join(dataDir, 'devstack', safe(host), `${safe(domU)}.json`)
    this.record = { host, domU, steps: {}, notes: {} }
    try {
      const r = JSON.parse(readFileSync(this.path, 'utf8')) as DevstackRecord
      if (r && typeof r === 'object' && r.steps && typeof r.steps === 'object')
        this.record = { host, domU, steps: r.steps, notes: r.notes ?? {} }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(
          `${this.path}: not a devstack progress record (${(e as Error).message}); remove it to start over`,
        )
    }
  }

  /** Steps the previous run finished, in record order. */
  done(): string[] {
    return Object.entries(this.record.steps)
      .filter(([, s]) => s.status === 'done')
      .map(([id]) => id)
  }

  mark(step: string, status: StepStatus, message?: string): void {
    this.record.steps[step] = { status, at: new Date().toISOString(), ...(message ? { message } : {}) }
    this.save()
  }

  note(key: string, value: string | undefined): void {
    if (value === undefined) delete this.record.notes[key]
    else this.record.notes[key] = value
    this.save()
  }

  private save(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 })
    const tmp = `${this.path}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(this.record, null, 2) + '\n', { mode: 0o600 })
    renameSync(tmp, this.path)
  }
}
