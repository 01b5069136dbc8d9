/**
 * `xenserver.controller-vnc-cache` (reference §9, LP#1576218): with several controllers, a noVNC console token
 * issued by one controller's nova-consoleauth was unknown to the others, so consoles failed at random. Tokens are
 * shared through memcache, the servers keystone's middleware already uses.
 *
 * The original wrote `[cache] enable = True`, `[cache] memcached_servers` and `[DEFAULT] memcached_servers`. Only
 * the last one was ever read (nova's cache_utils, Juno to Newton): oslo.cache's options are `enabled`,
 * `backend` and `memcache_servers`, and without `enabled` nova ignores the [cache] group. So the keys are
 * written per release: `[DEFAULT] memcached_servers` before Ocata (where it was removed), oslo.cache's `[cache]
 * enabled/backend/memcache_servers` from Mitaka (where nova adopted oslo.cache), and the original's two
 * misspelled keys are removed. nova-novncproxy and nova-consoleauth restart only when one of the keys changed;
 * the rest of nova.conf is untouched (the original rewrote it from a `.orig` copy).
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import { IniSetting, Service, type Executor, type Resource } from '../../node/index.js'
import { execOf, nodeDataOf } from '../context.js'
import { openstackReleaseOf, type OpenStackRelease } from '../compute/release.js'

export const NOVA_CONF = '/etc/nova/nova.conf'
/** Fuel runs memcached on every controller's management address. */
export const MEMCACHED_PORT = 11211

/** The services that hand out and check console tokens (nova-consoleauth was removed in Train). */
export function consoleServices(release: OpenStackRelease): string[] {
  return release.before('train') ? ['nova-novncproxy', 'nova-consoleauth'] : ['nova-novncproxy']
}

/** nova.conf's token-cache keys for a release: `[section, key, value | null (removed)]`. */
export function vncCacheKeys(release: OpenStackRelease, servers: string): [string, string, string | null][] {
  const keys: [string, string, string | null][] = []
  if (release.atLeast('mitaka'))
    keys.push(
      ['cache', 'enabled', 'True'],
      ['cache', 'backend', 'oslo_cache.memcache_pool'],
      ['cache', 'memcache_servers', servers],
    )
  keys.push(['DEFAULT', 'memcached_servers', release.before('ocata') ? servers : null])
  keys.push(['cache', 'enable', null], ['cache', 'memcached_servers', null])
  return keys
}

export function vncCacheResources(release: OpenStackRelease, servers: string): Resource[] {
  const settings = vncCacheKeys(release, servers).map(([section, key, value]) =>
    value === null
      ? new IniSetting({ path: NOVA_CONF, section, key, ensure: 'absent' })
      : new IniSetting({ path: NOVA_CONF, section, key, value }),
  )
  return [...settings, ...consoleServices(release).map((name) => new Service({ name, restartOn: settings }))]
}

/** An ini key's value (oslo.config: the last occurrence in the last section of that name wins), or undefined. */
export function iniValue(text: string, wanted: string, key: string): string | undefined {
  let section = 'DEFAULT'
  let found: string | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const s = /^\[([^\]]+)\]$/.exec(line)
    if (s) {
      section = s[1]
      continue
    }
    const kv = /^([\w.-]+)\s*=\s*(.*)$/.exec(line)
    if (kv && section === wanted && kv[1] === key) found = kv[2].trim()
  }
  return found || undefined
}

/** Where a Fuel controller's nova.conf names its memcached servers, in order of preference. */
export const MEMCACHED_SOURCES: [string, string][] = [
  ['keystone_authtoken', 'memcached_servers'],
  ['keystone', 'memcached_servers'],
  ['cache', 'memcache_servers'],
  ['DEFAULT', 'memcached_servers'],
]

export function memcachedServersIn(text: string): { servers: string; from: string } | undefined {
  for (const [section, key] of MEMCACHED_SOURCES) {
    const v = iniValue(text, section, key)
    if (v) return { servers: v, from: `[${section}] ${key}` }
  }
  return undefined
}

/**
 * The servers to share tokens through: those nova.conf already names; else this controller's own memcached on
 * its management address, with a warning (tokens are then shared only if every controller ends up pointing at
 * the same servers — set `[keystone_authtoken] memcached_servers` to all of them for HA).
 */
export async function memcachedServersOf(
  ctx: Pick<NativeTaskContext, 'node' | 'log'> & object,
  exec: Executor,
): Promise<string> {
  const r = await exec.run(['cat', NOVA_CONF], { allowedExitCodes: [0, 1] })
  if (r.code !== 0)
    throw new Error(`node ${ctx.node}: ${NOVA_CONF} is missing: nova is not installed on this controller`)
  const named = memcachedServersIn(r.stdout)
  if (named) {
    ctx.log(`memcached servers from ${NOVA_CONF} ${named.from}: ${named.servers}`)
    return named.servers
  }
  const mgmt = nodeDataOf(ctx).addresses?.management
  if (typeof mgmt !== 'string' || !/^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(mgmt))
    throw new Error(
      `node ${ctx.node}: ${NOVA_CONF} names no memcached servers (${MEMCACHED_SOURCES.map(([s, k]) => `[${s}] ${k}`).join(', ')}) ` +
        `and the node record has no management address to use its own memcached`,
    )
  const own = `${mgmt.split('/')[0]}:${MEMCACHED_PORT}`
  ctx.log(
    `warning: ${NOVA_CONF} names no memcached servers; using this controller's own (${own}). With several ` +
      `controllers set [keystone_authtoken] memcached_servers to all of them so console tokens are shared`,
  )
  return own
}

export const controllerVncCache: NativeTask = {
  async resources(ctx) {
    const release = openstackReleaseOf(ctx)
    const servers = await memcachedServersOf(ctx, execOf(ctx))
    ctx.log(`console tokens shared through memcached ${servers} (OpenStack ${release.series})`)
    return vncCacheResources(release, servers)
  },
}
