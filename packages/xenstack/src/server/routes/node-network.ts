/**
 * A node's network (server/node-network.ts): its HIMN status, and its NICs with the logical networks assigned to
 * them — read, and saved into the node record's `data.interfaces` (what the deployment reads) after validation.
 * And the environment's virtual IPs, kept in its cluster model where the compute tasks read the public one.
 */
import type { FastifyInstance } from 'fastify'
import type { ServerContext } from '../context.js'
import { HttpError } from '../errors.js'
import {
  LOGICAL_NETWORKS,
  assignmentsFrom,
  himnReport,
  nodeNics,
  requireNode,
  storedAssignments,
  type NodeInterfaces,
} from '../node-network.js'
import { envParams, errors, nodeParams } from './schemas.js'

const interfacesBody = {
  type: 'object',
  properties: {
    nics: {
      type: 'object',
      description: 'the logical networks on each NIC, e.g. {"eth0": ["public", "management"], "eth1": ["storage"]}',
      propertyNames: { pattern: '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$' },
      maxProperties: 64,
      additionalProperties: {
        type: 'array',
        items: { type: 'string', enum: [...LOGICAL_NETWORKS] },
        uniqueItems: true,
        maxItems: LOGICAL_NETWORKS.length,
      },
    },
  },
  required: ['nics'],
  additionalProperties: false,
} as const

const IPV4 = '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$'

const vipsBody = {
  type: 'object',
  properties: {
    publicVip: { type: 'string', pattern: IPV4, description: "where users reach the environment (nova's noVNC URL)" },
    managementVip: { type: 'string', pattern: IPV4, description: 'where services reach the controllers' },
  },
  required: ['publicVip', 'managementVip'],
  additionalProperties: false,
} as const

export function nodeNetworkRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { state } = ctx

  /** The environment's virtual IPs as the cluster model keeps them (`public_vip`, `management_vip`). */
  const vipsOf = (env: string) => {
    const c = state.environments.cluster(env)
    return { publicVip: (c.public_vip as string | undefined) ?? null, managementVip: c.management_vip ?? null }
  }

  app.get<{ Params: { env: string } }>(
    '/environments/:env/vips',
    {
      schema: {
        tags: ['environments'],
        summary: "The environment's public and management virtual IPs (null until set)",
        params: envParams,
        response: { ...errors },
      },
    },
    async (req) => {
      state.environments.require(req.params.env)
      return vipsOf(req.params.env)
    },
  )

  app.put<{ Params: { env: string }; Body: { publicVip: string; managementVip: string } }>(
    '/environments/:env/vips',
    {
      schema: {
        tags: ['environments'],
        summary:
          "Set the environment's virtual IPs (Fuel's Networks tab): the compute's noVNC base URL is on the public one",
        params: envParams,
        body: vipsBody,
        response: { ...errors },
      },
    },
    async (req) => {
      const { env } = req.params
      if (ctx.deployments.isRunning(env))
        throw new HttpError(409, `environment ${env} is being deployed; its virtual IPs cannot change now`)
      state.transaction(() => {
        state.environments.require(env)
        state.environments.setCluster(env, {
          ...state.environments.cluster(env),
          public_vip: req.body.publicVip,
          management_vip: req.body.managementVip,
        })
      })
      return vipsOf(env)
    },
  )

  const interfacesOf = async (env: string, node: string): Promise<NodeInterfaces> => {
    state.environments.require(env)
    const rec = requireNode(state, env, node)
    const { source, nics } = await nodeNics(state, ctx.pools, rec)
    return { node, source, nics, networks: LOGICAL_NETWORKS, assignments: storedAssignments(rec) }
  }

  app.get<{ Params: { env: string; node: string } }>(
    '/environments/:env/nodes/:node/himn',
    {
      schema: {
        tags: ['nodes'],
        summary:
          "The node's HIMN: its VIF on the host internal management network (plugged, MAC), the MAC in xenstore, " +
          "the guest's address on it (guest agent, or read on the node when it is reachable)",
        params: nodeParams,
        response: { ...errors },
      },
    },
    async (req) => {
      state.environments.require(req.params.env)
      return himnReport(state, ctx.pools, requireNode(state, req.params.env, req.params.node))
    },
  )

  app.get<{ Params: { env: string; node: string } }>(
    '/environments/:env/nodes/:node/interfaces',
    {
      schema: {
        tags: ['nodes'],
        summary: "The node's NICs (its VIFs through XAPI, or read on the node) and the logical networks on each",
        params: nodeParams,
        response: { ...errors },
      },
    },
    async (req) => interfacesOf(req.params.env, req.params.node),
  )

  app.put<{ Params: { env: string; node: string }; Body: { nics: Record<string, string[]> } }>(
    '/environments/:env/nodes/:node/interfaces',
    {
      schema: {
        tags: ['nodes'],
        summary:
          'Assign the logical networks to NICs (every network on exactly one NIC the node has; not the HIMN NIC); ' +
          'kept as data.interfaces, which the deployment reads',
        params: nodeParams,
        body: interfacesBody,
        response: { ...errors },
      },
    },
    async (req) => {
      const { env, node } = req.params
      if (ctx.deployments.isRunning(env))
        throw new HttpError(409, `environment ${env} is being deployed; its nodes' interfaces cannot change now`)
      state.environments.require(env)
      const rec = requireNode(state, env, node)
      const { nics } = await nodeNics(state, ctx.pools, rec)
      const interfaces = assignmentsFrom(
        node,
        req.body.nics,
        nics,
        (rec.data?.addresses ?? {}) as Record<string, unknown>,
      )
      state.transaction(() => {
        // read again inside the transaction: roles or data may have changed while XAPI was asked
        const current = requireNode(state, env, node)
        state.environments.updateNode(env, node, { data: { ...current.data, interfaces } })
      })
      return interfacesOf(env, node)
    },
  )
}
