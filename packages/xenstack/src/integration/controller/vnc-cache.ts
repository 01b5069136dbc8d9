/**
 * `xenserver.controller-vnc-cache` (reference §9, LP#1576218): with several controllers, a noVNC console token
 * issued by one controller's nova-consoleauth was unknown to the others, so consoles failed at random. Tokens are
 * shared through memcache: nova.conf `[cache] enable = True` and `memcached_servers` — the servers keystone's
 * middleware already uses (`[keystone_authtoken] memcached_servers`), also under `[DEFAULT]` for the releases that
 * read it there. nova-novncproxy and nova-consoleauth restart only when one of these keys changed. The original
 * rewrote nova.conf from a `.orig` copy; here only the three keys are touched, so a second run changes nothing.
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import { IniSetting, Service, type Executor, type Resource } from '../../node/index.js'
import { execOf } from '../context.js'
import { openstackReleaseOf, type OpenStackRelease } from '../compute/release.js'

export const NOVA_CONF = '/etc/nova/nova.conf'

/** The services that hand out and check console tokens (nova-consoleauth was removed in Train). */
export function consoleServices(release: OpenStackRelease): string[] {
  return release.before('train') ? ['nova-novncproxy', 'nova-consoleauth'] : ['nova-novncproxy']
}

export function vncCacheResources(release: OpenStackRelease, memcachedServers: string): Resource[] {
  const settings = [
    new IniSetting({ path: NOVA_CONF, section: 'cache', key: 'enable', value: 'True' }),
    new IniSetting({ path: NOVA_CONF, section: 'cache', key: 'memcached_servers', value: memcachedServers }),
    // [DEFAULT] memcached_servers was how nova-consoleauth found memcache until the [cache] group replaced it.
    new IniSetting({ path: NOVA_CONF, section: 'DEFAULT', key: 'memcached_servers', value: memcachedServers }),
  ]
  return [...settings, ...consoleServices(release).map((name) => new Service({ name, restartOn: settings }))]
}

/** `[keystone_authtoken] memcached_servers` of nova.conf (oslo.config: the last occurrence wins), or undefined. */
export function authtokenMemcachedServers(text: string): string | undefined {
  let section = ''
  let found: string | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    const s = /^\[([^\]]+)\]$/.exec(line)
    if (s) {
      section = s[1]
      continue
    }
    const kv = /^memcached_servers\s*=\s*(.*)$/.exec(line)
    if (kv && section === 'keystone_authtoken') found = kv[1].trim()
  }
  return found || undefined
}

export async function memcachedServersOf(ctx: Pick<NativeTaskContext, 'node'>, exec: Executor): Promise<string> {
  const r = await exec.run(['cat', NOVA_CONF], { allowedExitCodes: [0, 1] })
  if (r.code !== 0)
    throw new Error(`node ${ctx.node}: ${NOVA_CONF} is missing, so nova's console token cache cannot be configured`)
  const servers = authtokenMemcachedServers(r.stdout)
  if (!servers)
    throw new Error(
      `node ${ctx.node}: ${NOVA_CONF} has no [keystone_authtoken] memcached_servers to share console tokens through ` +
        `(expected e.g. "memcached_servers = 192.168.0.3:11211,192.168.0.4:11211")`,
    )
  return servers
}

export const controllerVncCache: NativeTask = {
  async resources(ctx) {
    const release = openstackReleaseOf(ctx)
    const servers = await memcachedServersOf(ctx, execOf(ctx))
    ctx.log(`console tokens shared through memcached ${servers} (OpenStack ${release.series})`)
    return vncCacheResources(release, servers)
  },
}
