/**
 * `xenstack health run ENV [--set NAME…] [--json] [--junit FILE]` runs test sets (default: all of them; tests that
 * do not apply are listed as disabled with the reason) and exits 1 when a test failed, errored or was stopped;
 * `health show ENV [RUN] [--json]` shows the last run of each set, or one run, from the state store.
 */
import { writeFileSync } from 'node:fs'
import type { Command } from 'commander'
import { CliError, ExitCode } from '../errors.js'
import { openCliStateStore } from '../state.js'
import { ActiveRunError, RunNotFoundError, UnknownTestSetError } from '../../health/runner.js'
import { jsonReport, junitReport, runsPassed, countStatuses } from '../../health/report.js'
import { TEST_SETS } from '../../health/testsets.js'
import type { RunRecord, TestStatus } from '../../health/types.js'
import { xenserverHealthRunner } from '../../health/xenserver/index.js'

interface Opts {
  json?: boolean
  junit?: string
  set?: string[]
  dataDir?: string
}

const MARK: Record<TestStatus, string> = {
  success: 'ok',
  failure: 'FAIL',
  error: 'ERROR',
  skipped: 'skip',
  disabled: '-',
  stopped: 'stopped',
  running: '…',
  wait_running: '…',
}

function printRuns(environment: string, runs: readonly RunRecord[]): void {
  for (const r of runs) {
    const name = TEST_SETS.find((s) => s.id === r.testset)?.name ?? r.testset
    process.stdout.write(`\n${r.testset} — ${name} (run ${r.id}, ${r.status})\n`)
    for (const t of r.tests) {
      const taken = t.taken !== null ? ` (${t.taken.toFixed(1)} s)` : ''
      process.stdout.write(`  ${MARK[t.status].padEnd(7)} ${t.name}${taken}\n`)
      if (t.message && t.status !== 'disabled') {
        for (const line of t.message.split('\n')) process.stdout.write(`          ${line}\n`)
      }
      if (t.status === 'failure' || t.status === 'error')
        for (const e of t.evidence.slice(0, 6)) {
          const v = typeof e.value === 'string' ? e.value : JSON.stringify(e.value)
          process.stdout.write(`          evidence: ${e.label}: ${v.length > 300 ? v.slice(0, 300) + '…' : v}\n`)
        }
    }
  }
  const c = countStatuses(runs)
  process.stdout.write(
    `\n${environment}: ${c.success} passed, ${c.failure} failed, ${c.error} errors, ${c.skipped} skipped, ` +
      `${c.disabled} not applicable${c.stopped ? `, ${c.stopped} stopped` : ''}\n`,
  )
}

function report(environment: string, runs: RunRecord[], o: Opts): void {
  if (o.junit) writeFileSync(o.junit, junitReport(environment, runs))
  if (o.json) process.stdout.write(JSON.stringify(jsonReport(environment, runs), null, 2) + '\n')
  else printRuns(environment, runs)
}

export function register(program: Command): void {
  const health = program
    .command('health')
    .description('OSTF-style health checks of a deployed environment (XenServer hosts, HIMN, NAT, dom0, config)')
  health
    .command('run')
    .description('run test sets on an environment; exit status 1 when a test fails')
    .argument('<env>', 'environment name')
    .option('--set <name...>', `test sets to run (default: all: ${TEST_SETS.map((s) => s.id).join(', ')})`)
    .option('--json', 'print the runs as JSON')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('--data-dir <dir>', 'state store directory (default: $XENSTACK_HOME or ~/.xenstack)')
    .action(async (env: string, o: Opts) => {
      const state = openCliStateStore({ dataDir: o.dataDir })
      const runner = xenserverHealthRunner(state)
      const onSignal = () => void runner.stopAll()
      process.once('SIGINT', onSignal)
      try {
        if (!state.environments.get(env))
          throw new CliError(
            `environment "${env}" does not exist`,
            ExitCode.notFound,
            'list them with "xenstack env list"',
          )
        const sets = o.set?.length ? o.set : TEST_SETS.map((s) => s.id)
        let started: RunRecord[]
        try {
          started = sets.map((s) => runner.start(env, s))
        } catch (e) {
          await runner.stopAll()
          if (e instanceof UnknownTestSetError) throw new CliError(e.message, ExitCode.usage)
          if (e instanceof ActiveRunError)
            throw new CliError(e.message, ExitCode.failure, 'stop it through the API, or wait')
          throw e
        }
        const runs = await Promise.all(started.map((r) => runner.wait(r.id)))
        report(env, runs, o)
        if (!runsPassed(runs)) throw new CliError(`health checks of ${env} failed`, ExitCode.failure)
      } finally {
        process.off('SIGINT', onSignal)
        state.close()
      }
    })
  health
    .command('show')
    .description('show the last run of each test set, or one run')
    .argument('<env>', 'environment name')
    .argument('[run]', 'a run id (default: the last run of each set)')
    .option('--json', 'print JSON')
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('--data-dir <dir>', 'state store directory (default: $XENSTACK_HOME or ~/.xenstack)')
    .action(async (env: string, runId: string | undefined, o: Opts) => {
      const state = openCliStateStore({ dataDir: o.dataDir })
      try {
        const runner = xenserverHealthRunner(state)
        let runs: RunRecord[]
        try {
          runs = runId ? [runner.store.run(runId)] : runner.store.lastRuns(env)
        } catch (e) {
          if (e instanceof RunNotFoundError) throw new CliError(e.message, ExitCode.notFound)
          throw e
        }
        if (runId && runs[0]!.environment !== env)
          throw new CliError(`run ${runId} is of environment ${runs[0]!.environment}, not ${env}`, ExitCode.notFound)
        if (!runs.length)
          throw new CliError(
            `environment "${env}" has no health runs`,
            ExitCode.notFound,
            `run "xenstack health run ${env}"`,
          )
        report(env, runs, o)
      } finally {
        state.close()
      }
    })
}
