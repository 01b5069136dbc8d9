/**
 * Pools: add by XAPI URL and credentials (the password is stored encrypted and never returned), list, remove;
 * the discovered hosts, VMs, networks and SRs, kept current by XAPI events; an event stream of their changes.
 */
import type { FastifyInstance } from 'fastify'
import type { PoolRecord } from '../../state/pools.js'
import type { ServerContext } from '../context.js'
import { streamChannel } from '../events.js'
import { poolChannel } from '../pools.js'
import { nodeCandidates } from '../node-candidates.js'
import { errors, name } from './schemas.js'

const poolParams = {
  type: 'object',
  properties: { pool: name },
  required: ['pool'],
  additionalProperties: false,
} as const

export function poolRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const json = (p: PoolRecord) => ({
    name: p.name,
    url: p.url,
    username: p.username,
    password: p.password, // always the redacted placeholder here
    tls: { verify: p.tls.verify, ca: !!p.tls.ca, fingerprint: p.tls.fingerprint },
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    ...ctx.pools.status(p.name),
  })

  app.get('/pools', { schema: { tags: ['pools'], summary: 'Pools', response: { ...errors } } }, async () => {
    const pools = ctx.state.pools.list()
    // Pools recorded by another process since the server started are watched from now on.
    await Promise.all(pools.map((p) => ctx.pools.ensure(p.name, 3000)))
    return pools.map(json)
  })

  app.post<{
    Body: {
      name: string
      url: string
      username: string
      password: string
      tls?: { verify?: boolean; ca?: string; fingerprint?: string }
    }
  }>(
    '/pools',
    {
      schema: {
        tags: ['pools'],
        summary: 'Add a pool by its master XAPI URL and credentials; discovery starts at once',
        body: {
          type: 'object',
          properties: {
            name,
            url: { type: 'string', minLength: 1, maxLength: 500 },
            username: { type: 'string', minLength: 1, maxLength: 200 },
            password: { type: 'string', minLength: 1, maxLength: 500 },
            tls: {
              type: 'object',
              properties: {
                verify: { type: 'boolean' },
                ca: { type: 'string', maxLength: 100_000 },
                fingerprint: { type: 'string', maxLength: 200 },
              },
              additionalProperties: false,
            },
          },
          required: ['name', 'url', 'username', 'password'],
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      const p = ctx.state.pools.add(req.body)
      // Wait briefly for the first snapshot so the answer says whether the credentials work.
      await Promise.race([ctx.pools.watch(p.name), new Promise((r) => setTimeout(r, 5000).unref())])
      return reply.code(201).send(json(ctx.state.pools.require(p.name)))
    },
  )

  app.get<{ Params: { pool: string } }>(
    '/pools/:pool',
    {
      schema: {
        tags: ['pools'],
        summary: 'A pool with its discovered hosts, VMs, networks and SRs',
        params: poolParams,
        response: { ...errors },
      },
    },
    async (req) => {
      const p = ctx.state.pools.require(req.params.pool)
      await ctx.pools.ensure(p.name, 5000)
      return { ...json(p), inventory: ctx.pools.inventory(p.name) ?? null }
    },
  )

  app.get<{ Params: { pool: string } }>(
    '/pools/:pool/node-candidates',
    {
      schema: {
        tags: ['pools', 'nodes'],
        summary: "Machines of the pool whose access is known (a lab's hosts), with the node data to add them with",
        params: poolParams,
        response: { ...errors },
      },
    },
    async (req) => {
      const p = ctx.state.pools.require(req.params.pool)
      await ctx.pools.ensure(p.name, 5000)
      return nodeCandidates(ctx.pools, p.name)
    },
  )

  app.delete<{ Params: { pool: string } }>(
    '/pools/:pool',
    {
      schema: {
        tags: ['pools'],
        summary: 'Remove a pool (refused while a node belongs to it)',
        params: poolParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      ctx.state.pools.remove(req.params.pool)
      ctx.pools.unwatch(req.params.pool)
      return reply.code(204).send()
    },
  )

  app.get<{ Params: { pool: string } }>(
    '/pools/:pool/events',
    {
      schema: {
        tags: ['pools'],
        summary: 'Server-sent events: status and object add/update/remove of the pool',
        params: poolParams,
        response: { ...errors },
      },
    },
    async (req, reply) => {
      ctx.state.pools.require(req.params.pool)
      streamChannel(req, reply, ctx.hub, poolChannel(req.params.pool), () => [
        { type: 'snapshot', data: { pool: req.params.pool, ...ctx.pools.status(req.params.pool) } },
      ])
    },
  )
}
