/**
 * Dom0 preparation (issue 9.7) and dom0 plugins (issue 9.6). Dom0 is not the task's node: each native reaches it
 * with `dom0Of(ctx)` (ssh over the HIMN from the compute VM) and converges its resources through `converge`, which
 * only plans on a dry run. The pool (default SR, hosts, published dom0 identities) comes from XAPI.
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import type { Executor } from '../../node/index.js'
import { openstackReleaseOf } from '../compute/release.js'
import { computeVmOf, nodeDataOf, xapiOf } from '../context.js'
import { dom0Of } from '../dom0-access.js'
import { converge } from './converge.js'
import { onExecutor } from './on-dom0.js'
import {
  REQUIRED_DOM0_PLUGIN_VERSION,
  checkDom0PluginVersion,
  dom0PluginResources,
  dom0PluginSourceOf,
  pluginFilesFrom,
} from './plugins.js'
import { hostOfVm, poolHosts, publishIdentity, publishedIdentity, type PoolHost } from './pool-hosts.js'
import { joinListedHosts } from './pool-join.js'
import { dom0PrepareResources } from './prepare.js'
import { dom0Identity, dom0KeyPair, trustResources } from './ssh-mesh.js'
import { srForHost } from './sr.js'

export * from './converge.js'
export * from './on-dom0.js'
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

/** Dom0's name in reports: the node record's dom0 name, else its XenServer host. */
function dom0Label(ctx: NativeTaskContext): string {
  const d = nodeDataOf(ctx)
  return d.dom0?.name ?? d.dom0?.xapiHost ?? `dom0 of ${ctx.node}`
}

/**
 * This area's native tasks, by handler name (`xenserver.<step>`). Their dom0 resources are returned from
 * `resources` bound to dom0 (`onExecutor`), so the engine plans them on a dry run and reports them on deploy; what
 * is not a resource (the mesh's exchange through XAPI, pool.join, the version check through host.call_plugin) is in
 * `run`, which a dry run skips.
 */
export const natives: Record<string, NativeTask> = {
  'xenserver.dom0-prepare': {
    async resources(ctx) {
      const dom0 = await dom0Of(ctx)
      const { self } = await dom0HostOf(ctx)
      const sr = await srForHost(xapiOf(ctx), self.ref, self.name)
      return onExecutor(dom0, await dom0PrepareResources(dom0, { srUuid: sr.uuid }), dom0Label(ctx))
    },
    async run(ctx) {
      const dom0 = await dom0Of(ctx)
      const changes = await joinDom0Mesh(ctx, dom0)
      changes.push(...(await joinListedHosts(ctx, xapiOf(ctx))))
      return changes
    },
  },
  'xenserver.dom0-plugins': {
    async resources(ctx) {
      const source = dom0PluginSourceOf(ctx)
      if (!source) return []
      const files = await pluginFilesFrom(source, ctx.signal)
      return onExecutor(await dom0Of(ctx), dom0PluginResources(files), dom0Label(ctx))
    },
    async run(ctx) {
      const dom0 = await dom0Of(ctx)
      // every compute node's dom0-prepare has published its dom0's identity by now (cross-depends): trust them
      const changes = await joinDom0Mesh(ctx, dom0, { publish: false })
      if (!dom0PluginSourceOf(ctx)) {
        ctx.log('xenserver.install_dom0_plugins is off: dom0 plugins are neither installed nor checked')
        return changes
      }
      // the plugin files are in place (resources come first): ask the release's version plugin through XAPI
      const { self } = await dom0HostOf(ctx)
      const series = openstackReleaseOf(ctx).series
      const found = await checkDom0PluginVersion(xapiOf(ctx), self, series)
      ctx.log(`${self.name}: ${REQUIRED_DOM0_PLUGIN_VERSION[series].plugin} reports ${found} (OpenStack ${series})`)
      return changes
    },
  },
}
