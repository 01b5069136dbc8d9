/**
 * Role assignment checks for the CLI (`env nodes assign`, `env apply`), the same rules as the server's nodes page:
 * the roles of the environment's release and enabled plugins, checked with @xenstack/restrictions'
 * checkRoleAssignment. While nodes are being assigned only per-node problems count (unknown role, conflicting
 * roles on one node, a role whose `disable` restriction holds); node counts (min/max) are for a deployment.
 */
import { checkRoleAssignment, type RoleMeta } from '@xenstack/restrictions'
import { environmentModels, resolveRelease } from '../plugins/environment.js'
import type { StateStore } from '../state/store.js'

/** The roles an environment's nodes may have: its release's, then its enabled plugins' `node_roles.yaml`. */
export function environmentRoles(store: StateStore, env: string): Record<string, RoleMeta> {
  const e = store.environments.require(env)
  const roles: Record<string, RoleMeta> = { ...resolveRelease(store, e.release).roles }
  for (const p of e.plugins.filter((x) => x.enabled))
    Object.assign(roles, store.plugins.get(p.name, p.version)?.data.nodeRoles ?? {})
  return roles
}

/** Per-node role problems of `nodes` (the environment's nodes as they would be), one message each. */
export function roleProblems(
  store: StateStore,
  env: string,
  nodes: { name: string; roles: string[] }[],
): { node?: string; message: string }[] {
  return checkRoleAssignment(environmentRoles(store, env), nodes, environmentModels(store, env))
    .filter(
      (p) => p.severity === 'error' && (p.kind === 'unknown' || p.kind === 'conflict' || p.kind === 'restriction'),
    )
    .map((p) => ({ node: p.node, message: p.message }))
}
