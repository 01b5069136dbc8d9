/** Releases: the shipped ones and those recorded in the store (an environment's release is recorded with it). */
import type { FastifyInstance } from 'fastify'
import { builtinReleases, releaseToJSON, type Release } from '../../releases/release.js'
import { resolveRelease } from '../../plugins/environment.js'
import type { ServerContext } from '../context.js'
import { errors } from './schemas.js'

const summary = (r: Release | Record<string, any>) => ({
  name: r.name as string,
  version: r.version as string,
  operatingSystem: r.operatingSystem as string,
  description: (r.description as string) ?? '',
})

export function releaseRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/releases',
    { schema: { tags: ['releases'], summary: 'Releases (shipped and recorded)', response: { ...errors } } },
    async () => {
      const shipped = builtinReleases().map(summary)
      const stored = ctx.state.releases
        .list()
        .filter((r) => !shipped.some((s) => s.name === r.name))
        .map((r) => summary(r.data))
      return [...shipped, ...stored]
    },
  )
  app.get<{ Params: { name: string } }>(
    '/releases/:name',
    {
      schema: {
        tags: ['releases'],
        summary: 'A release: components, roles, settings, networks, core tasks',
        params: {
          type: 'object',
          properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
          required: ['name'],
        },
        response: { ...errors },
      },
    },
    async (req) => releaseToJSON(resolveRelease(ctx.state, req.params.name)),
  )
}
