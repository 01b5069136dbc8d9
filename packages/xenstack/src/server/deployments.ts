/**
 * Deployments run by the server: in this process, in the background, one at a time per environment, through the
 * same engine calls the CLI's `deploy` uses (`loadDeployableEnvironment`, `deployEnvironment`, `resumeEnvironment`,
 * the engine's journal in the state store). Every scheduler event and task output line is published on the hub's
 * `deployments:<env>` channel for the event stream; the last lines of each task's output are kept in memory for
 * the per-task log (the journal keeps the tail of finished tasks for good).
 */
import { deployEnvironment, resumeEnvironment } from '../engine/deployment.js'
import { isOrphaned, stopDeployment, summarize, type DeploymentSummary, type DryRunPlan } from '../engine/engine.js'
import { EnvironmentNotDeployableError, loadDeployableEnvironment } from '../engine/environment.js'
import type { EngineStore, DeploymentRow } from '../engine/store.js'
import type { NativeTask } from '../engine/tasks.js'
import type { StateStore } from '../state/store.js'
import type { EventHub } from './events.js'
import { HttpError } from './errors.js'
import { ENV_STATUS } from '../engine/environment-status.js'

const LOG_LINES = 400

interface Running {
  id: number
  done: Promise<void>
  abort: AbortController
}

export const channelOf = (env: string) => `deployments:${env}`

export class DeploymentManager {
  private readonly running = new Map<string, Running>()
  /** `<deployment>/<node>/<task>` → the last output lines seen live. */
  private readonly logs = new Map<string, string[]>()

  constructor(
    private readonly state: StateStore,
    private readonly engine: EngineStore,
    private readonly hub: EventHub,
    private readonly natives?: Map<string, NativeTask>,
  ) {}

  isRunning(env: string): boolean {
    return this.running.has(env)
  }

  private refuseIfRunning(env: string): void {
    if (this.running.has(env)) throw new HttpError(409, `a deployment of ${env} is running; stop it first`)
    const last = this.engine.latestDeployment(env)
    if (last && (last.status === 'running' || last.status === 'pending') && !isOrphaned(this.engine, last.id))
      throw new HttpError(409, `deployment ${last.id} of ${env} is running (process ${last.pid}); stop it first`)
  }

  private load(env: string) {
    try {
      return loadDeployableEnvironment(this.state, env, { natives: this.natives })
    } catch (e) {
      if (e instanceof EnvironmentNotDeployableError) throw new HttpError(e.notFound ? 404 : 400, e.message)
      throw e
    }
  }

  /** A dry run: the plan per node with every change, nothing changed and nothing recorded. */
  async dryRun(env: string, force = false): Promise<{ plan: DryRunPlan; notes: string[] }> {
    const d = this.load(env)
    try {
      const r = await deployEnvironment(this.engine, d, { dryRun: true, force })
      if (r.kind !== 'dry-run') throw new Error('expected a dry run')
      return { plan: r.plan, notes: r.notes }
    } finally {
      await d.close()
    }
  }

  /** Starts a deployment (or resumes the last one) in the background; resolves with its id once it is recorded. */
  async start(env: string, opts: { force?: boolean; resume?: boolean } = {}): Promise<{ deployment: number }> {
    this.refuseIfRunning(env)
    const before = this.engine.latestDeployment(env)
    if (opts.resume && !before) throw new HttpError(404, `environment ${env} has no deployment to resume`)
    const d = this.load(env)
    const abort = new AbortController()
    const channel = channelOf(env)
    let id = opts.resume ? before!.id : 0
    // The first events fire while the engine starts, before it returns to us: the deployment is recorded by then.
    const current = () => (id ||= this.engine.latestDeployment(env)?.id ?? 0)
    const deployOpts = {
      force: opts.force,
      signal: abort.signal,
      onEvent: (e: unknown) =>
        this.hub.publish(channel, (e as { type: string }).type, { deployment: current(), ...(e as object) }),
      onLog: (node: string, task: string, line: string) => {
        const key = `${current()}/${node}/${task}`
        const lines = this.logs.get(key) ?? []
        lines.push(line)
        if (lines.length > LOG_LINES) lines.splice(0, lines.length - LOG_LINES)
        this.logs.set(key, lines)
        this.hub.publish(channel, 'log', { deployment: current(), node, task, line })
      },
    }
    this.state.environments.setStatus(env, 'deployment')
    // The engine records the deployment synchronously before its first await, so it is in the store on return.
    const run: Promise<DeploymentSummary | undefined> = opts.resume
      ? resumeEnvironment(this.engine, d, deployOpts)
      : deployEnvironment(this.engine, d, deployOpts).then((r) => (r.kind === 'deployment' ? r.summary : undefined))
    const latest = this.engine.latestDeployment(env)
    if (!opts.resume) {
      if (!latest || latest.id === before?.id) {
        // Nothing recorded: planning failed (the promise has rejected with why).
        try {
          await run
        } catch (e) {
          throw new HttpError(400, (e as Error).message)
        } finally {
          await d.close()
          this.state.environments.setStatus(env, before ? ENV_STATUS[before.status] : 'new')
        }
        throw new HttpError(500, `deployment of ${env} was not recorded`)
      }
      id = latest.id
    }
    this.hub.publish(channel, 'deployment', { deployment: id, status: 'running', resumed: !!opts.resume })
    const done = run
      .then((summary) => {
        const s = summary ?? summarize(this.engine, id)
        this.state.environments.setStatus(env, ENV_STATUS[s.status])
        // no longer running before anyone hears it ended: a Deploy or Resume sent on that event must be accepted
        this.running.delete(env)
        this.hub.publish(channel, 'deployment', { deployment: id, status: s.status, summary: s })
      })
      .catch((e: unknown) => {
        this.state.environments.setStatus(env, 'error')
        this.running.delete(env)
        this.hub.publish(channel, 'deployment', { deployment: id, status: 'error', reason: (e as Error).message })
      })
      .finally(async () => {
        this.running.delete(env)
        await d.close()
      })
    this.running.set(env, { id, done, abort })
    return { deployment: id }
  }

  /** Graceful stop: running tasks finish, nodes not done become stopped. */
  stop(env: string): { deployment: number; result: 'requested' | 'stopped' | 'not-running' } {
    const r = this.running.get(env)
    if (r) {
      // Ours: the engine in this process polls the flag.
      this.engine.requestStop(r.id)
      return { deployment: r.id, result: 'requested' }
    }
    const last = this.engine.latestDeployment(env)
    if (!last) throw new HttpError(404, `environment ${env} has no deployment`)
    const result = stopDeployment(this.engine, last.id)
    if (result === 'stopped') this.state.environments.setStatus(env, ENV_STATUS[summarize(this.engine, last.id).status])
    return { deployment: last.id, result }
  }

  /** Resolves when the environment's running deployment (if any) has ended. */
  async wait(env: string): Promise<void> {
    await this.running.get(env)?.done
  }

  history(env: string): DeploymentRow[] {
    const ids = this.engine.db
      .prepare('SELECT id FROM engine_deployments WHERE environment = ? ORDER BY id DESC')
      .all(env) as { id: number }[]
    return ids.map((r) => this.engine.deployment(r.id)!)
  }

  liveLog(deployment: number, node: string, task: string): string[] | undefined {
    return this.logs.get(`${deployment}/${node}/${task}`)
  }

  /** Cancels running deployments (server shutdown): the journal lets `resume` finish them later. */
  async close(): Promise<void> {
    const all = [...this.running.values()]
    for (const r of all) this.engine.requestStop(r.id)
    await Promise.allSettled(all.map((r) => r.done))
  }
}
