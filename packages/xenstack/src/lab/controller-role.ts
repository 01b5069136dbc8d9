/**
 * What a lab controller is to the XenServer plugin: a Fuel-deployed OpenStack controller. Fuel's controllers come out
 * of the core deployment with nova installed and configured; the plugin's controller task
 * (`xenserver.controller-vnc-cache`) then edits their `/etc/nova/nova.conf`, copying the memcached servers keystone's
 * middleware uses (`[keystone_authtoken] memcached_servers`, every controller's management address on port 11211)
 * into the console-token cache keys (reference xenserver-integration.md §9, LP#1576218).
 *
 * xenstack's release does not install nova, so the lab writes that file on every controller before the host starts,
 * with the keys a Fuel 9.0 (Mitaka) controller has that the plugin and the health checks read, and no secrets
 * (the database URL names the user, not a password). No nova service runs on a lab controller: the plugin's
 * `Service` resources find nova-novncproxy and nova-consoleauth not installed and leave them alone.
 */
import type { LabHostPlan, LabPlan } from './topology.js'

export const CONTROLLER_NOVA_CONF = '/etc/nova/nova.conf'
/** Fuel runs memcached on every controller's management address. */
export const CONTROLLER_MEMCACHED_PORT = 11211

const addressOf = (h: LabHostPlan): string => {
  const a = h.addresses.management
  if (!a) throw new Error(`lab controller ${h.name}: no management address (controllers sit on the management network)`)
  return a.split('/')[0]
}

/** `[keystone_authtoken] memcached_servers` of every controller: all controllers' memcached, in host order. */
export function controllerMemcachedServers(plan: LabPlan): string {
  return plan.hosts
    .filter((h) => h.role === 'controller')
    .map((h) => `${addressOf(h)}:${CONTROLLER_MEMCACHED_PORT}`)
    .join(',')
}

/** The nova.conf a Fuel controller has before the XenServer plugin's post-deployment tasks. */
export function controllerNovaConf(plan: LabPlan, host: LabHostPlan): string {
  if (host.role !== 'controller')
    throw new Error(`controllerNovaConf: ${host.name} is a ${host.role}, not a controller`)
  const own = addressOf(host)
  // the lab's VIP is its first controller's management address (lab/environment.ts registers the same)
  const vip = addressOf(plan.hosts.find((h) => h.role === 'controller')!)
  return [
    `# ${CONTROLLER_NOVA_CONF} of ${host.name}, written by the xenstack lab ${plan.name} as a Fuel 9.0 controller has it`,
    '# after the core deployment (no nova runs here; the XenServer plugin edits this file).',
    '[DEFAULT]',
    'debug = False',
    `my_ip = ${own}`,
    'state_path = /var/lib/nova',
    'use_syslog = True',
    '',
    '[database]',
    `connection = mysql+pymysql://nova@${vip}/nova?read_timeout=60`,
    '',
    '[glance]',
    `api_servers = http://${vip}:9292`,
    '',
    '[keystone_authtoken]',
    `auth_uri = http://${vip}:5000/`,
    `memcached_servers = ${controllerMemcachedServers(plan)}`,
    '',
    '[vnc]',
    `novncproxy_host = ${own}`,
    'novncproxy_port = 6080',
    '',
  ].join('\n')
}

/** Files (absolute path in the host → content) a lab host of this role gets before it starts. */
export function roleFiles(plan: LabPlan, host: LabHostPlan): Record<string, string> {
  if (host.role === 'controller') return { [CONTROLLER_NOVA_CONF]: controllerNovaConf(plan, host) }
  return {}
}
