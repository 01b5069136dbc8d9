/**
 * Idempotent resources and the two verbs over a list of them: `plan` (every diff, nothing changed) and `apply`
 * (in order, one report per resource, stopping at the first failure). Each resource checks before it acts, so a
 * second `apply` of the same list reports everything unchanged.
 */
import type { Executor } from './executor.js'
import { type NodeFacts, gatherFacts } from './facts.js'
import { redact } from './secret.js'

export type ResourceStatus = 'unchanged' | 'changed' | 'failed' | 'skipped'

/** What a check found. `current`/`desired` and `diff` never contain secret values. */
export interface CheckResult {
  inSync: boolean
  current: string
  desired: string
  /** Human-readable lines, e.g. `+ [xenserver] connection_password = ***`. Empty when in sync. */
  diff: string[]
  /** Extra information, e.g. `not installed`. */
  note?: string
}

export interface NodeContext {
  readonly exec: Executor
  facts(): Promise<NodeFacts>
  log(message: string): void
  /** Resources earlier in the list that changed (apply) or would change (plan). */
  readonly changed: ReadonlySet<Resource>
  readonly dryRun: boolean
}

export interface Resource {
  /** Stable, human-readable name, e.g. `file /etc/nova/nova-compute.conf`. */
  readonly id: string
  check(ctx: NodeContext): Promise<CheckResult>
  /** Brings the node to the desired state; called only when the check was not in sync. */
  apply(ctx: NodeContext, check: CheckResult): Promise<void>
  /** Re-check after apply and fail when still out of sync (default true; false for event-like resources). */
  readonly verifyAfterApply?: boolean
}

export interface PlanEntry {
  id: string
  inSync: boolean
  current: string
  desired: string
  diff: string[]
  note?: string
  error?: string
}

export interface ApplyEntry {
  id: string
  status: ResourceStatus
  diff: string[]
  note?: string
  error?: string
}

export interface PlanOptions {
  log?: (message: string) => void
  /** Keep going after a failure (default false: the rest is reported `skipped`). */
  continueOnFailure?: boolean
}

function context(exec: Executor, changed: Set<Resource>, dryRun: boolean, log?: (m: string) => void): NodeContext {
  return {
    exec,
    facts: () => gatherFacts(exec),
    log: (m) => log?.(redact(m)),
    changed,
    dryRun,
  }
}

/**
 * Every check result leaves through here: values of all known secrets are replaced by `***`, so a resource whose
 * content was built from a revealed secret (a rendered template) still never shows it.
 */
function scrub(c: CheckResult): CheckResult {
  return { ...c, current: redact(c.current), desired: redact(c.desired), diff: c.diff.map((d) => redact(d)) }
}

function message(e: unknown): string {
  return redact(e instanceof Error ? e.message : String(e))
}

/** Every resource's diff, without changing anything. A check that cannot run is reported with its error. */
export async function plan(
  exec: Executor,
  resources: readonly Resource[],
  options: PlanOptions = {},
): Promise<PlanEntry[]> {
  const changed = new Set<Resource>()
  const ctx = context(exec, changed, true, options.log)
  const out: PlanEntry[] = []
  for (const r of resources) {
    try {
      const c = scrub(await r.check(ctx))
      if (!c.inSync) changed.add(r)
      out.push({
        id: r.id,
        inSync: c.inSync,
        current: c.current,
        desired: c.desired,
        diff: c.diff,
        ...(c.note ? { note: c.note } : {}),
      })
    } catch (e) {
      out.push({ id: r.id, inSync: false, current: '?', desired: '?', diff: [], error: message(e) })
    }
  }
  return out
}

/** Only the entries that would change something (an empty list means the node is converged). */
export function pendingChanges(entries: readonly PlanEntry[]): PlanEntry[] {
  return entries.filter((e) => !e.inSync)
}

export interface ApplyReport {
  host: string
  entries: ApplyEntry[]
  changed: number
  unchanged: number
  failed: number
  skipped: number
  ok: boolean
}

export async function apply(
  exec: Executor,
  resources: readonly Resource[],
  options: PlanOptions = {},
): Promise<ApplyReport> {
  const changed = new Set<Resource>()
  const ctx = context(exec, changed, false, options.log)
  const entries: ApplyEntry[] = []
  let stop = false
  for (const r of resources) {
    if (stop) {
      entries.push({ id: r.id, status: 'skipped', diff: [], note: 'an earlier resource failed' })
      continue
    }
    let diff: string[] = []
    try {
      const c = scrub(await r.check(ctx))
      diff = c.diff
      if (c.inSync) {
        entries.push({ id: r.id, status: 'unchanged', diff: [], ...(c.note ? { note: c.note } : {}) })
        continue
      }
      for (const line of c.diff) ctx.log(`${exec.host}: ${r.id}: ${line}`)
      await r.apply(ctx, c)
      changed.add(r)
      if (r.verifyAfterApply !== false) {
        const after = await r.check(ctx)
        if (!after.inSync) throw new Error(`still not in sync after apply: ${after.diff.join('; ')}`)
      }
      entries.push({ id: r.id, status: 'changed', diff, ...(c.note ? { note: c.note } : {}) })
    } catch (e) {
      const error = `${exec.host}: ${r.id}: ${message(e)}`
      ctx.log(error)
      entries.push({ id: r.id, status: 'failed', diff, error })
      if (!options.continueOnFailure) stop = true
    }
  }
  const count = (s: ResourceStatus): number => entries.filter((e) => e.status === s).length
  return {
    host: exec.host,
    entries,
    changed: count('changed'),
    unchanged: count('unchanged'),
    failed: count('failed'),
    skipped: count('skipped'),
    ok: count('failed') === 0,
  }
}

/** A plain-text rendering of a plan, one block per resource that would change. */
export function formatPlan(entries: readonly PlanEntry[]): string {
  const lines: string[] = []
  for (const e of entries) {
    if (e.inSync) continue
    lines.push(e.error ? `! ${e.id}: ${e.error}` : `~ ${e.id}`)
    for (const d of e.diff) lines.push(`    ${d}`)
  }
  return lines.length === 0 ? 'no changes' : lines.join('\n')
}
