/**
 * `xenstack deploy history ENV` and `deploy logs ENV`: what the engine journalled (src/engine/store.ts), read-only.
 * history — every deployment of the environment with its mode, status, times and task counts;
 * logs — per task of one deployment (the last by default): status, attempts, times, error and output tail,
 * filtered by `--node`, `--task`, `--failed`.
 */
import type { Command } from 'commander'
import { EngineStore } from '../../engine/store.js'
import { formatTaskError, SYNC_NODE, type TaskErrorInfo } from '../../engine/types.js'
import { StateStore } from '../../state/store.js'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'

interface Opts {
  json?: boolean
  dataDir?: string
  deployment?: string
  node?: string
  task?: string
  failed?: boolean
}

function withEngine<T>(o: Opts, fn: (engine: EngineStore) => T): T {
  const state = StateStore.open({ dataDir: o.dataDir })
  try {
    return fn(new EngineStore(state.db))
  } finally {
    state.close()
  }
}

export function deploymentHistory(engine: EngineStore, env: string) {
  engine.fold() // the counts below are SQL over engine_tasks: a running engine's last transitions folded in first
  const rows = engine.db
    .prepare(
      `SELECT d.id, d.mode, d.force, d.status, d.reason, d.created_at, d.finished_at,
         SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
         SUM(CASE WHEN t.status IN ('failed', 'dep_failed') THEN 1 ELSE 0 END) AS failed,
         SUM(CASE WHEN t.status = 'skipped' THEN 1 ELSE 0 END) AS skipped,
         COUNT(t.idx) AS total
       FROM engine_deployments d LEFT JOIN engine_tasks t ON t.deployment_id = d.id AND t.node <> ?
       WHERE d.environment = ? GROUP BY d.id ORDER BY d.id`,
    )
    .all(SYNC_NODE, env) as {
    id: number
    mode: string
    force: number
    status: string
    reason: string | null
    created_at: string
    finished_at: string | null
    succeeded: number
    failed: number
    skipped: number
    total: number
  }[]
  return rows.map((r) => ({
    deployment: r.id,
    mode: r.mode,
    force: r.force === 1,
    status: r.status,
    ...(r.reason ? { reason: r.reason } : {}),
    startedAt: r.created_at,
    finishedAt: r.finished_at,
    tasks: { total: r.total, succeeded: r.succeeded, failed: r.failed, skipped: r.skipped },
  }))
}

const lines = (text: string | null): string[] => {
  if (!text) return []
  try {
    const v = JSON.parse(text) as unknown
    if (Array.isArray(v)) return v.map(String)
  } catch {
    // a plain text tail
  }
  return text.split('\n')
}

export function register(deploy: Command): void {
  deploy
    .command('history')
    .description('every deployment of the environment: mode, status, times, task counts')
    .argument('<env>', 'environment name')
    .action((env: string, _o: Opts, cmd: Command) => {
      const o = cmd.optsWithGlobals<Opts>()
      withEngine(o, (engine) => {
        const list = deploymentHistory(engine, env)
        if (!list.length)
          throw new CliError(`environment ${env} has no deployment`, ExitCode.notFound, `xenstack deploy ${env}`)
        emit(o, list, (d) =>
          process.stdout.write(
            table(
              d.map((x) => ({
                ...x,
                mode: x.mode + (x.force ? ' --force' : ''),
                tasks: `${x.tasks.succeeded}/${x.tasks.total} ok, ${x.tasks.failed} failed, ${x.tasks.skipped} skipped`,
              })),
              ['deployment', 'mode', 'status', 'startedAt', 'finishedAt', 'tasks'],
            ) + '\n',
          ),
        )
      })
    })
  deploy
    .command('logs')
    .description('tasks of a deployment with their errors and output tails (the last deployment by default)')
    .argument('<env>', 'environment name')
    .option('--deployment <id>', 'a deployment id from "deploy history"')
    .option('--node <name>', 'only this node')
    .option('--task <id>', 'only this task')
    .option('--failed', 'only tasks that failed')
    .action((env: string, _o: Opts, cmd: Command) => {
      const o = cmd.optsWithGlobals<Opts>()
      withEngine(o, (engine) => {
        const id = o.deployment ? Number(o.deployment) : engine.latestDeployment(env)?.id
        if (o.deployment && !Number.isInteger(id))
          throw new CliError(`--deployment ${o.deployment}: expected a deployment number`, ExitCode.usage)
        const d = id === undefined ? undefined : engine.deployment(id)
        if (!d || d.environment !== env)
          throw new CliError(
            o.deployment
              ? `environment ${env} has no deployment ${o.deployment}`
              : `environment ${env} has no deployment`,
            ExitCode.notFound,
            `xenstack deploy history ${env}`,
          )
        const rows = engine
          .tasks(d.id)
          .filter((t) => t.node !== SYNC_NODE)
          .filter((t) => !o.node || t.node === o.node)
          .filter((t) => !o.task || t.task === o.task)
          .filter((t) => !o.failed || t.status === 'failed' || t.status === 'dep_failed')
        if ((o.node || o.task) && !rows.length)
          throw new CliError(
            `deployment ${d.id} of ${env} has no task${o.task ? ` ${o.task}` : ''}${o.node ? ` on node ${o.node}` : ''}`,
            ExitCode.notFound,
          )
        const out = rows.map((t) => ({
          node: t.node,
          task: t.task,
          status: t.status,
          attempt: t.attempt,
          startedAt: t.started_at,
          finishedAt: t.finished_at,
          ...(t.reason ? { reason: t.reason } : {}),
          ...(t.error_json ? { error: JSON.parse(t.error_json) as TaskErrorInfo } : {}),
          output: lines(t.output_tail),
        }))
        emit(o, { environment: env, deployment: d.id, status: d.status, tasks: out }, (x) => {
          for (const t of x.tasks) {
            if (t.status === 'pending' || (t.status === 'skipped' && !o.task)) continue
            process.stdout.write(
              `== [${t.node}] ${t.task}: ${t.status}${t.attempt > 1 ? ` (attempt ${t.attempt})` : ''}${t.reason ? ` — ${t.reason}` : ''}\n`,
            )
            if (t.error) process.stdout.write(formatTaskError(t.error) + '\n')
            else for (const l of t.output) process.stdout.write(`   ${l}\n`)
          }
        })
      })
    })
}
