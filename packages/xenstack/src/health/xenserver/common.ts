/** Helpers the XenServer checks share: per-node fan-out with every finding kept, and "not as deployed" from plans. */
import { plan, type Executor, type Resource } from '../../node/index.js'
import type { NodeRecord } from '../../state/store.js'
import type { Evidence } from '../types.js'

/** Runs `fn` for every node at once; returns each node's result or error (none is lost to the first failure). */
export async function perNode<T>(
  nodes: readonly NodeRecord[],
  fn: (n: NodeRecord) => Promise<T>,
): Promise<{ node: NodeRecord; value?: T; error?: Error }[]> {
  return Promise.all(
    nodes.map(async (node) => {
      try {
        return { node, value: await fn(node) }
      } catch (e) {
        return { node, error: e instanceof Error ? e : new Error(String(e)) }
      }
    }),
  )
}

/** Rethrows the first per-node error (an unexpected one: the step becomes `error`), naming every failed node. */
export function throwErrors(results: { node: NodeRecord; error?: Error }[]): void {
  const bad = results.filter((r) => r.error)
  if (bad.length === 1) throw bad[0]!.error
  if (bad.length) throw new Error(bad.map((r) => `${r.node.name}: ${r.error!.message}`).join('; '))
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
