/**
 * Routing and NAT (issue 9.5): `xenserver.dom0-routes` (dom0 → the management and storage networks via the
 * compute VM's HIMN address, persisted by a udev rule) and `xenserver.compute-nat` (the compute VM forwards and
 * masquerades for dom0, and forwards port 80 to dom0 for noVNC).
 */
import type { NativeTask } from '../../engine/tasks.js'
import type { Executor, Resource } from '../../node/index.js'
import { execOf, nodeDataOf } from '../context.js'
import { dom0Of } from '../dom0-access.js'
import { onExecutor } from '../dom0/on-dom0.js'
import { computeNetworks, himnOf, ipv4Interfaces, nodeAddressesOf } from './addresses.js'
import { computeNatResources } from './nat.js'
import { dom0RouteResources } from './routes.js'

export * from './addresses.js'
export * from './nat.js'
export * from './routes.js'

/** The compute VM's HIMN and its networks, from the interfaces it has now: what routes and NAT are built on. */
async function computeNetworking(compute: Executor, node: string, addresses: Record<string, string | undefined>) {
  const interfaces = await ipv4Interfaces(compute)
  return { himn: himnOf(node, interfaces), networks: computeNetworks(node, addresses, interfaces) }
}

/** Dom0's route resources for a compute node: its HIMN address as gateway, its networks' real CIDRs. */
export async function dom0RoutesFor(
  compute: Executor,
  node: string,
  addresses: Record<string, string | undefined>,
): Promise<Resource[]> {
  const { himn, networks } = await computeNetworking(compute, node, addresses)
  return dom0RouteResources({ via: himn.ip, networks: networks.map((n) => n.cidr) })
}

/** The compute VM's forwarding, NAT and noVNC port-forward resources. */
export async function computeNatFor(
  compute: Executor,
  node: string,
  addresses: Record<string, string | undefined>,
): Promise<Resource[]> {
  const { himn, networks } = await computeNetworking(compute, node, addresses)
  return computeNatResources({ himnDev: himn.dev, networks })
}

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  'xenserver.dom0-routes': {
    // dom0's resources, bound to dom0 (the engine plans them on a dry run and reports them on deploy)
    async resources(ctx) {
      const resources = await dom0RoutesFor(execOf(ctx), ctx.node, nodeAddressesOf(ctx))
      const d = nodeDataOf(ctx).dom0
      return onExecutor(await dom0Of(ctx), resources, d?.name ?? d?.xapiHost ?? `dom0 of ${ctx.node}`)
    },
  },
  'xenserver.compute-nat': {
    // On the compute VM itself: the engine converges these (a dry run is their plan).
    resources: (ctx) => computeNatFor(execOf(ctx), ctx.node, nodeAddressesOf(ctx)),
  },
}
