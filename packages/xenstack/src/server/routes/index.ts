/** The resource route modules mounted under /api/v1 besides environments and deployments. */
import type { FastifyInstance } from 'fastify'
import type { ServerContext } from '../context.js'
import { pluginRoutes } from './plugins.js'
import { poolRoutes } from './pools.js'
import { releaseRoutes } from './releases.js'

export const plugins: ((app: FastifyInstance, ctx: ServerContext) => void)[] = [releaseRoutes, pluginRoutes, poolRoutes]
