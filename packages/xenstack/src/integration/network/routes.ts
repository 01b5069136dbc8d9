/**
 * Dom0's routes to the OpenStack networks through the compute VM's HIMN address (the original's
 * `route_to_compute`), for the networks' real CIDRs. They are persisted the way the original did — a udev rule
 * on the `xenapi` bridge running `/etc/udev/scripts/reroute.sh` — because the HIMN bridge does not exist yet when
 * dom0 applies static routes at boot. The script is generated whole from the desired routes (so a changed CIDR or
 * HIMN address replaces the old line instead of adding one), uses `ip route replace` (running it again changes
 * nothing) and carries each route's prefix as is (no /24 and no netmask guessing).
 */
import { DirectoryResource, FileResource, Route, canonicalCidr, type Resource } from '../../node/index.js'

export const HIMN_BRIDGE = 'xenapi'
export const REROUTE_SCRIPT = '/etc/udev/scripts/reroute.sh'
export const REROUTE_RULES = '/etc/udev/rules.d/90-reroute.rules'

export interface Dom0RoutesOptions {
  /** The compute VM's HIMN address (the gateway). */
  via: string
  /** Destination networks with their real prefixes (`10.61.0.0/22`). */
  networks: readonly string[]
  /** dom0's HIMN bridge (default `xenapi`). */
  bridge?: string
}

/** The content of reroute.sh for these routes. */
export function rerouteScript(opts: Dom0RoutesOptions): string {
  const bridge = opts.bridge ?? HIMN_BRIDGE
  checkAddress(opts.via)
  const routes = [...new Set(opts.networks.map(canonicalCidr))]
  return [
    '#!/bin/sh',
    '# Written by xenstack (xenserver.dom0-routes); rewritten on every deploy, do not edit.',
    `# dom0's routes to the OpenStack networks through the compute VM's HIMN address ${opts.via}. udev runs this`,
    `# when the ${bridge} bridge appears (${REROUTE_RULES}); running it again changes nothing.`,
    '# udev runs programs with a minimal environment',
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    `# Wait (at most 30 s) for ${bridge} to get its address: a route through it needs it.`,
    `i=0; while [ $i -lt 30 ] && ! ip -4 addr show dev ${bridge} 2>/dev/null | grep -q 'inet '; do sleep 1; i=$((i+1)); done`,
    'rc=0',
    ...routes.map((r) => `ip route replace ${r} via ${opts.via} dev ${bridge} || rc=1`),
    'exit $rc',
    '',
  ].join('\n')
}

export function rerouteRule(bridge = HIMN_BRIDGE): string {
  return `SUBSYSTEM=="net", ACTION=="add", KERNEL=="${bridge}", RUN+="${REROUTE_SCRIPT}"\n`
}

/** The routes now, then the script and the udev rule that re-create them at boot, as resources for dom0. */
export function dom0RouteResources(opts: Dom0RoutesOptions): Resource[] {
  const bridge = opts.bridge ?? HIMN_BRIDGE
  if (opts.networks.length === 0) throw new Error('dom0 routes: no networks to route')
  return [
    ...[...new Set(opts.networks.map(canonicalCidr))].map(
      (to) => new Route({ to, via: opts.via, dev: bridge, persist: 'none' }),
    ),
    new DirectoryResource({ path: '/etc/udev/scripts' }),
    new DirectoryResource({ path: '/etc/udev/rules.d' }),
    new FileResource({ path: REROUTE_SCRIPT, content: rerouteScript(opts), mode: 0o755 }),
    new FileResource({ path: REROUTE_RULES, content: rerouteRule(bridge), mode: 0o644 }),
  ]
}

function checkAddress(ip: string): void {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip) || ip.split('.').some((o) => Number(o) > 255))
    throw new Error(`dom0 routes: gateway ${JSON.stringify(ip)} is not an IPv4 address`)
}
