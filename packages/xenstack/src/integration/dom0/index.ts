/**
 * Dom0 preparation (issue 9.7) and dom0 plugins (issue 9.6). Dom0 is not the task's node: each native reaches it
 * with `dom0Of(ctx)` (ssh over the HIMN from the compute VM) and converges its resources through `converge`, which
 * only plans on a dry run. The pool (default SR, hosts, published dom0 identities) comes from XAPI.
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import type { Executor } from '../../node/index.js'
import { openstackReleaseOf } from '../compute/release.js'
import { computeVmOf, xapiOf } from '../context.js'
import { dom0Of } from '../dom0-access.js'
import { converge } from './converge.js'
import { dom0PluginSourceOf, installDom0Plugins } from './plugins.js'
import { hostOfVm, poolHosts, publishIdentity, publishedIdentity, type PoolHost } from './pool-hosts.js'
import { joinListedHosts } from './pool-join.js'
import { dom0PrepareResources } from './prepare.js'
import { dom0Identity, dom0KeyPair, trustResources } from './ssh-mesh.js'
import { srForHost } from './sr.js'

export * from './converge.js'
export * from './plugins.js'
export * from './pool-hosts.js'
export * from './pool-join.js'
export * from './prepare.js'
export * from './rotate-guest-logs.js'
export * from './ssh-mesh.js'
export * from './sr.js'

/** The XAPI host this compute node's dom0 is. */
export async function dom0HostOf(ctx: NativeTaskContext): Promise<{ self: PoolHost; hosts: PoolHost[] }> {
  const xapi = xapiOf(ctx)
  const vm = await computeVmOf(ctx, xapi)
  const ref = await hostOfVm(xapi, vm.ref, `node ${ctx.node}`)
  const hosts = await poolHosts(xapi)
  const self = hosts.find((h) => h.ref === ref)
  if (!self) throw new Error(`node ${ctx.node}: its VM runs on ${ref}, which is not a host of the pool`)
  return { self, hosts }
}

/**
 * This dom0's part of the pool's SSH mesh: its key pair, its public identity published on its host record (not with
 * `publish: false`), and the identities the other dom0s published trusted here. Every compute node runs it in `xenserver.dom0-prepare` and
 * again in `xenserver.dom0-plugins`, which waits for every compute node's dom0-prepare (cross-depends), so each
 * dom0 has seen all the others' identities by the end of one deploy.
 */
export async function joinDom0Mesh(
  ctx: NativeTaskContext,
  dom0: Executor,
  opts: { publish?: boolean } = {},
): Promise<ResourceChange[]> {
  const xapi = xapiOf(ctx)
  const { self, hosts } = await dom0HostOf(ctx)
  const how = { dryRun: ctx.dryRun, log: ctx.log }
  const changes: ResourceChange[] = []
  if (opts.publish !== false) {
    changes.push(...(await converge(dom0, [dom0KeyPair()], how)))
    const id = await dom0Identity(dom0)
    if (!ctx.dryRun && (await publishIdentity(xapi, self, id)))
      changes.push({ resource: `XAPI host ${self.name}: other_config:xenstack-dom0-ssh-*`, result: 'changed' })
  }
  const others = hosts
    .filter((h) => h.ref !== self.ref)
    .flatMap((h) => {
      const p = publishedIdentity(h)
      return p ? [{ name: h.name, address: h.address, ...p }] : []
    })
  changes.push(...(await converge(dom0, trustResources(others), how)))
  return changes
}

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  'xenserver.dom0-prepare': {
    async run(ctx) {
      const dom0 = await dom0Of(ctx)
      const xapi = xapiOf(ctx)
      const { self } = await dom0HostOf(ctx)
      const sr = await srForHost(xapi, self.ref, self.name)
      const resources = await dom0PrepareResources(dom0, { srUuid: sr.uuid })
      const changes = await converge(dom0, resources, { dryRun: ctx.dryRun, log: ctx.log })
      changes.push(...(await joinDom0Mesh(ctx, dom0)))
      changes.push(...(await joinListedHosts(ctx, xapi)))
      return changes
    },
  },
  'xenserver.dom0-plugins': {
    async run(ctx) {
      const dom0 = await dom0Of(ctx)
      // every compute node's dom0-prepare has published its dom0's identity by now (cross-depends): trust them
      const changes = await joinDom0Mesh(ctx, dom0, { publish: false })
      const source = dom0PluginSourceOf(ctx)
      if (!source) {
        ctx.log('xenserver.install_dom0_plugins is off: dom0 plugins are neither installed nor checked')
        return changes
      }
      const { self } = await dom0HostOf(ctx)
      const series = openstackReleaseOf(ctx).series
      changes.push(
        ...(await installDom0Plugins(dom0, xapiOf(ctx), self, source, series, {
          dryRun: ctx.dryRun,
          log: ctx.log,
          signal: ctx.signal,
        })),
      )
      return changes
    },
  },
}
