// testkit's fuzz runner (src/fuzz.ts): the per-case budget is CPU time, so a case that merely waits (a loaded
// machine, a slow answer) passes while one that burns CPU fails; a case that waits past the wall-clock hang limit
// fails as a hang; every failure names target, seed and case index with the replay line.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { FuzzFailure, caseRng, formatFuzzStats, fuzz } from '../src/fuzz.js'

/** Burns at least `ms` of this process's CPU time (however long that takes on the clock). */
function burnCpu(ms: number): void {
  const start = process.cpuUsage()
  for (;;) {
    const used = process.cpuUsage(start)
    if ((used.user + used.system) / 1000 >= ms) return
  }
}

// The variables would override the options under test.
for (const name of ['FUZZ_SEED', 'FUZZ_CASES', 'FUZZ_CASE', 'FUZZ_CASE_BUDGET_MS', 'FUZZ_CASE_HANG_MS'])
  delete process.env[name]

test('a case that waits longer than its CPU budget but uses little CPU passes; the stats count it', async () => {
  const stats = await fuzz({
    name: 'waiting',
    seed: 3,
    cases: 3,
    budgetMs: 100,
    hangMs: 60_000,
    run: async (_rng, i) => {
      await sleep(250)
      return i === 1 ? 'odd' : 'even'
    },
  })
  assert.equal(stats.cases, 3)
  assert.deepEqual(stats.outcomes, { even: 2, odd: 1 })
  assert.ok(stats.maxCaseMs >= 240, `the wall time is measured (${stats.maxCaseMs} ms)`)
  assert.ok(stats.maxCaseCpuMs < 100, `the CPU time is measured apart (${stats.maxCaseCpuMs} ms)`)
  assert.match(formatFuzzStats(stats), /^waiting: 3 cases \(seed 3\): even 2, odd 1; crashes 0; max case .* ms CPU/)
})

test('a case that uses more CPU time than its budget fails, naming seed, case and the CPU time', async () => {
  await assert.rejects(
    fuzz({
      name: 'burning',
      seed: 5,
      cases: 4,
      budgetMs: 50,
      run: (_rng, i) => {
        if (i === 2) burnCpu(200)
        return 'ok'
      },
    }),
    (e: unknown) =>
      e instanceof FuzzFailure &&
      e.index === 2 &&
      e.seed === 5 &&
      /fuzz burning: case 2 of seed 5 failed: Error: used \d+ ms of CPU time \(budget 50 ms/.test(e.message) &&
      /replay: FUZZ_SEED=5 FUZZ_CASE=2 /.test(e.message),
  )
})

test('a case that waits past the hang limit fails as hung; a throwing case fails with its error', async () => {
  await assert.rejects(
    fuzz({ name: 'stuck', seed: 7, cases: 2, hangMs: 50, run: async () => (await sleep(300), 'ok') }),
    (e: unknown) =>
      e instanceof FuzzFailure &&
      e.index === 0 &&
      /hung: took \d+ ms on the clock \(hang limit 50 ms\)/.test(e.message),
  )
  await assert.rejects(
    fuzz({
      name: 'throwing',
      seed: 9,
      cases: 5,
      run: (rng, i) => {
        if (i === 3) throw new TypeError(`bad ${rng.int(0, 9)}`)
        return 'ok'
      },
    }),
    (e: unknown) =>
      e instanceof FuzzFailure && e.index === 3 && /case 3 of seed 9 failed: TypeError: bad \d/.test(e.message),
  )
})

test('a case replays alone: its generator depends on (seed, index) only', () => {
  const a = caseRng(14, 516)
  const b = caseRng(14, 516)
  const seqA = Array.from({ length: 5 }, () => a.int(0, 1_000_000))
  assert.deepEqual(
    Array.from({ length: 5 }, () => b.int(0, 1_000_000)),
    seqA,
  )
  const other = caseRng(14, 517)
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => other.int(0, 1_000_000)),
    seqA,
  )
})
