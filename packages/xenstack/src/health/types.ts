/**
 * The health-check model, after fuel-ostf: test sets, tests declared as data (title, description, numbered
 * steps, expected duration, deployment tags, first release) with a `run` function, and the statuses a test and a
 * run go through. Failures name their step and carry evidence, so "Step N failed" is never all a user gets.
 */

/** fuel-ostf's test statuses (tests not selected or not applicable are `disabled`). */
export type TestStatus =
  'wait_running' | 'running' | 'success' | 'failure' | 'error' | 'skipped' | 'stopped' | 'disabled'

/** fuel-ostf's run statuses (`restarted` is what a PUT asks for; the run then goes back to `running`). */
export type RunStatus = 'running' | 'finished' | 'stopped'

export const FINAL_TEST_STATUSES: readonly TestStatus[] = [
  'success',
  'failure',
  'error',
  'skipped',
  'stopped',
  'disabled',
]

/** A test set's `__profile__`. */
export interface TestSetProfile {
  id: string
  name: string
  description: string
  /** Order in lists (fuel-ostf's priority). */
  priority: number
  /** The whole set applies only to environments matching these tags (comma = and, `|` = or). */
  deploymentTags?: string
  /** First release the set applies to (a release version such as `2014.2-6.1` or `mitaka-9.0`). */
  availableSince?: string
  /** Sets that may not run at the same time as this one on an environment. */
  exclusiveTestsets?: string[]
}

/** One piece of evidence attached to a result: a command's output, a record, a file excerpt. */
export interface Evidence {
  label: string
  /** Text (command output, file excerpt) or a JSON value (a record). */
  value: unknown
}

/** What a test declares about itself (the docstring of a fuel-ostf test) plus the code that runs it. */
export interface HealthTest<Env = unknown> {
  /** Stable dotted id (fuel-ostf uses the Python path), unique across sets. */
  id: string
  testset: string
  title: string
  description: string
  /** The numbered scenario; a failure reports `Step N failed: …` with N from this list (1-based). */
  steps: string[]
  /** Expected duration, e.g. `5 s` (shown to users; never asserted). */
  duration: string
  /** Comma = and, `|` = or alternatives (fuel-ostf: `Deployment tags: ha, neutron | nova_network`). */
  deploymentTags?: string
  /** First release the test applies to. */
  availableSince?: string
  /** Runs after every other test of the run has ended (checks about the run itself, e.g. leaked sessions). */
  runLast?: boolean
  /** Taken before any test of the run starts; the test sees it as `ctx.baseline`. */
  baseline?(env: Env, signal: AbortSignal): Promise<unknown>
  run(ctx: TestContext<Env>): Promise<void>
}

/** What a running test gets. */
export interface TestContext<Env = unknown> {
  env: Env
  signal: AbortSignal
  /** The value `baseline` returned (undefined when the test has none). */
  baseline: unknown
  /**
   * Runs step N: a `StepFailure` thrown inside becomes `Step N failed: …` (status failure); any other error
   * becomes `Step N: <error>` (status error). Evidence given to `fail` is attached to the result.
   */
  step<T>(n: number, fn: () => Promise<T> | T): Promise<T>
  /** Fails the current step: what was expected and what was found, plus evidence. */
  fail(expected: string, found: string, evidence?: Evidence[]): never
  /** Ends the test as `skipped` with the reason. */
  skip(reason: string): never
  /** A non-fatal finding (e.g. dom0's root file system over 80 %); the test can still succeed. */
  warn(message: string): void
  /** Attaches evidence to the result whatever its outcome. */
  evidence(label: string, value: unknown): void
}

/** A finished (or running) test in a run: the fuel-ostf test object plus evidence. */
export interface TestResult {
  id: string
  testset: string
  name: string
  description: string
  duration: string
  status: TestStatus
  /** Failure/error/skip/disable reason, or warnings on success. */
  message: string
  /** The failing step's number (fuel-ostf's `step`), when known. */
  step: number | null
  /** Seconds the test took. */
  taken: number | null
  evidence: Evidence[]
  startedAt: string | null
  endedAt: string | null
}

export interface RunRecord {
  id: string
  testset: string
  environment: string
  status: RunStatus
  meta: Record<string, unknown>
  startedAt: string
  endedAt: string | null
  tests: TestResult[]
}
