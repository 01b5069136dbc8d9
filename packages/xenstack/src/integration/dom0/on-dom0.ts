/**
 * Resources bound to another node's executor. The engine converges a native task's `resources(ctx)` on the task's
 * own node (the compute VM) — planned on a dry run, applied on deploy, reported per resource — but dom0's resources
 * must run on dom0. `onExecutor(dom0, resources)` gives each resource a stand-in that runs its check and apply with
 * dom0's executor and facts, so dom0 changes appear in the engine's dry run and deploy report like any other.
 *
 * A stand-in inherits from its resource (same class for `instanceof`; its id names the node), and the context it passes on lists
 * both stand-ins and originals as changed, so resources that look at earlier changes (a service's `restartOn`, the
 * iptables save after rules) see them.
 */
import { gatherFacts, type Executor, type NodeContext, type Resource } from '../../node/index.js'

const originals = new WeakMap<object, Resource>()

/** `label` prefixes each id in reports (default: the executor's host). */
export function onExecutor(exec: Executor, resources: readonly Resource[], label = exec.host): Resource[] {
  const redirect = (ctx: NodeContext): NodeContext => {
    const changed = new Set<Resource>(ctx.changed)
    for (const r of ctx.changed) {
      const o = originals.get(r)
      if (o) changed.add(o)
    }
    return { exec, facts: () => gatherFacts(exec), log: ctx.log, changed, dryRun: ctx.dryRun }
  }
  return resources.map((r) => {
    const standIn = Object.create(r) as Resource & { check: Resource['check']; apply: Resource['apply'] }
    standIn.check = (ctx) => r.check(redirect(ctx))
    standIn.apply = (ctx, check) => r.apply(redirect(ctx), check)
    Object.defineProperty(standIn, 'id', { value: `${label}: ${r.id}`, enumerable: true })
    originals.set(standIn, r)
    return standIn
  })
}
