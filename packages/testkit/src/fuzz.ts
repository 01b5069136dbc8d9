/**
 * A small seeded fuzzing toolkit: a PRNG, choices, string and structure mutators, and a case runner.
 *
 * Every case gets its own generator seeded from (run seed, case index), so a failing case is replayed alone with
 * `FUZZ_SEED=<seed> FUZZ_CASE=<index>`; `FUZZ_CASES` scales the number of cases. No dependency: the same
 * cases come out on every machine and Node version.
 */

/** mulberry32: small, fast and good enough to spread fuzz cases; deterministic for a 32-bit seed. */
export class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let r = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]
  }
  /** One of the choices, each with its weight. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((s, [w]) => s + w, 0)
    let x = this.next() * total
    for (const [w, v] of choices) {
      x -= w
      if (x < 0) return v
    }
    return choices[choices.length - 1][1]
  }
  /** A string of `length` characters drawn from `alphabet`. */
  string(length: number, alphabet: string = PRINTABLE): string {
    let s = ''
    for (let i = 0; i < length; i++) s += alphabet[Math.floor(this.next() * alphabet.length)]
    return s
  }
}

export const PRINTABLE =
  ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~'

/** Strings that break naive parsers: empty, huge, control characters, unpaired surrogates, injections. */
export const NASTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '\0',
  '\t\r\n',
  '\u2028',
  '\ud800',
  '\udfff',
  '💥',
  'é',
  '\ufeff',
  'x'.repeat(1000),
  '../../etc/passwd',
  "'; DROP TABLE x;--",
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  'toString',
  'NaN',
  '-0',
  '1e309',
  '9007199254740993',
  '%s%n',
  '${x}',
  '@X@',
  '&amp;',
  ']]>',
  '"',
  "'",
  '\\',
  'null',
  'true',
]

/**
 * JSON's own syntax and the values JSON parsers get wrong (an overflowing number, negative zero, a lone surrogate):
 * `mutateText` tokens for any JSON text. A target adds the member names that mean something to it.
 */
export const JSON_TOKENS: readonly string[] = [
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"',
  'null',
  'true',
  '1e999',
  '-0',
  '"\\ud800"',
]

/** A random string: mostly printable, sometimes nasty, sometimes arbitrary code points. */
export function randomString(rng: Rng, maxLength = 20): string {
  return rng.weighted<() => string>([
    [5, () => rng.string(rng.int(0, maxLength))],
    [3, () => rng.pick(NASTY_STRINGS)],
    [1, () => String.fromCodePoint(...Array.from({ length: rng.int(1, 5) }, () => rng.int(0, 0x10ffff) & ~0x800))],
  ])()
}

/** A random JSON-like value (null, booleans, numbers incl. edge cases, strings, arrays, objects). */
export function randomValue(rng: Rng, depth = 3): unknown {
  const leaf = depth <= 0
  return rng.weighted<() => unknown>([
    [1, () => null],
    [1, () => rng.chance(0.5)],
    [1, () => rng.pick([0, -1, 1, 1.5, 2 ** 31, 2 ** 53 + 1, -1e308, 1e-320])],
    [3, () => randomString(rng)],
    [leaf ? 0 : 1.5, () => Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth - 1))],
    [
      leaf ? 0 : 1.5,
      () => {
        const o: Record<string, unknown> = {}
        for (let i = rng.int(0, 4); i > 0; i--) o[randomString(rng, 8)] = randomValue(rng, depth - 1)
        return o
      },
    ],
  ])()
}

/**
 * Mutates a text the way fuzzers do: flip/insert/delete/duplicate characters and spans, splice in tokens
 * (`tokens` are fragments meaningful to the target, e.g. YAML indicators or keywords), `edits` times.
 */
export function mutateText(rng: Rng, text: string, tokens: readonly string[] = [], edits = rng.int(1, 4)): string {
  let s = text
  for (let e = 0; e < edits; e++) {
    const at = rng.int(0, s.length)
    const span = rng.int(1, Math.min(40, Math.max(1, s.length - at)))
    s = rng.weighted<() => string>([
      [3, () => s.slice(0, at) + rng.string(1) + s.slice(at + 1)],
      [2, () => s.slice(0, at) + s.slice(at + span)],
      [2, () => s.slice(0, at) + s.slice(at, at + span) + s.slice(at)],
      [tokens.length ? 4 : 0, () => s.slice(0, at) + rng.pick(tokens) + s.slice(at)],
      [1, () => s.slice(0, at) + rng.pick(NASTY_STRINGS) + s.slice(at)],
      [1, () => s.slice(0, at)],
      [1, () => s.slice(0, at) + String.fromCharCode(rng.int(0, 0xffff)) + s.slice(at + 1)],
    ])()
  }
  return s
}

/** A deep copy of `value` with one to three random edits: replace, delete or add a member, change a type. */
export function mutateStructure(rng: Rng, value: unknown, edits = rng.int(1, 3)): unknown {
  let v = structuredClone(value)
  for (let e = 0; e < edits; e++) {
    // Walk down to a random container (or the root).
    const path: (string | number)[] = []
    let cur: unknown = v
    while (cur !== null && typeof cur === 'object' && rng.chance(0.7)) {
      const keys = Array.isArray(cur) ? cur.map((_, i) => i) : Object.keys(cur)
      if (!keys.length) break
      const k = rng.pick<string | number>(keys)
      const child = (cur as Record<string | number, unknown>)[k]
      if (child === null || typeof child !== 'object') {
        path.push(k)
        break
      }
      path.push(k)
      cur = child
    }
    if (!path.length) {
      if (rng.chance(0.1)) v = randomValue(rng)
      else if (v !== null && typeof v === 'object' && !Array.isArray(v))
        (v as Record<string, unknown>)[randomString(rng, 8)] = randomValue(rng)
      continue
    }
    const last = path[path.length - 1]
    let parent: any = v
    for (const k of path.slice(0, -1)) parent = parent[k]
    rng.weighted<() => void>([
      [4, () => void (parent[last] = randomValue(rng, 2))],
      [2, () => (Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last])],
      [2, () => void (parent[Array.isArray(parent) ? parent.length : randomString(rng, 8)] = randomValue(rng, 1))],
      [1, () => void (parent[last] = [parent[last]])],
      [1, () => void (parent[last] = String(parent[last]))],
    ])()
  }
  return v
}

export interface FuzzOptions<S> {
  /** Named in failure messages. */
  name: string
  /** Default case count (FUZZ_CASES overrides). */
  cases?: number
  /** Default seed (FUZZ_SEED overrides). */
  seed?: number
  /**
   * A case using more CPU time than this fails as pathological (default 1000 ms; FUZZ_CASE_BUDGET_MS overrides).
   * CPU time (the process's user + system time), not wall time: on a loaded machine a case waits for a core for
   * seconds without doing more work, and the budget is about the work (quadratic parsing, alias bombs).
   */
  budgetMs?: number
  /**
   * A case taking longer than this on the wall clock fails as a hang (default 30,000 ms; FUZZ_CASE_HANG_MS
   * overrides): the detector for a case that waits for something that never comes and so uses no CPU.
   */
  hangMs?: number
  /** Runs one case; returns its outcome label (e.g. 'accepted', 'rejected') for the statistics. */
  run: (rng: Rng, index: number, state: S) => string | Promise<string>
  state?: S
}

export interface FuzzStats {
  name: string
  seed: number
  cases: number
  /** Cases per outcome label. */
  outcomes: Record<string, number>
  /** The longest case on the wall clock. */
  maxCaseMs: number
  /** The case index of the slowest case on the wall clock. */
  slowestCase: number
  /** The most CPU time one case used (the budget's measure). */
  maxCaseCpuMs: number
  /** The case index of the case that used the most CPU time. */
  costliestCase: number
  totalMs: number
}

/** Thrown for a failing case: names the target, seed and case index, and the command line that replays it. */
export class FuzzFailure extends Error {
  constructor(
    readonly target: string,
    readonly seed: number,
    readonly index: number,
    readonly failure: unknown,
  ) {
    super(
      `fuzz ${target}: case ${index} of seed ${seed} failed: ${failure instanceof Error ? `${failure.name}: ${failure.message}` : String(failure)}\n` +
        `  replay: FUZZ_SEED=${seed} FUZZ_CASE=${index} node scripts/run-tests.mjs reliability`,
    )
    this.name = 'FuzzFailure'
  }
}

const envInt = (name: string): number | undefined => {
  const v = process.env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, found "${v}"`)
  return n
}

/** The generator of case `index` of run `seed` (a case can be replayed without running the ones before it). */
export function caseRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0)
}

/**
 * Runs `cases` seeded cases (or only `FUZZ_CASE`) in sequence; a case that throws, exceeds the CPU budget or
 * the wall-clock hang limit fails the run with a FuzzFailure naming its seed and index. Returns the statistics for reports.
 */
export async function fuzz<S = undefined>(opts: FuzzOptions<S>): Promise<FuzzStats> {
  const seed = envInt('FUZZ_SEED') ?? opts.seed ?? 1
  const cases = envInt('FUZZ_CASES') ?? opts.cases ?? 10_000
  const budget = envInt('FUZZ_CASE_BUDGET_MS') ?? opts.budgetMs ?? 1000
  const hang = envInt('FUZZ_CASE_HANG_MS') ?? opts.hangMs ?? 30_000
  const only = envInt('FUZZ_CASE')
  const stats: FuzzStats = {
    name: opts.name,
    seed,
    cases: 0,
    outcomes: {},
    maxCaseMs: 0,
    slowestCase: -1,
    maxCaseCpuMs: 0,
    costliestCase: -1,
    totalMs: 0,
  }
  const started = performance.now()
  const indices = only !== undefined ? [only] : Array.from({ length: cases }, (_, i) => i)
  for (const i of indices) {
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    let outcome: string
    try {
      outcome = await opts.run(caseRng(seed, i), i, opts.state as S)
    } catch (e) {
      throw new FuzzFailure(opts.name, seed, i, e)
    }
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const cpuMs = (cpu.user + cpu.system) / 1000
    if (cpuMs > budget)
      throw new FuzzFailure(
        opts.name,
        seed,
        i,
        new Error(`used ${cpuMs.toFixed(0)} ms of CPU time (budget ${budget} ms; ${ms.toFixed(0)} ms on the clock)`),
      )
    if (ms > hang)
      throw new FuzzFailure(
        opts.name,
        seed,
        i,
        new Error(
          `hung: took ${ms.toFixed(0)} ms on the clock (hang limit ${hang} ms) while using ${cpuMs.toFixed(0)} ms of CPU time`,
        ),
      )
    if (ms > stats.maxCaseMs) {
      stats.maxCaseMs = ms
      stats.slowestCase = i
    }
    if (cpuMs > stats.maxCaseCpuMs) {
      stats.maxCaseCpuMs = cpuMs
      stats.costliestCase = i
    }
    stats.cases++
    stats.outcomes[outcome] = (stats.outcomes[outcome] ?? 0) + 1
  }
  stats.totalMs = performance.now() - started
  return stats
}

/**
 * One line for logs and reports:
 * `name: N cases (seed S): accepted 812, rejected 9188; crashes 0; max case 2.9 ms CPU (case 7), 3.1 ms wall (case 7); total 2.4 s`.
 */
export function formatFuzzStats(s: FuzzStats): string {
  const outcomes = Object.entries(s.outcomes)
    .sort()
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')
  return (
    `${s.name}: ${s.cases} cases (seed ${s.seed}): ${outcomes}; crashes 0; ` +
    `max case ${s.maxCaseCpuMs.toFixed(1)} ms CPU (case ${s.costliestCase}), ${s.maxCaseMs.toFixed(1)} ms wall ` +
    `(case ${s.slowestCase}); total ${(s.totalMs / 1000).toFixed(1)} s`
  )
}

/**
 * True for a run large enough for assertions about the mix of outcomes ("a good share was rejected"); false when
 * one case is replayed (FUZZ_CASE) or FUZZ_CASES asks for a handful.
 */
export const isFullRun = (s: FuzzStats): boolean => s.cases >= 500
