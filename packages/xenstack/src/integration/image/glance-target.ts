/**
 * Where the primary controller's Glance is and how to authenticate to it, for `xenserver.test-image`.
 *
 * In order:
 *  1. the node's record data `glance: { url?, authUrl?, interface?, region?, insecure?, caFile? }` (what an
 *     environment states explicitly; the lab records its controller's Glance there). With `authUrl`, the Keystone
 *     credentials are the environment's `access` settings (user, password, tenant — Fuel's OpenStack admin);
 *     otherwise `url` is used directly.
 *  2. `/root/openrc` on the primary controller, read through node access — where the original plugin took
 *     OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_TENANT_NAME from. OS_PROJECT_NAME, the domain names,
 *     OS_REGION_NAME, OS_INTERFACE/OS_ENDPOINT_TYPE and OS_CACERT (read from the controller) are honoured; without
 *     OS_AUTH_URL, OS_IMAGE_URL is a direct endpoint.
 * Passwords become `Secret`s at once; nothing here logs them.
 */
import { readFile } from 'node:fs/promises'
import type { NativeTaskContext } from '../../engine/tasks.js'
import type { GlanceClientOptions } from '../../glance/client.js'
import type { EndpointInterface } from '../../glance/keystone.js'
import { Secret } from '../../node/secret.js'
import { execOf, nodeDataOf, settingValue } from '../context.js'

export interface GlanceTarget {
  options: GlanceClientOptions
  /** Where the settings came from, for messages (e.g. "node controller-1's data.glance"). */
  source: string
}

export class GlanceTargetError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'GlanceTargetError'
  }
}

/** `export KEY=value` lines of an openrc file (quotes removed; `$VAR` references are not expanded). */
export function parseOpenrc(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const raw of text.split('\n')) {
    const m = /^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(raw)
    if (!m) continue
    let v = m[2].trim()
    if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) v = v.slice(1, -1)
    out[m[1]] = v
  }
  return out
}

function endpointInterface(v: string | undefined, where: string): EndpointInterface | undefined {
  if (!v) return undefined
  const i = v.replace(/URL$/, '')
  if (i === 'public' || i === 'internal' || i === 'admin') return i
  throw new GlanceTargetError(`${where}: interface ${JSON.stringify(v)} is not public, internal or admin`)
}

/** The Glance client options from an openrc file's variables; `readCa` reads OS_CACERT from the same node. */
export async function targetFromOpenrc(
  env: Record<string, string>,
  where: string,
  readCa: (path: string) => Promise<Buffer>,
): Promise<GlanceTarget> {
  const ca = env.OS_CACERT
    ? await readCa(env.OS_CACERT).catch((e: Error) => {
        throw new GlanceTargetError(`${where}: cannot read OS_CACERT ${env.OS_CACERT}: ${e.message}`)
      })
    : undefined
  const tls = { ca, insecure: /^(1|true|yes)$/i.test(env.OS_INSECURE ?? '') }
  if (env.OS_AUTH_URL) {
    const missing = ['OS_USERNAME', 'OS_PASSWORD'].filter((k) => !env[k])
    const project = env.OS_PROJECT_NAME || env.OS_TENANT_NAME
    if (!project) missing.push('OS_PROJECT_NAME (or OS_TENANT_NAME)')
    if (missing.length) throw new GlanceTargetError(`${where}: OS_AUTH_URL is set but ${missing.join(', ')} is missing`)
    return {
      source: where,
      options: {
        keystone: {
          authUrl: env.OS_AUTH_URL,
          username: env.OS_USERNAME,
          password: new Secret(env.OS_PASSWORD),
          projectName: project!,
          userDomainName: env.OS_USER_DOMAIN_NAME || undefined,
          projectDomainName: env.OS_PROJECT_DOMAIN_NAME || undefined,
        },
        interface: endpointInterface(env.OS_INTERFACE || env.OS_ENDPOINT_TYPE, where),
        region: env.OS_REGION_NAME || undefined,
        tls,
      },
    }
  }
  if (env.OS_IMAGE_URL) return { source: where, options: { endpoint: env.OS_IMAGE_URL, tls } }
  throw new GlanceTargetError(`${where} has neither OS_AUTH_URL (Keystone) nor OS_IMAGE_URL (a direct Glance endpoint)`)
}

interface GlanceNodeData {
  url?: string
  authUrl?: string
  interface?: string
  region?: string
  insecure?: boolean
  caFile?: string
}

export async function glanceTargetOf(
  ctx: Pick<NativeTaskContext, 'node' | 'settings' | 'exec'> & object,
): Promise<GlanceTarget> {
  const g = nodeDataOf(ctx).glance as GlanceNodeData | undefined
  if (g && typeof g === 'object' && (g.url || g.authUrl)) {
    const where = `node ${ctx.node}'s data.glance`
    const ca = g.caFile
      ? await readFile(g.caFile).catch((e: Error) => {
          throw new GlanceTargetError(`${where}.caFile: ${e.message}`)
        })
      : undefined
    const tls = { ca, insecure: g.insecure === true }
    if (g.authUrl) {
      const v = (k: string) => settingValue(ctx.settings ?? {}, 'access', k)
      const user = v('user')
      const password = v('password')
      const tenant = v('tenant')
      if (typeof user !== 'string' || !user || typeof tenant !== 'string' || !tenant)
        throw new GlanceTargetError(`${where}.authUrl is set, but the access settings have no user or tenant`)
      if (typeof password !== 'string' || !password || password === '********')
        throw new GlanceTargetError(`${where}.authUrl is set, but the access settings' password is not available`)
      return {
        source: `${where} (Keystone, access settings)`,
        options: {
          keystone: { authUrl: g.authUrl, username: user, password: new Secret(password), projectName: tenant },
          interface: endpointInterface(g.interface, `${where}.interface`),
          region: g.region,
          tls,
        },
      }
    }
    return { source: where, options: { endpoint: g.url!, tls } }
  }
  const exec = execOf(ctx)
  let openrc: Buffer
  try {
    openrc = await exec.get('/root/openrc')
  } catch (e) {
    throw new GlanceTargetError(
      `node ${ctx.node}: no Glance to upload TestVM to: the node's data has no "glance" ({ url } or { authUrl }) ` +
        `and /root/openrc cannot be read on ${exec.host} (${(e as Error).message.split('\n')[0]})`,
    )
  }
  return targetFromOpenrc(parseOpenrc(openrc.toString('utf8')), `/root/openrc on ${ctx.node}`, (p) => exec.get(p))
}
