/**
 * Node access for deployments, from what the state store knows about each node (`NodeRecord.data`):
 *   - `ssh: { host, port?, user?, identityFile, knownHostsFile? }` (what the lab records) → node access's
 *     SshExecutor; host keys are verified against the known-hosts file (xenstack's own one by default), never
 *     trusted on first use here;
 *   - `local: true`, optionally `prefix: [argv…]` (e.g. nsenter into a namespace) → LocalExecutor.
 * Executors are opened on first use and kept for the deployment; `close()` ends them.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  FileKnownHostsStore,
  LocalExecutor,
  SshExecutor,
  apply,
  gatherFacts,
  plan,
  type Executor,
  type Resource,
} from '../node/index.js'
import type { NodeAccess, NodeExecutor, ResourceVerbs } from './ports.js'

export interface NodeRecordLike {
  name: string
  data: Record<string, any>
}

/** Node access's plan/apply as the engine's resource verbs. */
export const nodeResourceVerbs: ResourceVerbs = {
  plan: (exec, resources) => plan(exec as unknown as Executor, resources as Resource[]),
  apply: async (exec, resources) => {
    const r = await apply(exec as unknown as Executor, resources as Resource[])
    return { entries: r.entries, ok: r.ok }
  },
}

export class NodeAccessError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NodeAccessError'
  }
}

export function nodeAccessFromRecords(
  records: NodeRecordLike[],
  opts: { dataDir?: string } = {},
): NodeAccess & { close(): Promise<void> } {
  const byName = new Map(records.map((r) => [r.name, r]))
  const open = new Map<string, Promise<Executor>>()
  const connect = async (node: string): Promise<Executor> => {
    const rec = byName.get(node)
    if (!rec) throw new NodeAccessError(`node ${node} is not part of the environment`)
    const d = rec.data ?? {}
    if (d.ssh && typeof d.ssh === 'object') {
      const s = d.ssh as { host?: string; port?: number; user?: string; identityFile?: string; knownHostsFile?: string }
      if (!s.host || !s.identityFile)
        throw new NodeAccessError(
          `node ${node}: data.ssh needs "host" and "identityFile" (found ${Object.keys(s).join(', ')})`,
        )
      const knownHosts = s.knownHostsFile ?? (opts.dataDir ? join(opts.dataDir, 'known_hosts') : undefined)
      if (!knownHosts)
        throw new NodeAccessError(`node ${node}: data.ssh has no knownHostsFile and no data dir is known`)
      return new SshExecutor({
        host: s.host,
        port: s.port,
        username: s.user ?? 'root',
        privateKey: await readFile(s.identityFile),
        knownHosts: new FileKnownHostsStore(knownHosts),
        name: node,
      })
    }
    if (d.local === true) return new LocalExecutor({ name: node, prefix: Array.isArray(d.prefix) ? d.prefix : [] })
    throw new NodeAccessError(
      `node ${node} has no access configured: its data needs "ssh": {host, port, user, identityFile, knownHostsFile} or "local": true`,
    )
  }
  const executor = (node: string): Promise<NodeExecutor> => {
    let p = open.get(node)
    if (!p) {
      p = connect(node)
      p.catch(() => open.delete(node))
      open.set(node, p)
    }
    return p as unknown as Promise<NodeExecutor>
  }
  return {
    executor,
    facts: async (node) =>
      (await gatherFacts((await executor(node)) as unknown as Executor)) as unknown as Record<string, unknown>,
    resources: nodeResourceVerbs,
    close: async () => {
      const all = [...open.values()]
      open.clear()
      await Promise.all(all.map((p) => p.then((e) => e.close()).catch(() => {})))
    },
  }
}
