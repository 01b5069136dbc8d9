/**
 * Plugins: list, install from an uploaded archive (the request body is the `.tar.gz`/`.fp` file itself,
 * `Content-Type: application/gzip` or `application/octet-stream`), remove (refused while an environment has it
 * enabled). Installation is the CLI's `plugins install`: checksums verified, validated against the release.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { redactSettings } from '@xenstack/restrictions'
import { installPlugin, removePlugin } from '../../plugins/lifecycle.js'
import { resolveRelease } from '../../plugins/environment.js'
import type { InstalledPlugin } from '../../state/store.js'
import type { ServerContext } from '../context.js'
import { HttpError } from '../errors.js'
import { errors } from './schemas.js'

export const pluginJson = (p: InstalledPlugin) => ({
  name: p.name,
  version: p.version,
  major: p.major,
  packageVersion: p.packageVersion,
  title: p.title,
  description: p.description,
  installedAt: p.installedAt,
  archiveSha256: p.archiveSha256,
  releases: p.data.metadata.releases ?? [],
  // Whole definitions (incompatible/requires/compatible): the UI's wizard runs the same component logic on them.
  components: (p.data.components ?? []).map(({ source: _source, ...c }: { source?: string; name: string }) => c),
  roles: Object.keys(p.data.nodeRoles ?? {}),
  // Its settings (environment_config attributes): the wizard asks for the ones a new environment needs.
  attributes: redactSettings({ [p.name]: p.data.attributes ?? {} })[p.name],
  files: p.files.length,
})

export function pluginRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/plugins',
    { schema: { tags: ['plugins'], summary: 'Installed plugins', response: { ...errors } } },
    async () => ctx.state.plugins.list().map(pluginJson),
  )

  app.post<{ Body: Buffer; Querystring: { release?: string } }>(
    '/plugins',
    {
      bodyLimit: 256 * 1024 * 1024,
      schema: {
        tags: ['plugins'],
        summary: 'Install a plugin from its archive (the request body, application/gzip)',
        querystring: {
          type: 'object',
          properties: { release: { type: 'string', minLength: 1, maxLength: 200 } },
          additionalProperties: false,
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body) || req.body.length === 0)
        throw new HttpError(400, 'body: expected the plugin archive (.tar.gz or .fp) as application/gzip', {
          field: 'body',
        })
      const release = resolveRelease(ctx.state, req.query.release)
      const dir = mkdtempSync(join(tmpdir(), 'xenstack-upload-'))
      try {
        const file = join(dir, 'upload.tar.gz')
        writeFileSync(file, req.body)
        const p = installPlugin(ctx.state, file, {
          coreTasks: release.tasks,
          releaseName: release.name,
          releaseComponents: release.components,
        })
        return reply.code(201).send(pluginJson(p))
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )

  app.delete<{ Params: { name: string; version: string } }>(
    '/plugins/:name/:version',
    {
      schema: {
        tags: ['plugins'],
        summary: 'Remove an installed plugin version',
        params: {
          type: 'object',
          properties: {
            name: { type: 'string', pattern: '^[a-z0-9_-]+$', maxLength: 100 },
            version: { type: 'string', pattern: '^\\d[\\w.-]*$', maxLength: 50 },
          },
          required: ['name', 'version'],
        },
        response: { ...errors },
      },
    },
    async (req) => pluginJson(removePlugin(ctx.state, `${req.params.name}==${req.params.version}`)),
  )
}
