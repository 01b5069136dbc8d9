/**
 * Environments: create (release, wizard components, plugins, settings, nodes — validated by the plugin
 * framework's createEnvironment, every problem returned), settings (get redacted, validate, save with the
 * dependency check), nodes and roles (role conflicts and restrictions checked on every change).
 */
import type { FastifyInstance } from 'fastify'
import { checkRoleAssignment, type RoleMeta } from '@xenstack/restrictions'
import {
  changeSettings,
  createEnvironment,
  EnvironmentError,
  environmentModels,
  resolveRelease,
} from '../../plugins/environment.js'
import type { ServerContext } from '../context.js'
import { HttpError } from '../errors.js'
import { anyObject, envParams, errors, name, nodeParams } from './schemas.js'

const nodeBody = {
  type: 'object',
  properties: {
    name,
    roles: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 100 }, maxItems: 20, uniqueItems: true },
    data: anyObject,
  },
  required: ['name'],
  additionalProperties: false,
} as const

const changesBody = {
  type: 'object',
  properties: {
    changes: {
      type: 'object',
      description: 'setting values by path, e.g. {"xenserver.username.value": "root"}',
      propertyNames: { pattern: '^[^.]+(\\.[^.]+)+$', maxLength: 300 },
      maxProperties: 500,
    },
  },
  required: ['changes'],
  additionalProperties: false,
} as const

/** Thrown inside a transaction to undo it (a validation that must not save). */
class Rollback extends Error {}

export function environmentRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { state } = ctx

  const envJson = (n: string) => {
    const env = state.environments.require(n)
    const last = ctx.engine.latestDeployment(n)
    return {
      ...env,
      cluster: state.environments.cluster(n),
      nodes: state.environments.nodes(n),
      deploying: ctx.deployments.isRunning(n),
      lastDeployment: last ? { id: last.id, status: last.status, createdAt: last.created_at } : null,
    }
  }

  /** The roles of the release and the environment's enabled plugins, checked against every node. */
  const checkRoles = (env: string, nodes: { name: string; roles: string[] }[]) => {
    const e = state.environments.require(env)
    const roles: Record<string, RoleMeta> = { ...resolveRelease(state, e.release).roles }
    for (const p of e.plugins.filter((x) => x.enabled))
      Object.assign(roles, state.plugins.get(p.name, p.version)?.data.nodeRoles ?? {})
    // Counts (min/max) are for a deployment; while nodes are being assigned only per-node problems count.
    const problems = checkRoleAssignment(roles, nodes, environmentModels(state, env)).filter(
      (p) => p.severity === 'error' && (p.kind === 'unknown' || p.kind === 'conflict' || p.kind === 'restriction'),
    )
    if (problems.length)
      throw new HttpError(400, problems.map((p) => p.message).join('; '), {
        field: 'body.roles',
        problems: problems.map((p) => p.message),
      })
  }

  app.get(
    '/environments',
    { schema: { tags: ['environments'], summary: 'Environments', response: { ...errors } } },
    async () => state.environments.list().map((e) => envJson(e.name)),
  )

  app.post<{
    Body: {
      name: string
      release?: string
      components?: string[]
      plugins?: { name: string; version?: string }[]
      settings?: Record<string, unknown>
      nodes?: { name: string; roles?: string[]; data?: Record<string, unknown> }[]
    }
  }>(
    '/environments',
    {
      schema: {
        tags: ['environments'],
        summary: 'Create an environment (every violation of the selection or settings is returned)',
        body: {
          type: 'object',
          properties: {
            name,
            release: { type: 'string', minLength: 1, maxLength: 200 },
            components: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 100 },
            plugins: {
              type: 'array',
              maxItems: 50,
              items: {
                type: 'object',
                properties: {
                  name: { type: 'string', minLength: 1, maxLength: 100 },
                  version: { type: 'string', minLength: 1, maxLength: 50 },
                },
                required: ['name'],
                additionalProperties: false,
              },
            },
            settings: { ...changesBody.properties.changes },
            nodes: { type: 'array', items: nodeBody, maxItems: 1000 },
          },
          required: ['name'],
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      if (state.environments.get(req.body.name))
        throw new HttpError(409, `environment "${req.body.name}" already exists`, { field: 'body.name' })
      const nodes = (req.body.nodes ?? []).map((n) => ({ name: n.name, roles: n.roles ?? [], data: n.data }))
      state.transaction(() => {
        createEnvironment(state, { ...req.body, nodes })
        if (nodes.length) checkRoles(req.body.name, nodes)
      })
      return reply.code(201).send(envJson(req.body.name))
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env',
    { schema: { tags: ['environments'], summary: 'An environment', params: envParams, response: { ...errors } } },
    async (req) => envJson(req.params.env),
  )

  app.delete<{ Params: { env: string } }>(
    '/environments/:env',
    {
      schema: { tags: ['environments'], summary: 'Delete an environment', params: envParams, response: { ...errors } },
    },
    async (req, reply) => {
      if (ctx.deployments.isRunning(req.params.env))
        throw new HttpError(409, `environment ${req.params.env} is being deployed; stop the deployment first`)
      // as `xenstack env delete`: the engine's history and redeploy digests go with the environment, in one
      // transaction, so a new environment of the same name starts with a first deploy (issue 11)
      state.environments.require(req.params.env)
      state.transaction(() => {
        ctx.engine.forgetEnvironment(req.params.env)
        state.environments.delete(req.params.env)
      })
      return reply.code(204).send()
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env/settings',
    {
      schema: {
        tags: ['environments'],
        summary: 'The settings tree (release + enabled plugins), passwords redacted',
        params: envParams,
        response: { ...errors },
      },
    },
    async (req) => state.environments.settings(req.params.env),
  )

  app.post<{ Params: { env: string }; Body: { changes: Record<string, unknown> } }>(
    '/environments/:env/settings/validate',
    {
      schema: {
        tags: ['environments'],
        summary: 'Check setting changes without saving them',
        params: envParams,
        body: changesBody,
        response: { ...errors },
      },
    },
    async (req) => {
      state.environments.require(req.params.env)
      try {
        // The same code path as saving, undone: what validate accepts, save accepts.
        state.transaction(() => {
          changeSettings(state, req.params.env, req.body.changes)
          throw new Rollback()
        })
      } catch (e) {
        if (e instanceof Rollback) return { valid: true, problems: [] }
        if (e instanceof EnvironmentError) return { valid: false, problems: e.problems }
        throw e
      }
      return { valid: true, problems: [] }
    },
  )

  app.put<{ Params: { env: string }; Body: { changes: Record<string, unknown> } }>(
    '/environments/:env/settings',
    {
      schema: {
        tags: ['environments'],
        summary: 'Save setting changes (refused whole, with every problem, when any is invalid)',
        params: envParams,
        body: changesBody,
        response: { ...errors },
      },
    },
    async (req) => {
      if (ctx.deployments.isRunning(req.params.env))
        throw new HttpError(409, `environment ${req.params.env} is being deployed; its settings cannot change now`)
      changeSettings(state, req.params.env, req.body.changes)
      return state.environments.settings(req.params.env)
    },
  )

  app.get<{ Params: { env: string } }>(
    '/environments/:env/nodes',
    { schema: { tags: ['nodes'], summary: 'Nodes with roles', params: envParams, response: { ...errors } } },
    async (req) => state.environments.nodes(req.params.env),
  )

  app.post<{ Params: { env: string }; Body: { name: string; roles?: string[]; data?: Record<string, unknown> } }>(
    '/environments/:env/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Add a node (role conflicts and restrictions checked)',
        params: envParams,
        body: nodeBody,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      const env = req.params.env
      const n = state.transaction(() => {
        const added = state.environments.addNode(env, { ...req.body, roles: req.body.roles ?? [] })
        checkRoles(env, state.environments.nodes(env))
        return added
      })
      return reply.code(201).send(n)
    },
  )

  app.put<{ Params: { env: string; node: string }; Body: { roles?: string[]; data?: Record<string, unknown> } }>(
    '/environments/:env/nodes/:node',
    {
      schema: {
        tags: ['nodes'],
        summary: "Change a node's roles or data",
        params: nodeParams,
        body: {
          type: 'object',
          properties: { roles: nodeBody.properties.roles, data: anyObject },
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req) =>
      state.transaction(() => {
        const n = state.environments.updateNode(req.params.env, req.params.node, req.body)
        checkRoles(req.params.env, state.environments.nodes(req.params.env))
        return n
      }),
  )

  app.delete<{ Params: { env: string; node: string } }>(
    '/environments/:env/nodes/:node',
    { schema: { tags: ['nodes'], summary: 'Remove a node', params: nodeParams, response: { ...errors } } },
    async (req, reply) => {
      state.environments.removeNode(req.params.env, req.params.node)
      return reply.code(204).send()
    },
  )
}
