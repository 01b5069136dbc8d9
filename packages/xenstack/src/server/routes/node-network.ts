/**
 * A node's network (server/node-network.ts): its HIMN status, and its NICs with the logical networks assigned to
 * them — read, and saved into the node record's `data.interfaces` (what the deployment reads) after validation.
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
import { errors, name } from './schemas.js'

const nodeParams = {
  type: 'object',
  properties: { env: name, node: name },
  required: ['env', 'node'],
  additionalProperties: false,
} as const

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

export function nodeNetworkRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { state } = ctx

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
      const interfaces = assignmentsFrom(node, req.body.nics, nics)
      state.transaction(() => {
        // read again inside the transaction: roles or data may have changed while XAPI was asked
        const current = requireNode(state, env, node)
        state.environments.updateNode(env, node, { data: { ...current.data, interfaces } })
      })
      return interfacesOf(env, node)
    },
  )
}
