/**
 * Fault injection for reliability tests: rules that make matching calls fail the way a real pool fails.
 *
 * A rule matches API calls by method (exact `VM.start`, glob `VM.*`, or `*`; `Async.` prefixes are matched after
 * being stripped unless the pattern names them) and, for HTTP handlers, by path (`/import_raw_vdi`). It fires by
 * `rate` (probability 0..1, from a seeded generator so runs repeat), or by schedule: `every` Nth match, `after`
 * the first N matches, `at` given match numbers (1-based), limited to `count` injections in total.
 *
 * Kinds: SESSION_INVALID and HOST_IS_SLAVE (XAPI errors with their real parameters), `reset` (the TCP
 * connection is destroyed without a response), `latency` (the call is delayed by `latency_ms`, then runs),
 * `http500` (an HTTP 500 with no XAPI envelope), and `master_change`: another host of the pool becomes the master
 * just before the call (pool.designate_new_master), so the call — and every later one sent to the old master —
 * meets XAPI's own HOST_IS_SLAVE naming the new master (a one-host pool has no other master: nothing happens).
 */

export const FAULT_KINDS = ['SESSION_INVALID', 'HOST_IS_SLAVE', 'reset', 'latency', 'http500', 'master_change'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface FaultRule {
  /** Assigned when the rule is added if not given. */
  id?: string
  kind: FaultKind
  /** API method pattern; default `*` (every call). Ignored for HTTP handlers when `path` is set. */
  method?: string
  /** HTTP handler path (e.g. `/import_raw_vdi`); a rule with only `path` does not match API calls. */
  path?: string
  rate?: number
  every?: number
  after?: number
  at?: number[]
  count?: number
  latency_ms?: number
}

export interface FaultCounters {
  id: string
  kind: FaultKind
  matched: number
  injected: number
}

/** What the server must do with one call. */
export type FaultAction =
  | { kind: 'SESSION_INVALID'; rule: string }
  | { kind: 'HOST_IS_SLAVE'; rule: string }
  | { kind: 'reset'; rule: string }
  | { kind: 'http500'; rule: string }
  | { kind: 'latency'; rule: string; ms: number }
  | { kind: 'master_change'; rule: string }

export class FaultRuleError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`fault rule ${field}: ${message}`)
    this.name = 'FaultRuleError'
  }
}

const RULE_KEYS = new Set(['id', 'kind', 'method', 'path', 'rate', 'every', 'after', 'at', 'count', 'latency_ms'])

/** Validates an untrusted rule (from YAML, a flag or the admin endpoint); `where` prefixes field names. */
export function parseFaultRule(input: unknown, where = 'fault'): FaultRule {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new FaultRuleError(where, 'expected an object such as {kind: SESSION_INVALID, method: "VM.start", rate: 0.1}')
  const o = input as Record<string, unknown>
  for (const k of Object.keys(o))
    if (!RULE_KEYS.has(k))
      throw new FaultRuleError(`${where}.${k}`, `unknown field; expected one of ${[...RULE_KEYS].join(', ')}`)
  if (typeof o.kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(o.kind))
    throw new FaultRuleError(
      `${where}.kind`,
      `expected one of ${FAULT_KINDS.join(', ')}, got ${JSON.stringify(o.kind)}`,
    )
  const rule: FaultRule = { kind: o.kind as FaultKind }
  const str = (k: 'id' | 'method' | 'path') => {
    if (o[k] === undefined) return
    if (typeof o[k] !== 'string' || o[k] === '')
      throw new FaultRuleError(`${where}.${k}`, 'expected a non-empty string')
    rule[k] = o[k] as string
  }
  str('id')
  str('method')
  str('path')
  if (rule.path !== undefined && !rule.path.startsWith('/'))
    throw new FaultRuleError(
      `${where}.path`,
      `expected an absolute HTTP path such as /import_raw_vdi, got ${rule.path}`,
    )
  const int = (k: 'every' | 'after' | 'count' | 'latency_ms', min: number) => {
    if (o[k] === undefined) return
    if (typeof o[k] !== 'number' || !Number.isInteger(o[k]) || (o[k] as number) < min)
      throw new FaultRuleError(`${where}.${k}`, `expected an integer ≥ ${min}, got ${JSON.stringify(o[k])}`)
    rule[k] = o[k] as number
  }
  int('every', 1)
  int('after', 0)
  int('count', 0)
  int('latency_ms', 0)
  if (o.rate !== undefined) {
    if (typeof o.rate !== 'number' || !(o.rate >= 0 && o.rate <= 1))
      throw new FaultRuleError(`${where}.rate`, `expected a number between 0 and 1, got ${JSON.stringify(o.rate)}`)
    rule.rate = o.rate
  }
  if (o.at !== undefined) {
    if (!Array.isArray(o.at) || !o.at.every((n) => Number.isInteger(n) && n >= 1))
      throw new FaultRuleError(`${where}.at`, 'expected a list of call numbers (integers ≥ 1)')
    rule.at = o.at as number[]
  }
  if (rule.kind === 'master_change' && rule.path !== undefined)
    throw new FaultRuleError(
      `${where}.path`,
      'kind master_change acts on API calls (method), not on HTTP handler paths',
    )
  if (rule.kind === 'latency' && rule.latency_ms === undefined)
    throw new FaultRuleError(
      `${where}.latency_ms`,
      'required for kind latency (milliseconds to delay each matching call)',
    )
  return rule
}

/** Parses the CLI form `KIND[:METHOD][@RATE]`, e.g. `SESSION_INVALID:VM.start@0.1`, `latency:*@1:50`… see below. */
export function parseFaultFlag(flag: string): FaultRule {
  // KIND[:METHOD_OR_PATH][@RATE][+LATENCY_MS]
  const m = /^([A-Za-z_0-9]+)(?::([^@+]+))?(?:@([0-9.]+))?(?:\+([0-9]+))?$/.exec(flag)
  if (!m)
    throw new FaultRuleError(
      '--fault',
      `expected KIND[:METHOD|PATH][@RATE][+LATENCY_MS] such as SESSION_INVALID:VM.start@0.1 or latency:*@1+20, got ${flag}`,
    )
  const raw: Record<string, unknown> = { kind: m[1] }
  if (m[2] !== undefined) raw[m[2].startsWith('/') ? 'path' : 'method'] = m[2]
  raw.rate = m[3] !== undefined ? Number(m[3]) : 1
  if (m[4] !== undefined) raw.latency_ms = Number(m[4])
  return parseFaultRule(raw, `--fault ${flag}`)
}

function globToRegExp(glob: string): RegExp {
  const esc = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${esc}$`, 'i')
}

/** mulberry32: a small seeded PRNG, so a rate-based run injects the same faults each time. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface LiveRule {
  rule: FaultRule & { id: string }
  re?: RegExp
  matched: number
  injected: number
}

export class FaultInjector {
  private rules: LiveRule[] = []
  private nextId = 1
  private random: () => number

  constructor(opts: { seed?: number; rules?: FaultRule[] } = {}) {
    this.random = prng(opts.seed ?? 1)
    for (const r of opts.rules ?? []) this.add(r)
  }

  /** Restarts the generator rate-based rules draw from (a test picks the seed of its run). */
  reseed(seed: number): void {
    this.random = prng(seed)
  }

  /** True when no rule is installed (the server skips the fault hook entirely). */
  get empty(): boolean {
    return this.rules.length === 0
  }

  /** True when some rule of these kinds (optionally: with a `path`) is installed. */
  has(kinds: readonly FaultKind[], withPath = false): boolean {
    return this.rules.some((r) => kinds.includes(r.rule.kind) && (!withPath || r.rule.path !== undefined))
  }

  /** Called after every add/remove/clear (the server installs or removes its hooks). */
  onChange?: () => void

  add(rule: FaultRule): string {
    const id = rule.id ?? `f${this.nextId++}`
    if (this.rules.some((r) => r.rule.id === id)) throw new FaultRuleError('id', `a rule with id ${id} already exists`)
    const live: LiveRule = { rule: { ...rule, id }, matched: 0, injected: 0 }
    if (rule.path === undefined || rule.method !== undefined) live.re = globToRegExp(rule.method ?? '*')
    this.rules.push(live)
    this.onChange?.()
    return id
  }

  remove(id: string): boolean {
    const before = this.rules.length
    this.rules = this.rules.filter((r) => r.rule.id !== id)
    this.onChange?.()
    return this.rules.length !== before
  }

  clear(): void {
    this.rules = []
    this.onChange?.()
  }

  list(): (FaultRule & { id: string; matched: number; injected: number })[] {
    return this.rules.map((r) => ({ ...r.rule, matched: r.matched, injected: r.injected }))
  }

  counters(): FaultCounters[] {
    return this.rules.map((r) => ({ id: r.rule.id, kind: r.rule.kind, matched: r.matched, injected: r.injected }))
  }

  /** Totals of injected faults by kind (what the admin endpoint reports). */
  totals(): Record<FaultKind, number> {
    const t = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
    for (const r of this.rules) t[r.rule.kind] += r.injected
    return t
  }

  /**
   * Decides the fault for one API call (method as called, e.g. `Async.VM.start`), among rules of `kinds` (all when
   * omitted). Rules are tried in order; the first that fires wins.
   */
  forCall(method: string, kinds?: readonly FaultKind[]): FaultAction | undefined {
    if (this.rules.length === 0) return undefined
    const bare = method.startsWith('Async.') ? method.slice(6) : method
    for (const r of this.rules) {
      if (kinds && !kinds.includes(r.rule.kind)) continue
      if (!r.re || !(r.re.test(method) || r.re.test(bare))) continue
      const a = this.fire(r)
      if (a) return a
    }
    return undefined
  }

  /** Decides the fault for one HTTP handler request (path without query). */
  forHttp(path: string): FaultAction | undefined {
    if (this.rules.length === 0) return undefined
    const p = path.replace(/\/+$/, '') || '/'
    for (const r of this.rules) {
      if (r.rule.path === undefined || r.rule.path.replace(/\/+$/, '') !== p) continue
      const a = this.fire(r)
      if (a) return a
    }
    return undefined
  }

  private fire(r: LiveRule): FaultAction | undefined {
    const n = ++r.matched
    const rule = r.rule
    if (rule.count !== undefined && r.injected >= rule.count) return undefined
    if (rule.after !== undefined && n <= rule.after) return undefined
    let fires: boolean
    if (rule.at !== undefined) fires = rule.at.includes(n)
    else if (rule.every !== undefined) fires = (n - (rule.after ?? 0)) % rule.every === 0
    else fires = this.random() < (rule.rate ?? 1)
    if (!fires) return undefined
    r.injected++
    if (rule.kind === 'latency') return { kind: 'latency', rule: rule.id, ms: rule.latency_ms ?? 0 }
    return { kind: rule.kind, rule: rule.id }
  }
}
