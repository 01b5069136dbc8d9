/**
 * Runs test sets on environments: fuel-ostf's execution model without its forked processes.
 *
 * - A run is recorded (all the set's tests: `wait_running`, or `disabled` with the reason) before anything runs;
 *   each test is marked `running` before it starts and gets its result when it ends.
 * - One active run per test set and environment (the store refuses a second); `stop` aborts a run (running and
 *   waiting tests become `stopped`); `restart` runs chosen tests of a finished run again.
 * - Tests are independent and run in parallel, bounded by one limit shared by every run of this runner (so
 *   several sets started together do not multiply the load on the hosts); `runLast` tests run after the others
 *   of their run. A test that outlives its timeout is an `error`, not a hang.
 */
import { SkipTest, StepError, StepFailure, failureMessage } from './step.js'
import { ActiveRunError, HealthStore, RunNotFoundError } from './store.js'
import { disabledReason } from './tags.js'
import { testSet } from './testsets.js'
import type { Evidence, HealthTest, RunRecord, TestContext, TestResult, TestStatus } from './types.js'

export { ActiveRunError, RunNotFoundError }

/** What decides applicability (cheap: read from the state store). */
export interface EnvironmentDescription {
  tags: ReadonlySet<string>
  releaseVersion: string
}

export interface OpenedEnvironment<Env> {
  env: Env
  close(): Promise<void>
}

export interface HealthRunnerOptions<Env> {
  store: HealthStore
  catalog: readonly HealthTest<Env>[]
  describe(environment: string): EnvironmentDescription
  /** Opens connections for a run (executors, XAPI); closed when the run ends. */
  open(environment: string): Promise<OpenedEnvironment<Env>>
  /** Tests running at once across all runs of this runner (default 6). */
  concurrency?: number
  /** Per-test limit (default 120 s). */
  testTimeoutMs?: number
}

export class UnknownTestSetError extends Error {
  constructor(id: string) {
    super(`unknown test set "${id}" (known: sanity, smoke, ha, tests_platform, cloudvalidation, configuration)`)
    this.name = 'UnknownTestSetError'
  }
}

export class UnknownTestError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UnknownTestError'
  }
}

export class RunNotActiveHereError extends Error {
  constructor(run: RunRecord) {
    super(
      `run ${run.id} (${run.testset} on ${run.environment}) is executed by another process and cannot be stopped here`,
    )
    this.name = 'RunNotActiveHereError'
  }
}

/** A counting semaphore. */
class Limiter {
  private busy = 0
  private readonly queue: (() => void)[] = []
  constructor(private readonly max: number) {}
  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy >= this.max) await new Promise<void>((r) => this.queue.push(r))
    else this.busy++
    try {
      return await fn()
    } finally {
      const next = this.queue.shift()
      if (next) next()
      else this.busy--
    }
  }
}

const now = () => new Date().toISOString()
const NOT_SELECTED = 'not selected for this run'

interface ActiveRun {
  controller: AbortController
  done: Promise<RunRecord>
}

export class HealthRunner<Env> {
  private readonly limiter: Limiter
  private readonly active = new Map<string, ActiveRun>()
  /** Environments open for runs, shared by the runs of one environment (one set of connections, one XAPI session). */
  private readonly opened = new Map<string, { env: Promise<OpenedEnvironment<Env>>; users: number }>()

  constructor(readonly options: HealthRunnerOptions<Env>) {
    this.limiter = new Limiter(options.concurrency ?? 6)
  }

  get store(): HealthStore {
    return this.options.store
  }

  /** The tests of a set, in declaration order. */
  testsOf(testset: string): HealthTest<Env>[] {
    if (!testSet(testset)) throw new UnknownTestSetError(testset)
    return this.options.catalog.filter((t) => t.testset === testset)
  }

  /** Each test of a set with `wait_running`, or `disabled` and why, for this environment. */
  plan(environment: string, testset: string, selected?: readonly string[]): TestResult[] {
    const profile = testSet(testset)
    if (!profile) throw new UnknownTestSetError(testset)
    const tests = this.testsOf(testset)
    if (selected) {
      const unknown = selected.filter((id) => !tests.some((t) => t.id === id))
      if (unknown.length)
        throw new UnknownTestError(
          `test set ${testset} has no test ${unknown.join(', ')} (it has ${tests.map((t) => t.id).join(', ')})`,
        )
    }
    const desc = this.options.describe(environment)
    const setReason = disabledReason(profile, desc)
    return tests.map((t) => {
      const reason =
        setReason ?? disabledReason(t, desc) ?? (selected && !selected.includes(t.id) ? NOT_SELECTED : undefined)
      return blankResult(t, reason ? 'disabled' : 'wait_running', reason ?? '')
    })
  }

  /** Records a run and starts it; resolves once it is recorded (use `wait` for the end). */
  start(
    environment: string,
    testset: string,
    opts: { tests?: readonly string[]; meta?: Record<string, unknown> } = {},
  ): RunRecord {
    const tests = this.plan(environment, testset, opts.tests)
    const run = this.store.createRun({ environment, testset, meta: opts.meta, tests })
    this.launch(
      run,
      tests.filter((t) => t.status === 'wait_running').map((t) => t.id),
    )
    return run
  }

  /** Runs tests of a finished run again (all of its enabled tests when none are named). */
  restart(runId: string, tests?: readonly string[]): RunRecord {
    const old = this.store.run(runId)
    const fresh = this.plan(old.environment, old.testset)
    const ids = (tests ?? fresh.filter((t) => t.status === 'wait_running').map((t) => t.id)).filter((id) =>
      fresh.some((t) => t.id === id && t.status === 'wait_running'),
    )
    const run = this.store.reopenRun(
      runId,
      ids.map((id) => ({ id, status: 'wait_running' as TestStatus })),
    )
    this.launch(run, ids)
    return run
  }

  /** Stops a run: running and waiting tests become `stopped`. Resolves with the stopped run. */
  async stop(runId: string): Promise<RunRecord> {
    const a = this.active.get(runId)
    if (a) {
      a.controller.abort(new Error('stopped by request'))
      return a.done
    }
    const run = this.store.run(runId)
    if (run.status !== 'running') return run
    // Not ours: the store closes it if its process is gone; otherwise another process owns it.
    if (!this.store.activeRun(run.environment, run.testset)) return this.store.run(runId)
    throw new RunNotActiveHereError(run)
  }

  /** Resolves when the run ends (at once for a run that is not running in this process). */
  wait(runId: string): Promise<RunRecord> {
    return this.active.get(runId)?.done ?? Promise.resolve(this.store.run(runId))
  }

  /** Stops every run of this runner (server shutdown). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.stop(id)))
  }

  private launch(run: RunRecord, ids: string[]): void {
    const controller = new AbortController()
    const done = this.execute(run, ids, controller.signal).finally(() => this.active.delete(run.id))
    this.active.set(run.id, { controller, done })
  }

  private async execute(run: RunRecord, ids: string[], signal: AbortSignal): Promise<RunRecord> {
    const byId = new Map(this.testsOf(run.testset).map((t) => [t.id, t]))
    const tests = ids.map((id) => byId.get(id)!).filter(Boolean)
    let opened: OpenedEnvironment<Env> | undefined
    try {
      try {
        opened = await this.acquire(run.environment)
      } catch (e) {
        const message = `cannot reach environment ${run.environment}: ${(e as Error).message}`
        for (const t of tests) this.store.updateTest(run.id, t.id, { status: 'error', message, endedAt: now() })
        return this.finish(run.id, signal)
      }
      const env = opened.env
      const baselines = new Map<string, Promise<unknown>>()
      for (const t of tests) {
        if (t.baseline) {
          const p = t.baseline(env, signal)
          p.catch(() => {}) // reported when the test runs
          baselines.set(t.id, p)
        }
      }
      await Promise.allSettled(baselines.values())
      const runOne = (t: HealthTest<Env>) =>
        this.limiter.use(() => this.runTest(run.id, t, env, baselines.get(t.id), signal))
      await Promise.all(tests.filter((t) => !t.runLast).map(runOne))
      await Promise.all(tests.filter((t) => t.runLast).map(runOne))
      return this.finish(run.id, signal)
    } finally {
      if (opened) await this.release(run.environment)
    }
  }

  private acquire(environment: string): Promise<OpenedEnvironment<Env>> {
    let o = this.opened.get(environment)
    if (!o) {
      o = { env: this.options.open(environment), users: 0 }
      this.opened.set(environment, o)
      const failed = o
      o.env.catch(() => {
        if (this.opened.get(environment) === failed) this.opened.delete(environment)
      })
    }
    o.users++
    return o.env
  }

  private async release(environment: string): Promise<void> {
    const o = this.opened.get(environment)
    if (!o || --o.users > 0) return
    this.opened.delete(environment)
    await (await o.env).close().catch(() => {})
  }

  private finish(runId: string, signal: AbortSignal): RunRecord {
    if (signal.aborted) {
      for (const t of this.store.run(runId).tests) {
        if (t.status === 'wait_running' || t.status === 'running')
          this.store.updateTest(runId, t.id, { status: 'stopped', message: 'stopped by request', endedAt: now() })
      }
    }
    this.store.finishRun(runId, signal.aborted ? 'stopped' : 'finished')
    return this.store.run(runId)
  }

  private async runTest(
    runId: string,
    t: HealthTest<Env>,
    env: Env,
    baseline: Promise<unknown> | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return
    const started = Date.now()
    this.store.updateTest(runId, t.id, { status: 'running', startedAt: new Date(started).toISOString() })
    const evidence: Evidence[] = []
    const warnings: string[] = []
    let currentStep: number | undefined
    const testSignal = AbortSignal.any([signal, AbortSignal.timeout(this.options.testTimeoutMs ?? 120_000)])
    const ctx: TestContext<Env> = {
      env,
      signal: testSignal,
      baseline: undefined,
      step: async (n, fn) => {
        if (n < 1 || n > t.steps.length)
          throw new Error(`${t.id}: step ${n} is not declared (it has ${t.steps.length})`)
        currentStep = n
        try {
          return await fn()
        } catch (e) {
          if (e instanceof StepFailure) {
            e.stepNumber ??= n
            throw e
          }
          if (e instanceof SkipTest || e instanceof StepError) throw e
          throw new StepError(n, e)
        }
      },
      fail: (expected, found, ev) => {
        throw new StepFailure(expected, found, ev ?? [], currentStep)
      },
      skip: (reason) => {
        throw new SkipTest(reason)
      },
      warn: (m) => void warnings.push(m),
      evidence: (label, value) => void evidence.push({ label, value }),
    }
    let result: Pick<TestResult, 'status' | 'message' | 'step'>
    try {
      if (baseline) ctx.baseline = await baseline
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () => reject(testSignal.reason)
        if (testSignal.aborted) onAbort()
        else testSignal.addEventListener('abort', onAbort, { once: true })
      })
      await Promise.race([t.run(ctx), aborted])
      result = {
        status: 'success',
        message: warnings.map((w) => `warning: ${w}`).join('\n'),
        step: null,
      }
    } catch (e) {
      if (signal.aborted) result = { status: 'stopped', message: 'stopped by request', step: currentStep ?? null }
      else if (testSignal.aborted)
        result = {
          status: 'error',
          message: `${currentStep ? `Step ${currentStep}: ` : ''}did not finish within ${Math.round((this.options.testTimeoutMs ?? 120_000) / 1000)} s`,
          step: currentStep ?? null,
        }
      else if (e instanceof StepFailure) {
        evidence.push(...e.evidence)
        result = { status: 'failure', message: failureMessage(e), step: e.stepNumber ?? null }
      } else if (e instanceof SkipTest) result = { status: 'skipped', message: e.reason, step: null }
      else if (e instanceof StepError) result = { status: 'error', message: e.message, step: e.stepNumber }
      else result = { status: 'error', message: (e as Error)?.message ?? String(e), step: currentStep ?? null }
      if (warnings.length && result.status !== 'stopped')
        result.message += '\n' + warnings.map((w) => `warning: ${w}`).join('\n')
    }
    this.store.updateTest(runId, t.id, {
      ...result,
      evidence,
      taken: Math.round((Date.now() - started) / 10) / 100,
      endedAt: now(),
    })
  }
}

function blankResult(t: HealthTest<any>, status: TestStatus, message: string): TestResult {
  return {
    id: t.id,
    testset: t.testset,
    name: t.title,
    description: describe(t),
    duration: t.duration,
    status,
    message,
    step: null,
    taken: null,
    evidence: [],
    startedAt: null,
    endedAt: null,
  }
}

/** fuel-ostf's description: the text, the numbered scenario, duration, tags and first release. */
export function describe(t: HealthTest<any>): string {
  return [
    t.description,
    '',
    'Scenario:',
    ...t.steps.map((s, i) => `  ${i + 1}. ${s}`),
    `Duration: ${t.duration}`,
    ...(t.deploymentTags ? [`Deployment tags: ${t.deploymentTags}`] : []),
    ...(t.availableSince ? [`Available since release: ${t.availableSince}`] : []),
  ].join('\n')
}
