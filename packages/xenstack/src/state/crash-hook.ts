/**
 * TEST-ONLY crash points for the reliability suite (test/reliability/crash*.test.ts): a xenstack process that
 * SIGKILLs itself at an exact place — inside a state-store transaction before it commits, right after a commit and
 * before the engine acts on it, or while a node command it sent is unanswered — and a per-task execution log kept
 * outside the process, so a test can prove that no succeeded task ran twice across kills.
 *
 * Why a hook: "during a state write" lasts microseconds; a parent killing from outside cannot hit it on purpose.
 *
 * Armed only when BOTH hold, so it cannot be switched on by accident in production:
 *   1. the environment variable `XENSTACK_TEST_CRASH_FILE` names a file, and
 *   2. that file is JSON whose `armed` member is exactly ARM_PHRASE.
 * A variable without such a file arms nothing and says so on stderr once. When armed, the process says so on stderr.
 *
 * The file: `{ "armed": ARM_PHRASE, "log": "<path>", "point"?: CrashPoint, "at"?: N }`
 *   - `log`: every task start/end and every kill is appended there (`start <key> <attempt> <pid>`,
 *     `end <key> <status> <pid>`, `kill <point> <n> <pid>`). Appends are write(2) with O_APPEND: they survive a
 *     SIGKILL of the process (the kernel has them), and lines of concurrent processes do not interleave.
 *   - `point` + `at`: the process kills itself the `at`-th time (1-based, counted in this process) it reaches
 *     `point`. Without them the file only turns on the log.
 * The file is read once, at the first hook call of the process.
 */
import { appendFileSync, readFileSync } from 'node:fs'

export const ARM_PHRASE = 'xenstack test crash hook: this process kills itself with SIGKILL (never in production)'
export const CRASH_FILE_ENV = 'XENSTACK_TEST_CRASH_FILE'

/**
 * - `journal-write`: inside the engine journal's transaction, every transition of the batch written, not committed.
 * - `journal-commit`: right after a journal batch committed, before the scheduler starts what it recorded.
 * - `node-command`: a task's node command was sent and its answer not handed to the task (killed 20 ms after
 *   sending, or when the answer arrives if that is sooner).
 */
export const CRASH_POINTS = ['journal-write', 'journal-commit', 'node-command'] as const
export type CrashPoint = (typeof CRASH_POINTS)[number]

interface Armed {
  log?: string
  point?: CrashPoint
  at?: number
}

let armed: Armed | null | undefined
const counts = new Map<CrashPoint, number>()

function load(): Armed | null {
  if (armed !== undefined) return armed
  armed = null
  const file = process.env[CRASH_FILE_ENV]
  if (!file) return armed
  let doc: Record<string, unknown> | undefined
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  } catch (e) {
    process.stderr.write(`${CRASH_FILE_ENV}=${file}: not armed (${(e as Error).message})\n`)
    return armed
  }
  if (doc?.armed !== ARM_PHRASE) {
    process.stderr.write(`${CRASH_FILE_ENV}=${file}: not armed (armed: expected the test phrase)\n`)
    return armed
  }
  const point = doc.point as CrashPoint | undefined
  if (point !== undefined && !CRASH_POINTS.includes(point))
    throw new Error(`${file}: point: expected one of ${CRASH_POINTS.join(', ')}, got ${JSON.stringify(point)}`)
  if (point !== undefined && !(Number.isInteger(doc.at) && (doc.at as number) > 0))
    throw new Error(`${file}: at: expected a positive integer with point, got ${JSON.stringify(doc.at)}`)
  armed = { log: typeof doc.log === 'string' ? doc.log : undefined, point, at: doc.at as number | undefined }
  process.stderr.write(
    `TEST CRASH HOOK ARMED (${file}): ${point ? `SIGKILL at ${point} #${armed.at}` : 'task log only'}\n`,
  )
  return armed
}

/** Is a crash file armed in this process (the per-task log or a crash point)? */
export function crashHookArmed(): boolean {
  return load() !== null
}

/** Appends one line to the armed log (no-op when not armed). */
export function crashLog(line: string): void {
  const a = load()
  if (a?.log) appendFileSync(a.log, `${line} ${Date.now()}\n`)
}

/**
 * Counts one arrival at `point`; at the armed count returns the kill (log it, then SIGKILL this process: no cleanup,
 * no exit handlers, as `kill -9` from outside), otherwise undefined. For kills that must wait for something.
 */
export function crashArrival(point: CrashPoint): (() => void) | undefined {
  const a = load()
  if (!a || a.point !== point) return undefined
  const n = (counts.get(point) ?? 0) + 1
  counts.set(point, n)
  if (n !== a.at) return undefined
  return () => {
    crashLog(`kill ${point} ${n} ${process.pid}`)
    process.kill(process.pid, 'SIGKILL')
  }
}

/** Counts one arrival at `point` and, at the armed count, SIGKILLs this process there and then. */
export function crashPoint(point: CrashPoint): void {
  crashArrival(point)?.()
}
