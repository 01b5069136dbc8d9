/**
 * The REST server (Fastify): `/api/v1/…` resources, the health checks' fuel-ostf API under `/api/health`, the
 * OpenAPI document at `/api/docs`, and the web UI (`packages/web/dist` when built, else a placeholder page).
 *
 * Every `/api/` route except the OpenAPI document needs `Authorization: Bearer <token>` (event streams also take
 * `?access_token=`, as EventSource cannot send headers): 401 without it or with a wrong one. Every body, parameter
 * and query has a JSON schema, so bad input is a 400 naming the field, never a 5xx. Responses carry
 * `X-Frame-Options: DENY` and `Content-Security-Policy: frame-ancestors 'none'` (the UI cannot be framed).
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { extname, join, normalize, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import swagger from '@fastify/swagger'
import { registerHealthRoutes, type HealthRoutesDeps } from '../health/api.js'
import { XENSTACK_VERSION as VERSION } from '../version.js'
import type { TokenStore } from './auth.js'
import { presentedToken } from './auth.js'
import type { ServerContext } from './context.js'
import { errorHandler } from './errors.js'
import { deploymentRoutes } from './routes/deployments.js'
import { environmentRoutes } from './routes/environments.js'
import { plugins } from './routes/index.js'
import { nodeNetworkRoutes } from './routes/node-network.js'
import { errors } from './routes/schemas.js'

export interface AppOptions {
  tokens: TokenStore
  /** The health checks' API (HEALTH's registerHealthRoutes deps); absent: those routes answer 404. */
  health?: HealthRoutesDeps
  /** The built web UI; default `packages/web/dist` of this checkout. */
  webDir?: string
}

export const DEFAULT_WEB_DIR = resolve(fileURLToPath(import.meta.url), '../../../../../web/dist')

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
}

const PLACEHOLDER = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>xenstack</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>xenstack</h1>
<p>The web UI is coming. Until then, the REST API is here: its OpenAPI document is at
<a href="/api/docs">/api/docs</a>; every <code>/api/v1</code> route takes <code>Authorization: Bearer &lt;token&gt;</code>
(the token was printed when the server first started).</p>
</body></html>
`

/** True for URLs that need the token. */
const needsToken = (url: string) => url.startsWith('/api/') && !/^\/api\/docs\/?(\?|$)/.test(url)
/**
 * True for a GET of an event stream route, judged by the route matched (its pattern ends in /events), not by the URL:
 * `/environments/events` (an environment named "events") or a DELETE must not take a query token.
 */
const isEventStream = (req: FastifyRequest) => req.method === 'GET' && /\/events$/.test(req.routeOptions.url ?? '')

export async function buildApp(ctx: ServerContext, opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 8 * 1024 * 1024,
    // Strict input: unknown fields are rejected (not dropped), types are not coerced, every problem is reported.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } },
    return503OnClosing: true,
  })
  app.setErrorHandler(errorHandler)
  // Event streams never end by themselves: end them so close() does not wait for their clients.
  app.addHook('preClose', async () => ctx.hub.endStreams())
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'Not Found', message: `no route ${req.method} ${req.url.split('?')[0]}` })
  })
  app.addContentTypeParser(
    ['application/gzip', 'application/x-gzip', 'application/octet-stream'],
    { parseAs: 'buffer' },
    (_req, body, done) => done(null, body),
  )

  app.addHook('onRequest', async (req, reply) => {
    if (!needsToken(req.url)) return
    const token = presentedToken(req.headers, req.query, isEventStream(req))
    if (!opts.tokens.verify(token)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="xenstack"')
        .send({
          error: 'Unauthorized',
          message: token
            ? 'the API token is not valid'
            : 'an API token is required: Authorization: Bearer <token> (printed when the server first started)',
        })
    }
  })
  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-frame-options', 'DENY')
    reply.header('x-content-type-options', 'nosniff')
    reply.header('referrer-policy', 'no-referrer')
    reply.header(
      'content-security-policy',
      req.url.startsWith('/api/')
        ? "default-src 'none'; frame-ancestors 'none'"
        : "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    )
    if (req.url.startsWith('/api/')) reply.header('cache-control', 'no-store')
    return payload
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'xenstack API',
        version: VERSION,
        description:
          'XenServer pools as OpenStack compute, Fuel-style. Authenticate with `Authorization: Bearer <token>`.',
      },
      components: { securitySchemes: { token: { type: 'http', scheme: 'bearer' } } },
      security: [{ token: [] }],
    },
  })

  app.get('/api/docs', { schema: { hide: true } }, async () => app.swagger())

  await app.register(
    async (api) => {
      api.get(
        '/status',
        {
          schema: {
            tags: ['status'],
            summary: 'Version, state backend and what cannot run here',
            response: { ...errors },
          },
        },
        async () => ({
          version: VERSION,
          backend: ctx.state.backend,
          state: ctx.state.location,
          notes: ctx.notes,
        }),
      )
      for (const routes of plugins) routes(api, ctx)
      environmentRoutes(api, ctx)
      nodeNetworkRoutes(api, ctx)
      deploymentRoutes(api, ctx)
    },
    { prefix: '/api/v1' },
  )

  if (opts.health) {
    const deps = opts.health
    await app.register(async (h) => registerHealthRoutes(h, deps), { prefix: '/api/health' })
  }

  const webDir = opts.webDir ?? DEFAULT_WEB_DIR
  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    const path = decodeURIComponent(req.url.split('?')[0])
    if (path.startsWith('/api/')) return reply.callNotFound()
    if (!existsSync(join(webDir, 'index.html'))) {
      if (path !== '/') return reply.callNotFound()
      return reply.type('text/html; charset=utf-8').send(PLACEHOLDER)
    }
    const file = normalize(join(webDir, path))
    const inside = file === webDir || file.startsWith(webDir + sep)
    const target = inside && existsSync(file) && statSync(file).isFile() ? file : join(webDir, 'index.html')
    return reply.type(MIME[extname(target)] ?? 'application/octet-stream').send(readFileSync(target))
  })

  return app
}
