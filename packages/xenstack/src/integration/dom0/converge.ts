/**
 * Converging resources on a node other than the task's own (dom0, reached from the compute VM) inside a native
 * task's `run`: the engine only plans/applies `resources(ctx)` on the task's node, so dom0 work goes through here.
 * On a dry run this is node access's `plan` (nothing changes); otherwise `apply`, failing on the first failed
 * resource with the host and resource in the message.
 */
import type { ResourceChange } from '../../engine/types.js'
import { apply, plan, type Executor, type Resource } from '../../node/index.js'

export interface ConvergeOptions {
  dryRun?: boolean
  log?: (line: string) => void
}

export async function converge(
  exec: Executor,
  resources: readonly Resource[],
  opts: ConvergeOptions = {},
): Promise<ResourceChange[]> {
  if (opts.dryRun) {
    const entries = await plan(exec, resources, { log: opts.log })
    const bad = entries.find((e) => e.error)
    if (bad) throw new Error(`${exec.host}: ${bad.id}: ${bad.error}`)
    return entries.map((e) => ({
      resource: `${exec.host}: ${e.id}`,
      result: e.inSync ? 'unchanged' : 'changed',
      ...(e.diff.length ? { diff: e.diff.join('\n') } : {}),
    }))
  }
  const report = await apply(exec, resources, { log: opts.log })
  const failed = report.entries.find((e) => e.status === 'failed')
  if (failed) throw new Error(failed.error ?? `${exec.host}: ${failed.id} failed`)
  return report.entries.map((e) => ({
    resource: `${exec.host}: ${e.id}`,
    result: e.status === 'changed' ? 'changed' : 'unchanged',
    ...(e.diff.length ? { diff: e.diff.join('\n') } : {}),
  }))
}
