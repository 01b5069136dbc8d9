/**
 * `xenstack deploy ENV [--dry-run] [--force]`, `deploy stop|resume|status ENV` (all with `--json`).
 *
 * With `--json` the last thing printed is one object:
 *   { environment, deployment, status: ready|error|stopped|partially_deployed, nodes: [{name, status}],
 *     tasks: {total, succeeded, failed, skipped}, changes, reason?, errors? }
 * and the exit code is non-zero unless the status is `ready`. A dry run prints the plan and exits 0.
 * Ctrl-C stops gracefully (running tasks finish); a second Ctrl-C cancels running tasks.
 */
import type { Command } from 'commander'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'
import type { StateStore } from '../../state/store.js'
import { openCliStateStore } from '../state.js'
import { xenserverNatives } from '../../integration/index.js'
import { EngineStore } from '../../engine/store.js'
import { deployEnvironment, resumeEnvironment } from '../../engine/deployment.js'
import { isOrphaned, stopDeployment, summarize, type DeploymentSummary, type DryRunPlan } from '../../engine/engine.js'
import { EnvironmentNotDeployableError, loadDeployableEnvironment } from '../../engine/environment.js'
import { GraphBuildError } from '../../engine/graph.js'
import { formatTaskError } from '../../engine/types.js'
import type { SchedulerEvent } from '../../engine/scheduler.js'
import { createDeployProgress, progressMode } from '../deploy-progress.js'
import { register as registerRecords } from './deploy-records.js'
import { ENV_STATUS } from '../../engine/environment-status.js'

interface Opts {
  json?: boolean
  dataDir?: string
  dryRun?: boolean
  force?: boolean
  maxBusyNodes?: string
  nodes?: string
  tasks?: string
}

function open(o: Opts): { state: StateStore; engine: EngineStore } {
  const state = openCliStateStore({ dataDir: o.dataDir })
  return { state, engine: new EngineStore(state.db) }
}

function publicSummary(s: DeploymentSummary) {
  const { environment, deployment, status, nodes, tasks, changes, reason, errors } = s
  return {
    environment,
    deployment,
    status,
    nodes,
    tasks,
    changes,
    ...(reason ? { reason } : {}),
    ...(errors.length ? { errors } : {}),
  }
}

function printSummary(s: DeploymentSummary): void {
  process.stdout.write(
    `deployment ${s.deployment} of ${s.environment}: ${s.status}${s.reason ? ` (${s.reason})` : ''}\n` +
      `tasks: ${s.tasks.total} total, ${s.tasks.succeeded} succeeded, ${s.tasks.failed} failed, ${s.tasks.skipped} skipped; ` +
      `${s.changes} resources changed\n` +
      table(s.nodes, ['name', 'status']) +
      '\n',
  )
  for (const e of s.errors) process.stdout.write('\n' + formatTaskError(e) + '\n')
}

function printDryRun(p: DryRunPlan, notes: string[]): void {
  for (const n of p.nodes) {
    process.stdout.write(`node ${n.name}\n`)
    n.tasks.forEach((t, i) => {
      const what = t.action === 'run' ? (t.detail ?? t.type) : `skip: ${t.reason}`
      process.stdout.write(
        `  ${String(i + 1).padStart(3)}. ${t.task} [${t.type}] ${what}${t.error ? ` (error: ${t.error})` : ''}\n`,
      )
      for (const c of t.changes ?? []) {
        if (c.result === 'unchanged') continue
        process.stdout.write(`       ~ ${c.resource}\n`)
        for (const line of (c.diff ?? '').split('\n').filter(Boolean)) process.stdout.write(`         ${line}\n`)
      }
    })
  }
  process.stdout.write(
    `dry run of ${p.environment}: ${p.tasks.run} tasks would run, ${p.tasks.skipped} skipped, ${p.changes} resources would change; nothing was changed\n`,
  )
  for (const n of notes) process.stdout.write(`note: ${n}\n`)
}

const list = (v?: string) =>
  (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)

/**
 * `--nodes a,b`: the graph is expanded on those nodes only (Fuel's "deploy selected nodes").
 * `--tasks x,y`: every other task stays in the graph as `skipped` (stages and groups keep the order), so only the
 * named tasks run — and, since their definitions changed, the next full deploy runs the others again.
 */
function selectNodesAndTasks<E extends { nodes: { name: string }[]; tasks: { task: { id: string; type?: string } }[] }>(
  env: E,
  o: Opts,
): E {
  const nodes = list(o.nodes)
  const tasks = list(o.tasks)
  let out = env
  if (nodes.length) {
    const unknown = nodes.filter((n) => !env.nodes.some((x) => x.name === n))
    if (unknown.length)
      throw new CliError(
        `--nodes: no node ${unknown.join(', ')} in the environment`,
        ExitCode.notFound,
        `nodes: ${env.nodes.map((n) => n.name).join(', ')}`,
      )
    out = { ...out, nodes: env.nodes.filter((n) => nodes.includes(n.name)) }
  }
  if (tasks.length) {
    const unknown = tasks.filter((t) => !env.tasks.some((x) => x.task.id === t))
    if (unknown.length)
      throw new CliError(
        `--tasks: no task ${unknown.join(', ')} in the graph`,
        ExitCode.notFound,
        'see the plan: xenstack deploy ENV --dry-run',
      )
    const structural = new Set(['stage', 'group'])
    out = {
      ...out,
      tasks: env.tasks.map((t) =>
        tasks.includes(t.task.id) || structural.has(t.task.type ?? '')
          ? t
          : { ...t, task: { ...t.task, type: 'skipped' } },
      ),
    }
  }
  return out
}

function refuseIfRunning(engine: EngineStore, env: string): void {
  const last = engine.latestDeployment(env)
  if (last && (last.status === 'running' || last.status === 'pending') && !isOrphaned(engine, last.id))
    throw new CliError(
      `deployment ${last.id} of ${env} is running (process ${last.pid})`,
      ExitCode.failure,
      `xenstack deploy stop ${env}`,
    )
}

/** After the summary is printed: anything but `ready` exits non-zero with one line on stderr. */
function exitFor(s: DeploymentSummary): void {
  if (s.status !== 'ready')
    throw new CliError(
      `deployment ${s.deployment} of ${s.environment} is ${s.status}${s.reason ? `: ${s.reason}` : ''}`,
      ExitCode.failure,
      s.status === 'error' ? undefined : `xenstack deploy resume ${s.environment}`,
    )
}

/** Graceful stop on the first SIGINT/SIGTERM, cancel on the second. */
function interrupts(engine: EngineStore, env: string): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController()
  let count = 0
  const handler = () => {
    count++
    const last = engine.latestDeployment(env)
    if (count === 1 && last) {
      process.stderr.write('stopping: running tasks finish (Ctrl-C again to cancel them)\n')
      engine.requestStop(last.id)
    } else ac.abort(new Error('cancelled by signal'))
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return {
    signal: ac.signal,
    dispose: () => {
      process.off('SIGINT', handler)
      process.off('SIGTERM', handler)
    },
  }
}

async function runDeploy(envName: string, o: Opts, mode: 'deploy' | 'resume'): Promise<void> {
  const { state, engine } = open(o)
  let env: ReturnType<typeof loadDeployableEnvironment> | undefined
  try {
    refuseIfRunning(engine, envName)
    env = loadDeployableEnvironment(state, envName, { natives: xenserverNatives() })
    const maxBusyNodes = o.maxBusyNodes ? Number(o.maxBusyNodes) : undefined
    if (maxBusyNodes !== undefined && !(Number.isInteger(maxBusyNodes) && maxBusyNodes > 0))
      throw new CliError(`--max-busy-nodes ${o.maxBusyNodes}: expected a positive integer`, ExitCode.usage)
    if (mode === 'resume' && (o.nodes || o.tasks))
      throw new CliError(
        'resume runs what did not succeed in the last deployment: --nodes and --tasks do not apply',
        ExitCode.usage,
      )
    const selected = selectNodesAndTasks(env, o)
    if (o.dryRun) {
      const r = await deployEnvironment(engine, selected, { dryRun: true, force: o.force })
      if (r.kind === 'dry-run') emit(o, { ...r.plan, dryRun: true, notes: r.notes }, (p) => printDryRun(p, r.notes))
      return
    }
    const intr = interrupts(engine, envName)
    state.environments.setStatus(envName, 'deployment')
    const progress = createDeployProgress(
      progressMode(o),
      selected.nodes.map((n) => n.name),
    )
    const onEvent = (e: SchedulerEvent) => progress.onEvent(e)
    let summary: DeploymentSummary
    try {
      if (mode === 'resume') {
        if (!engine.latestDeployment(envName))
          throw new CliError(
            `environment ${envName} has no deployment to resume`,
            ExitCode.notFound,
            `xenstack deploy ${envName}`,
          )
        summary = await resumeEnvironment(engine, env, { maxBusyNodes, onEvent, signal: intr.signal })
      } else {
        const r = await deployEnvironment(engine, selected, {
          force: o.force,
          maxBusyNodes,
          onEvent,
          signal: intr.signal,
        })
        if (r.kind !== 'deployment') return
        summary = r.summary
        if (!o.json) for (const n of r.notes) progress.note(`note: ${n}`)
      }
    } finally {
      progress.stop()
      intr.dispose()
    }
    state.environments.setStatus(envName, ENV_STATUS[summary.status])
    emit(o, publicSummary(summary), () => printSummary(summary))
    exitFor(summary)
  } catch (e) {
    if (e instanceof EnvironmentNotDeployableError)
      throw new CliError(e.message, e.notFound ? ExitCode.notFound : ExitCode.invalidInput)
    if (e instanceof GraphBuildError) throw new CliError(e.message, ExitCode.invalidInput)
    throw e
  } finally {
    await env?.close()
    state.close()
  }
}

export function register(program: Command): void {
  const deploy = program
    .command('deploy')
    .description('deploy an environment (ENV), or stop|resume|status|history|logs ENV')
    .argument('[env]', 'environment name')
    .option('--dry-run', 'print the full plan per node and every change, change nothing')
    .option('--force', 'run every task again (redeploy otherwise runs only tasks whose inputs changed)')
    .option('--max-busy-nodes <n>', 'at most this many nodes busy at once (default 50)')
    .option('--nodes <a,b>', 'deploy these nodes only')
    .option('--tasks <x,y>', 'run these tasks only (the others are kept in the graph as skipped)')
    .option('--json', 'print one JSON object at the end')
    .option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')
    .action(async (env: string | undefined, o: Opts) => {
      if (!env)
        throw new CliError('deploy needs an environment name', ExitCode.usage, 'xenstack deploy ENV [--dry-run]')
      await runDeploy(env, o, 'deploy')
    })
  // The subcommands share `deploy`'s options (--json, --data-dir, --max-busy-nodes), given before or after them.
  const sub = (name: string, description: string, fn: (env: string, o: Opts) => Promise<void>) =>
    deploy
      .command(name)
      .description(description)
      .argument('<env>', 'environment name')
      .action(async (env: string, _o: Opts, cmd: Command) => fn(env, cmd.optsWithGlobals<Opts>()))
  sub(
    'resume',
    'run again what did not succeed in the last deployment (after a stop, a failure or a crash)',
    (env, o) => runDeploy(env, o, 'resume'),
  )
  sub(
    'stop',
    'stop the running deployment gracefully: running tasks finish, unfinished nodes become stopped',
    async (env: string, o: Opts) => {
      const { state, engine } = open(o)
      try {
        const last = engine.latestDeployment(env)
        if (!last) throw new CliError(`environment ${env} has no deployment`, ExitCode.notFound)
        const r = stopDeployment(engine, last.id)
        if (r === 'requested') {
          if (!o.json)
            process.stderr.write(`stop requested; waiting for running tasks of deployment ${last.id} to finish\n`)
          while (
            ['running', 'pending'].includes(engine.deployment(last.id)?.status ?? '') &&
            !isOrphaned(engine, last.id)
          )
            await new Promise((res) => setTimeout(res, 200))
          if (isOrphaned(engine, last.id)) stopDeployment(engine, last.id)
        }
        const s = summarize(engine, last.id)
        if (state.environments.get(env)) state.environments.setStatus(env, ENV_STATUS[s.status])
        emit(o, publicSummary(s), () => printSummary(s))
        exitFor(s)
      } finally {
        state.close()
      }
    },
  )
  sub('status', 'the last deployment of the environment', async (env: string, o: Opts) => {
    const { state, engine } = open(o)
    try {
      const last = engine.latestDeployment(env)
      if (!last) throw new CliError(`environment ${env} has no deployment`, ExitCode.notFound, `xenstack deploy ${env}`)
      const s = summarize(engine, last.id)
      const orphaned = isOrphaned(engine, last.id)
      const out = { ...publicSummary(s), ...(orphaned ? { reason: 'the engine process is gone; resume it' } : {}) }
      emit(o, out, () => {
        printSummary(s)
        if (orphaned) process.stdout.write(`the engine process ${last.pid} is gone: xenstack deploy resume ${env}\n`)
      })
      exitFor(s)
    } finally {
      state.close()
    }
  })
  registerRecords(deploy)
}
