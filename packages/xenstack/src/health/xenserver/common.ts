/** Helpers the XenServer checks share: per-node fan-out naming every failed node, and "not as deployed" from plans. */
import { plan, type Executor, type Resource } from '../../node/index.js'
import type { NodeRecord } from '../../state/store.js'
import type { Evidence } from '../types.js'

/**
 * Runs `fn` for every node at once and returns each node's value once all have answered. A node whose `fn` threw is
 * an unexpected error (the step becomes `error`): thrown after all have answered, naming every failed node.
 */
export async function onEveryNode<T>(
  nodes: readonly NodeRecord[],
  fn: (n: NodeRecord) => Promise<T>,
): Promise<{ node: NodeRecord; value: T }[]> {
  const results = await Promise.all(
    nodes.map(async (node) => {
      try {
        return { node, value: await fn(node) }
      } catch (e) {
        return { node, error: e instanceof Error ? e : new Error(String(e)) }
      }
    }),
  )
  const failed = results.filter((r): r is { node: NodeRecord; error: Error } => 'error' in r)
  if (failed.length === 1) throw failed[0]!.error
  if (failed.length) throw new Error(failed.map((r) => `${r.node.name}: ${r.error.message}`).join('; '))
  return results as { node: NodeRecord; value: T }[]
}

export interface Drift {
  /**
   * Each resource not as the integration deploys it: its id (e.g. `iptables -t nat -A POSTROUTING -o eth0 -j
   * MASQUERADE`) and the first lines of what `plan` would change.
   */
  ids: string[]
  evidence: Evidence[]
}

/**
 * What differs from the integration's own resources on a host: `plan` changes nothing and says, per resource, what
 * it would change. Used both as a check and to explain why real traffic failed.
 */
export async function driftOf(exec: Executor, resources: readonly Resource[], label: string): Promise<Drift> {
  const entries = await plan(exec, resources)
  const pending = entries.filter((e) => !e.inSync || e.error)
  return {
    ids: pending.map((e) => {
      const what =
        e.error ??
        e.diff
          .filter((l) => l.trim())
          .slice(0, 3)
          .join('; ')
      return what ? `${e.id} (${what.length > 200 ? what.slice(0, 200) + '…' : what})` : e.id
    }),
    evidence: pending.length
      ? [
          {
            label: `${label}: not as deployed (${exec.host})`,
            value: pending.map((e) => ({ resource: e.id, ...(e.error ? { error: e.error } : { diff: e.diff }) })),
          },
        ]
      : [],
  }
}

export const ipOf = (address: string): string => address.split('/')[0]!
