/**
 * Role assignment rules from roles metadata (release `roles_metadata`, plugin `node_roles.yaml`), shared by the
 * UI (nodes page) and the server/engine (before a deployment):
 *   - `conflicts: [roles]` or `"*"`: roles that may not sit on the same node (either side declaring it is enough);
 *   - `limits {min, max, recommended, overrides: [{condition, min?, max?, recommended?, message?}]}`: node counts;
 *     an override whose condition holds replaces the values it sets (later overrides win), and its message is used;
 *     a value written as a string is an expression evaluated against the models;
 *   - `restrictions`: a role whose `disable` restriction holds may not be assigned.
 * Below `recommended` is a warning; everything else is an error. Every problem is returned.
 */
import { truthy } from './expression.js'
import { checkRestrictions, compile } from './restrictions.js'
import type { Models } from './expression.js'

export interface RoleMeta {
  name?: string
  conflicts?: string[] | '*'
  limits?: {
    min?: number | string
    max?: number | string
    recommended?: number | string
    condition?: string
    overrides?: {
      condition: string
      min?: number | string
      max?: number | string
      recommended?: number | string
      message?: string
    }[]
  }
  restrictions?: unknown
}

export interface RoleProblem {
  severity: 'error' | 'warning'
  kind: 'unknown' | 'conflict' | 'min' | 'max' | 'recommended' | 'restriction'
  role: string
  node?: string
  message: string
}

function limitValue(v: number | string | undefined, models: Models): number | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'number') return v
  const n = Number(v)
  if (!Number.isNaN(n)) return n
  const value = compile(v).value(models)
  if (typeof value === 'number') return value
  if (typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value)
  return truthy(value) ? 1 : 0
}

/** Checks nodes' roles against the roles metadata; returns every problem (errors and warnings). */
export function checkRoleAssignment(
  roles: Record<string, RoleMeta>,
  nodes: { name: string; roles: string[] }[],
  models: Models = {},
): RoleProblem[] {
  const problems: RoleProblem[] = []
  const label = (r: string) => roles[r]?.name ?? r
  for (const n of nodes) {
    for (const r of n.roles) {
      if (!roles[r])
        problems.push({
          severity: 'error',
          kind: 'unknown',
          role: r,
          node: n.name,
          message: `Node ${n.name}: unknown role "${r}"`,
        })
    }
    const rs = [...new Set(n.roles)].filter((r) => roles[r])
    for (let i = 0; i < rs.length; i++) {
      for (let j = i + 1; j < rs.length; j++) {
        const [a, b] = [rs[i], rs[j]]
        const conflicts = (x: string, y: string) => {
          const c = roles[x].conflicts
          return c === '*' || (Array.isArray(c) && c.includes(y))
        }
        if (conflicts(a, b) || conflicts(b, a)) {
          problems.push({
            severity: 'error',
            kind: 'conflict',
            role: a,
            node: n.name,
            message: `Node ${n.name}: role ${label(a)} cannot be combined with ${label(b)}`,
          })
        }
      }
    }
  }
  const used = new Set(nodes.flatMap((n) => n.roles))
  for (const [id, meta] of Object.entries(roles)) {
    const count = nodes.filter((n) => n.roles.includes(id)).length
    const restricted = checkRestrictions(meta.restrictions, models, 'disable')
    if (restricted.result) {
      // An unavailable role: assigning it is the error; its limits do not apply (as in fuel-ui).
      if (used.has(id)) {
        problems.push({
          severity: 'error',
          kind: 'restriction',
          role: id,
          message: `Role ${label(id)} cannot be assigned: ${restricted.messages.join(' ') || restricted.matched.map((x) => x.condition).join(', ')}`,
        })
      }
      continue
    }
    const limits = meta.limits
    if (!limits || (limits.condition && !compile(limits.condition).evaluate(models))) continue
    let { min, max, recommended } = limits
    const messages: { min?: string; max?: string; recommended?: string } = {}
    for (const o of limits.overrides ?? []) {
      if (!compile(o.condition).evaluate(models)) continue
      // An override's message belongs to the limits it sets.
      if (o.min !== undefined) [min, messages.min] = [o.min, o.message]
      if (o.max !== undefined) [max, messages.max] = [o.max, o.message]
      if (o.recommended !== undefined) [recommended, messages.recommended] = [o.recommended, o.message]
    }
    const [mn, mx, rec] = [limitValue(min, models), limitValue(max, models), limitValue(recommended, models)]
    if (mn !== undefined && count < mn) {
      problems.push({
        severity: 'error',
        kind: 'min',
        role: id,
        message:
          messages.min ?? `At least ${mn} ${label(id)} node${mn === 1 ? ' is' : 's are'} required, found ${count}`,
      })
    } else if (mx !== undefined && count > mx) {
      problems.push({
        severity: 'error',
        kind: 'max',
        role: id,
        message: messages.max ?? `At most ${mx} ${label(id)} node${mx === 1 ? ' is' : 's are'} allowed, found ${count}`,
      })
    } else if (rec !== undefined && count > 0 && count < rec) {
      problems.push({
        severity: 'warning',
        kind: 'recommended',
        role: id,
        message: messages.recommended ?? `${rec} ${label(id)} nodes are recommended, found ${count}`,
      })
    }
  }
  return problems
}
