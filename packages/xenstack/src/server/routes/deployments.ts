/**
 * Deployments: start (or dry run), stop, resume, history, one deployment's tasks, a task's log, and the
 * environment's event stream (the engine's events: task statuses, progress, log lines, deployment start/end).
 */
import type { FastifyInstance } from 'fastify'
import { summarize } from '../../engine/engine.js'
import type { TaskRow } from '../../engine/store.js'
import type { ServerContext } from '../context.js'
import { streamChannel } from '../events.js'
import { channelOf } from '../deployments.js'
import { healthChannel } from '../health.js'
import { HttpError } from '../errors.js'
import { envParams, errors, name } from './schemas.js'

const taskJson = (r: TaskRow) => ({
  idx: r.idx,
  key: r.key,
  node: r.node,
  task: r.task,
  status: r.status,
  attempt: r.attempt,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  reason: r.reason,
  error: r.error_json ? JSON.parse(r.error_json) : null,
  changes: r.changes_json ? JSON.parse(r.changes_json) : null,
})

const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,9}$', description: 'deployment id' } },
  required: ['id'],
  additionalProperties: false,
} as const

export function deploymentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { engine } = ctx
  const deploymentOr404 = (id: number) => {
    const d = engine.deployment(id)
    if (!d) throw new HttpError(404, `deployment ${id} does not exist`)
    return d
  }

  app.post<{ Params: { env: string }; Body: { dryRun?: boolean; force?: boolean } }>(
    '/environments/:env/deployments',
    {
      schema: {
        tags: ['deployments'],
        summary:
          'Deploy (202: runs in the background; follow /environments/{env}/events) or dry run (200: the plan, nothing changed)',
        params: envParams,
        body: {
          type: 'object',
          properties: { dryRun: { type: 'boolean' }, force: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      const env = req.params.env
      ctx.state.environments.require(env)
      const body = req.body ?? {}
      if (body.dryRun) {
        const r = await ctx.deployments.dryRun(env, body.force)
        return { dryRun: true, ...r.plan, notes: r.notes }
      }
      const { deployment } = await ctx.deployments.start(env, { force: body.force })
      return reply.code(202).send({ deployment, status: 'running', events: `/api/v1/environments/${env}/events` })
    },
  )

  app.post<{ Params: { env: string } }>(
    '/environments/:env/deployments/stop',
    {
      schema: {
        tags: ['deployments'],
        summary: 'Stop gracefully: running tasks finish, unfinished nodes become stopped',
        params: envParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      ctx.state.environments.require(req.params.env)
      const r = ctx.deployments.stop(req.params.env)
      return reply.code(r.result === 'requested' ? 202 : 200).send(r)
    },
  )

  app.post<{ Params: { env: string } }>(
    '/environments/:env/deployments/resume',
    {
      schema: {
        tags: ['deployments'],
        summary: 'Run again what did not succeed in the last deployment',
        params: envParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      ctx.state.environments.require(req.params.env)
      const { deployment } = await ctx.deployments.start(req.params.env, { resume: true })
      return reply
        .code(202)
        .send({ deployment, status: 'running', events: `/api/v1/environments/${req.params.env}/events` })
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env/deployments',
    {
      schema: {
        tags: ['deployments'],
        summary: "The environment's deployments, newest first",
        params: envParams,
        response: { ...errors },
      },
    },
    async (req) => {
      ctx.state.environments.require(req.params.env)
      return ctx.deployments.history(req.params.env).map((d) => ({
        id: d.id,
        mode: d.mode,
        force: d.force === 1,
        status: d.status,
        reason: d.reason,
        createdAt: d.created_at,
        finishedAt: d.finished_at,
      }))
    },
  )

  app.get<{ Params: { id: string } }>(
    '/deployments/:id',
    {
      schema: {
        tags: ['deployments'],
        summary: 'A deployment: summary, nodes and every task with its status, error and changes',
        params: idParams,
        response: { ...errors },
      },
    },
    async (req) => {
      const d = deploymentOr404(Number(req.params.id))
      return {
        ...summarize(engine, d.id),
        mode: d.mode,
        createdAt: d.created_at,
        finishedAt: d.finished_at,
        tasks: engine.tasks(d.id).map(taskJson),
      }
    },
  )

  app.get<{ Params: { id: string; node: string; task: string } }>(
    '/deployments/:id/nodes/:node/tasks/:task/log',
    {
      schema: {
        tags: ['deployments'],
        summary: "A task's log: its attempts, output (live while it runs) and error",
        params: {
          type: 'object',
          properties: {
            id: idParams.properties.id,
            node: name,
            task: { type: 'string', minLength: 1, maxLength: 200 },
          },
          required: ['id', 'node', 'task'],
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req) => {
      const { node, task } = req.params
      const id = deploymentOr404(Number(req.params.id)).id
      const row = engine.tasks(id).find((r) => r.node === node && r.task === task)
      if (!row) throw new HttpError(404, `deployment ${id} has no task ${task} on node ${node}`)
      const attempts = engine
        .history(id)
        .filter((h) => h.idx === row.idx)
        .map((h) => ({ status: h.status, attempt: h.attempt, at: h.at, reason: h.reason }))
      const live = ctx.deployments.liveLog(id, node, task)
      return {
        ...taskJson(row),
        attempts,
        output: live ?? (row.output_tail ? row.output_tail.split('\n') : []),
      }
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env/events',
    {
      schema: {
        tags: ['deployments'],
        summary: 'Server-sent events of the environment: snapshot, deployment (start/end), task, progress, brake, log',
        params: envParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      const env = req.params.env
      ctx.state.environments.require(env)
      streamChannel(req, reply, ctx.hub, channelOf(env), () => {
        const last = engine.latestDeployment(env)
        return [
          {
            type: 'snapshot',
            data: {
              environment: env,
              deploying: ctx.deployments.isRunning(env),
              deployment: last ? summarize(engine, last.id) : null,
            },
          },
        ]
      })
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env/health/events',
    {
      schema: {
        tags: ['health'],
        summary: "Server-sent events of the environment's health runs: snapshot (last run of each set), then run",
        params: envParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      const env = req.params.env
      ctx.state.environments.require(env)
      streamChannel(req, reply, ctx.hub, healthChannel(env), () => [
        { type: 'snapshot', data: { environment: env, runs: ctx.health.snapshot(env) } },
      ])
      ctx.health.follow(env)
    },
  )
}
