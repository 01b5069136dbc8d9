/**
 * Graph construction: a release's core graph plus the enabled plugins' deployment tasks, expanded per node.
 *
 * - Stages live on the sync node; groups (`type: group`) become `<group>_start`/`<group>_end` on each of their
 *   nodes, with their members between them (like Fuel's task-based chain `<id>_start` … `<id>_end`).
 * - Targets: `role`/`roles`/`tags` (`'*'`, names, `/regex/`), or `groups` (the nodes of those groups).
 *   `master` targets nothing (there is no Fuel master).
 * - `requires`/`required_for` resolve on the same node, else to the sync node; a reference to a group on
 *   another node means that group on every node (granular ordering of role groups). References to tasks on
 *   other nodes need `cross-depends` (policy `all`, or `any`: one success is enough) / `cross-depended-by`.
 * - Conditions in the restrictions language (non-strict, as Fuel's legacy task conditions), plus
 *   `changed(model:path)` against the previous deployment's models. A false condition keeps the task as
 *   `skipped` with the reason; its edges stay.
 * - Group strategies become limiters; group `fault_tolerance` becomes fault-tolerance groups.
 * - Every task gets a digest of its inputs (definition, settings it reads, facts it uses, node roles);
 *   on redeploy a task whose digest did not change is skipped unless `reexecute_on: [deploy_changes]`.
 * Dangling references, bad regexes, unknown task fields shapes and cycles are errors naming the task and source.
 */
import { createHash } from 'node:crypto'
import { Expression, type Models } from '@xenstack/restrictions'
import type { DeploymentTask } from '../plugins/graph.js'
import { GraphCycleError, topologicalOrder } from './scheduler.js'
import { YaqlError, YaqlExpression, yaqlTruthy } from './yaql.js'
import { SYNC_NODE, type ExecutionPlan, type FaultToleranceGroup, type Limiter, type PlanTask } from './types.js'

/** One entry of a deployment_tasks.yaml (Fuel's fields): the plugin framework's type, read by the engine too. */
export type TaskDefinition = DeploymentTask

export interface SourcedTask {
  task: TaskDefinition
  /** `release` or the plugin's name. */
  source: string
  /** File (and line when known) for error messages. */
  location?: string
}

export interface GraphNode {
  name: string
  roles: string[]
  /** Facts (OS family, …) native tasks may use; only the ones a task declares enter its digest. */
  facts?: Record<string, unknown>
}

export interface BuildOptions {
  tasks: SourcedTask[]
  nodes: GraphNode[]
  /** Models for conditions: settings, cluster, version, networking_parameters, … */
  models?: Models
  /** Learned mean durations by task id (ms). */
  durations?: Map<string, number>
  /** The previous successful deployment: digests by `<node>/<task>` and its models (for `changed()`). */
  previous?: { digests: Map<string, string>; models?: Models; /** models went through sealSecrets */ sealed?: boolean }
  /** Redeploy everything regardless of digests. */
  force?: boolean
}

export interface BuildResult {
  plan: ExecutionPlan
  /** Things worth knowing that are not errors (dropped cross-node `requires`, `master` targets, …). */
  notes: string[]
}

export class GraphBuildError extends Error {
  constructor(readonly issues: string[]) {
    super(`the deployment graph is invalid:\n${issues.map((i) => `  - ${i}`).join('\n')}`)
    this.name = 'GraphBuildError'
  }
}

const DEFAULT_EXPECTED_MS: Record<string, number> = {
  shell: 10_000,
  puppet: 60_000,
  upload_file: 1_000,
  copy_files: 1_000,
  sync: 5_000,
  reboot: 120_000,
  native: 5_000,
}
// astute's defaults (seconds)
const DEFAULT_TIMEOUT_S: Record<string, number> = {
  shell: 300,
  puppet: 5400,
  upload_file: 60,
  copy_files: 60,
  sync: 300,
  reboot: 900,
}
const DEFAULT_RETRIES: Record<string, number> = { shell: 2, puppet: 2, upload_file: 3, sync: 10 }

const list = (v: unknown): string[] =>
  v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)]
const isRegex = (s: string) => s.length >= 2 && s.startsWith('/') && s.endsWith('/')

interface Ref {
  /** "this finished" endpoints */
  ends: number[]
  /** "this may start" endpoints */
  starts: number[]
}

export function buildExecutionPlan(opts: BuildOptions): BuildResult {
  const issues: string[] = []
  const notes: string[] = []
  const where = (s: SourcedTask) => `task ${s.task.id} (${s.location ?? s.source})`
  // Definitions by id; a later definition (a plugin) overrides an earlier one (the release).
  const defs = new Map<string, SourcedTask>()
  for (const s of opts.tasks) {
    if (!s.task || typeof s.task.id !== 'string' || typeof s.task.type !== 'string') {
      issues.push(`${s.location ?? s.source}: a task needs a string "id" and "type", found ${JSON.stringify(s.task)}`)
      continue
    }
    if (defs.has(s.task.id) && defs.get(s.task.id)?.source !== s.source)
      notes.push(`${where(s)} overrides the definition from ${defs.get(s.task.id)?.source}`)
    defs.set(s.task.id, s)
  }
  const regexCache = new Map<string, RegExp | null>()
  const regexOf = (s: string, ctx: string): RegExp | null => {
    if (!regexCache.has(s)) {
      try {
        regexCache.set(s, new RegExp(`^(?:${s.slice(1, -1)})$`))
      } catch (e) {
        issues.push(`${ctx}: the regex ${s} does not compile: ${(e as Error).message}`)
        regexCache.set(s, null)
      }
    }
    return regexCache.get(s) ?? null
  }
  const matches = (pattern: string, name: string, ctx: string) =>
    pattern === '*' || (isRegex(pattern) ? !!regexOf(pattern, ctx)?.test(name) : pattern === name)

  const nodes = opts.nodes
  const nodeByName = new Map(nodes.map((n) => [n.name, n]))
  const nodesWithRole = (patterns: string[], ctx: string): GraphNode[] =>
    nodes.filter((n) => patterns.some((p) => p !== 'master' && n.roles.some((r) => matches(p, r, ctx))))

  const stages = [...defs.values()].filter((s) => s.task.type === 'stage')
  const groups = [...defs.values()].filter((s) => s.task.type === 'group')
  const regular = [...defs.values()].filter((s) => s.task.type !== 'stage' && s.task.type !== 'group')
  const groupNodes = new Map<string, GraphNode[]>()
  for (const g of groups) groupNodes.set(g.task.id, nodesWithRole(list(g.task.roles ?? g.task.role), where(g)))
  const groupMembers = new Map<string, Set<string>>() // group id -> member task ids (from group's `tasks`)
  for (const g of groups) groupMembers.set(g.task.id, new Set(list(g.task.tasks)))

  // --- instances
  const tasks: PlanTask[] = []
  const index = new Map<string, number>() // key -> index
  const instancesOf = new Map<string, number[]>() // task id -> instance indices (for group: the _end)
  const startsOf = new Map<string, number[]>() // group id -> _start indices
  const nodeOfInstance: string[] = []
  // Plan tasks are built with one fixed shape (spreads made 40,000 objects slow to create).
  const add = (
    s: SourcedTask,
    key: string,
    id: string,
    node: string,
    type: string,
    extra: Partial<PlanTask> = {},
  ): number => {
    const i = tasks.length
    tasks.push({
      key,
      id,
      node,
      type,
      parameters: s.task.parameters ?? {},
      skipReason: extra.skipReason,
      requires: [],
      requiresAny: [],
      syncPoint: extra.syncPoint ?? false,
      limiters: [],
      expectedMs: extra.expectedMs ?? 0,
      timeoutMs: extra.timeoutMs,
      retries: extra.retries ?? 0,
      retryIntervalMs: extra.retryIntervalMs ?? 0,
      source: s.source,
      digest: undefined,
      reexecuteOnDeployChanges: extra.reexecuteOnDeployChanges,
    })
    index.set(key, i)
    nodeOfInstance.push(node)
    return i
  }
  for (const s of stages) {
    const i = add(s, `${SYNC_NODE}/${s.task.id}`, s.task.id, SYNC_NODE, 'stage', { syncPoint: true })
    instancesOf.set(s.task.id, [i])
    startsOf.set(s.task.id, [i])
  }
  for (const g of groups) {
    const ends: number[] = []
    const starts: number[] = []
    for (const n of groupNodes.get(g.task.id) ?? []) {
      starts.push(add(g, `${n.name}/${g.task.id}_start`, `${g.task.id}_start`, n.name, 'group_start'))
      ends.push(add(g, `${n.name}/${g.task.id}_end`, `${g.task.id}_end`, n.name, 'group_end'))
    }
    instancesOf.set(g.task.id, ends)
    startsOf.set(g.task.id, starts)
  }
  // Which groups a regular task belongs to (its `groups`, or a group's `tasks` naming it).
  const memberGroups = new Map<string, string[]>()
  for (const s of regular) {
    const gs = new Set<string>()
    for (const gp of list(s.task.groups)) {
      let found = false
      for (const g of groups)
        if (matches(gp, g.task.id, where(s))) {
          gs.add(g.task.id)
          found = true
        }
      if (!found && !isRegex(gp)) issues.push(`${where(s)}: groups names ${JSON.stringify(gp)}, which is not a group`)
    }
    for (const [gid, members] of groupMembers) if (members.has(s.task.id)) gs.add(gid)
    memberGroups.set(s.task.id, [...gs])
  }
  for (const [gid, members] of groupMembers)
    for (const m of members)
      if (!defs.has(m))
        issues.push(`${where(defs.get(gid) as SourcedTask)}: tasks names unknown task ${JSON.stringify(m)}`)

  for (const s of regular) {
    const t = s.task
    const gs = memberGroups.get(t.id) ?? []
    let targets: GraphNode[]
    const roleSpec = list(t.roles ?? t.role ?? t.tags)
    if (gs.length) {
      const set = new Set(gs.flatMap((g) => (groupNodes.get(g) ?? []).map((n) => n.name)))
      targets = nodes.filter((n) => set.has(n.name))
    } else if (roleSpec.length) {
      if (roleSpec.includes('master'))
        notes.push(`${where(s)}: role "master" targets nothing (there is no Fuel master)`)
      targets = nodesWithRole(roleSpec, where(s))
    } else targets = []
    const ids: number[] = []
    if (targets.length === 0 && !gs.length && !roleSpec.length) {
      // Untargeted: kept on the sync node so its edges hold, never run.
      ids.push(
        add(s, `${SYNC_NODE}/${t.id}`, t.id, SYNC_NODE, t.type, {
          skipReason: 'no role, tag or group targets this task',
          syncPoint: true,
        }),
      )
    }
    const params = t.parameters ?? {}
    const expectedMs = opts.durations?.get(t.id) ?? DEFAULT_EXPECTED_MS[t.type] ?? 5_000
    const retries = typeof params.retries === 'number' ? params.retries : (DEFAULT_RETRIES[t.type] ?? 0)
    const retryIntervalMs = (typeof params.interval === 'number' ? params.interval : 2) * 1000
    const reexecuteOnDeployChanges = list(t.reexecute_on).includes('deploy_changes') || undefined
    for (const n of targets) {
      const timeoutS =
        typeof params.timeout === 'number'
          ? params.timeout
          : typeof t.timeout === 'number'
            ? t.timeout
            : DEFAULT_TIMEOUT_S[t.type]
      ids.push(
        add(s, `${n.name}/${t.id}`, t.id, n.name, t.type, {
          expectedMs,
          timeoutMs: timeoutS !== undefined ? timeoutS * 1000 : undefined,
          retries,
          retryIntervalMs,
          reexecuteOnDeployChanges,
        }),
      )
    }
    instancesOf.set(t.id, ids)
    startsOf.set(t.id, ids)
  }

  // --- edges
  // Edges are deduplicated by scanning the (short) predecessor list; a task with many predecessors (a stage
  // every node reports to) gets a Set. Fewer allocations than a Set per task or per edge.
  const bigPreds = new Map<number, Set<number>>()
  const edge = (from: number, to: number) => {
    if (from === to) return
    const req = tasks[to].requires
    if (req.length < 16) {
      if (req.includes(from)) return
    } else {
      let set = bigPreds.get(to)
      if (!set) bigPreds.set(to, (set = new Set(req)))
      if (set.has(from)) return
      set.add(from)
    }
    req.push(from)
  }
  const isGroup = (id: string) => defs.get(id)?.task.type === 'group'
  const isStage = (id: string) => defs.get(id)?.task.type === 'stage'
  /** Endpoints of reference `name` as seen from node `node`. */
  const resolve = (name: string, node: string, ctx: string): Ref[] => {
    const ids = isRegex(name) ? [...defs.keys()].filter((id) => matches(name, id, ctx)) : [name]
    if (!isRegex(name) && !defs.has(name)) {
      issues.push(`${ctx}: references unknown task ${JSON.stringify(name)}`)
      return []
    }
    const out: Ref[] = []
    for (const id of ids) {
      const inst = instancesOf.get(id) ?? []
      const starts = startsOf.get(id) ?? []
      if (isStage(id)) out.push({ ends: inst, starts })
      else if (isGroup(id)) {
        const end = index.get(`${node}/${id}_end`)
        const start = index.get(`${node}/${id}_start`)
        if (end !== undefined && start !== undefined) out.push({ ends: [end], starts: [start] })
        else out.push({ ends: inst, starts }) // the group on every node
      } else {
        const here = index.get(`${node}/${id}`) ?? index.get(`${SYNC_NODE}/${id}`)
        if (here !== undefined) out.push({ ends: [here], starts: [here] })
        else if (inst.length && node !== SYNC_NODE)
          notes.push(
            `${ctx}: "${id}" is not on node ${node}; a same-node reference to it is dropped (use cross-depends)`,
          )
      }
    }
    return out
  }
  const relate = (s: SourcedTask, self: number[], selfStarts: number[]) => {
    const t = s.task
    const ctx = where(s)
    const requires = list(t.requires)
    const requiredFor = list(t.required_for)
    if (typeof t.stage === 'string') requiredFor.push(t.stage.split('/')[0])
    for (let k = 0; k < self.length; k++) {
      const node = nodeOfInstance[self[k]]
      for (const r of requires)
        for (const ref of resolve(r, node, ctx)) for (const p of ref.ends) edge(p, selfStarts[k])
      for (const r of requiredFor) for (const ref of resolve(r, node, ctx)) for (const q of ref.starts) edge(self[k], q)
    }
  }
  // Candidates do not depend on the asking node unless the spec says `self`: computed once per spec then.
  const candidateCache = new Map<Record<string, unknown>, number[]>()
  for (const s of stages) relate(s, instancesOf.get(s.task.id) ?? [], startsOf.get(s.task.id) ?? [])
  for (const g of groups) {
    const ends = instancesOf.get(g.task.id) ?? []
    const starts = startsOf.get(g.task.id) ?? []
    ends.forEach((e, k) => edge(starts[k], e))
    relate(g, ends, starts)
  }
  for (const s of regular) {
    const self = instancesOf.get(s.task.id) ?? []
    relate(s, self, self)
    for (const i of self) {
      const node = nodeOfInstance[i]
      for (const g of memberGroups.get(s.task.id) ?? []) {
        const st = index.get(`${node}/${g}_start`)
        const en = index.get(`${node}/${g}_end`)
        if (st !== undefined && en !== undefined) {
          edge(st, i)
          edge(i, en)
        }
      }
    }
    crossEdges(s, self)
  }

  function crossCandidates(spec: Record<string, unknown>, node: string, ctx: string): number[] {
    const name = String(spec.name ?? '')
    const roleSpec = list(spec.role ?? spec.roles ?? '*')
    const cacheable = !roleSpec.includes('self')
    const cached = cacheable ? candidateCache.get(spec) : undefined
    if (cached) return cached
    const out = crossCandidatesUncached(name, roleSpec, node, ctx)
    if (cacheable) candidateCache.set(spec, out)
    return out
  }
  function crossCandidatesUncached(name: string, roleSpec: string[], node: string, ctx: string): number[] {
    const ids = isRegex(name) ? [...defs.keys()].filter((id) => matches(name, id, ctx)) : [name]
    if (!isRegex(name) && !defs.has(name)) {
      issues.push(`${ctx}: cross-depends names unknown task ${JSON.stringify(name)}`)
      return []
    }
    const out: number[] = []
    for (const id of ids)
      for (const i of instancesOf.get(id) ?? []) {
        const n = nodeOfInstance[i]
        const gn = nodeByName.get(n)
        const ok = roleSpec.some((r) =>
          r === 'self' ? n === node : gn ? gn.roles.some((role) => matches(r, role, ctx)) : n === SYNC_NODE,
        )
        if (ok) out.push(i)
      }
    return out
  }
  function crossEdges(s: SourcedTask, self: number[]) {
    const ctx = where(s)
    for (const [field, dir] of [
      ['cross-depends', 'in'],
      ['cross-depended-by', 'out'],
    ] as const) {
      const v = s.task[field]
      if (v === undefined) continue
      if (!Array.isArray(v)) {
        issues.push(`${ctx}: ${field} must be a list of {name, role, policy} (yaql_exp is not supported)`)
        continue
      }
      for (const spec of v as Record<string, unknown>[]) {
        const policy = spec.policy ?? 'all'
        if (policy !== 'all' && policy !== 'any') {
          issues.push(`${ctx}: ${field} policy must be "all" or "any", found ${JSON.stringify(policy)}`)
          continue
        }
        for (const i of self) {
          const cands = crossCandidates(spec, nodeOfInstance[i], ctx).filter((c) => c !== i)
          if (dir === 'out') for (const c of cands) edge(i, c)
          else if (policy === 'all' || cands.length <= 1) for (const c of cands) edge(c, i)
          else tasks[i].requiresAny.push(cands)
        }
      }
    }
  }

  // --- limiters (strategies) and fault tolerance
  const limiters: Limiter[] = []
  const faultTolerance: FaultToleranceGroup[] = []
  const strategyCapacity = (s: SourcedTask): number | undefined => {
    const st = (s.task.parameters?.strategy ?? undefined) as { type?: string; amount?: unknown } | undefined
    if (!st) return undefined
    if (st.type === 'one_by_one') return 1
    if (st.type === 'parallel') {
      if (st.amount === undefined || st.amount === 0) return undefined
      if (typeof st.amount !== 'number' || st.amount < 0) {
        issues.push(
          `${where(s)}: parameters.strategy.amount must be a non-negative integer, found ${JSON.stringify(st.amount)}`,
        )
        return undefined
      }
      return st.amount
    }
    issues.push(
      `${where(s)}: parameters.strategy.type must be one_by_one or parallel, found ${JSON.stringify(st.type)}`,
    )
    return undefined
  }
  for (const g of groups) {
    const cap = strategyCapacity(g)
    if (cap !== undefined) {
      const l = limiters.length
      limiters.push({ name: `group ${g.task.id}`, capacity: cap })
      const inGroup = new Set((groupNodes.get(g.task.id) ?? []).map((n) => n.name))
      for (const s of regular)
        if ((memberGroups.get(s.task.id) ?? []).includes(g.task.id))
          for (const i of instancesOf.get(s.task.id) ?? [])
            if (inGroup.has(nodeOfInstance[i])) tasks[i].limiters.push(l)
    }
    const gn = (groupNodes.get(g.task.id) ?? []).map((n) => n.name)
    const ft = g.task.fault_tolerance
    let tolerance = Infinity
    if (ft !== undefined && ft !== null) {
      const m = typeof ft === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(ft) : null
      if (typeof ft === 'number' && Number.isInteger(ft)) tolerance = ft < 0 ? Math.max(0, gn.length + ft) : ft
      else if (m) tolerance = Math.floor((gn.length * Number(m[1])) / 100)
      else if (typeof ft === 'string' && /^-?\d+$/.test(ft.trim())) {
        const v = Number(ft)
        tolerance = v < 0 ? Math.max(0, gn.length + v) : v
      } else issues.push(`${where(g)}: fault_tolerance must be an integer or "N%", found ${JSON.stringify(ft)}`)
    }
    // Only a declared tolerance makes a group's failed nodes non-critical (astute: nodes in no group are critical);
    // a group without one never brakes, and its failed nodes fail the deployment.
    if (gn.length && ft !== undefined && ft !== null) faultTolerance.push({ name: g.task.id, nodes: gn, tolerance })
  }
  for (const s of regular) {
    const cap = strategyCapacity(s)
    if (cap === undefined) continue
    const l = limiters.length
    limiters.push({ name: `task ${s.task.id}`, capacity: cap })
    for (const i of instancesOf.get(s.task.id) ?? []) tasks[i].limiters.push(l)
  }

  // --- conditions, digests, redeploy
  const models = opts.models ?? {}
  let sealedModels: Models | undefined
  for (const s of regular) {
    const t = s.task
    const cond = t.condition
    let expr: Expression | undefined
    let condText: string | undefined
    let condValue = true
    let condSkip: string | undefined
    let yaql: YaqlExpression | undefined
    if (cond !== undefined && cond !== null) {
      if (typeof cond !== 'string') {
        // Fuel's `{yaql_exp: …}`: parsed here, so an unsupported construct fails construction naming the task.
        const source = (cond as { yaql_exp?: unknown }).yaql_exp
        try {
          if (typeof source !== 'string' || Object.keys(cond as object).length !== 1)
            throw new YaqlError('a condition must be a string or {yaql_exp: <string>}')
          yaql = new YaqlExpression(source)
          condText = `yaql: ${source}`
          condValue = Boolean(
            yaqlTruthy(
              yaql.evaluate({
                data: opts.previous?.sealed ? (sealedModels ??= sealSecrets(models)) : models,
                old: opts.previous?.models,
              }),
            ),
          )
        } catch (e) {
          issues.push(`${where(s)}: condition ${JSON.stringify(cond)}: ${(e as Error).message}`)
        }
      } else {
        try {
          condText = cond
          const rewritten = rewriteChanged(
            cond,
            opts.previous?.sealed ? (sealedModels ??= sealSecrets(models)) : models,
            opts.previous?.models,
          )
          expr = new Expression(rewritten, false)
          condValue = expr.evaluate(models)
        } catch (e) {
          issues.push(`${where(s)}: condition ${JSON.stringify(cond)}: ${(e as Error).message}`)
        }
      }
    }
    const data = t.type === 'upload_file' ? (t.parameters?.data as { yaql_exp?: unknown } | undefined) : undefined
    if (data && typeof data === 'object' && 'yaql_exp' in data) {
      // Evaluated per node when the task runs (tasks.ts); parsed here so an unsupported construct fails construction.
      try {
        if (typeof data.yaql_exp !== 'string') throw new YaqlError('yaql_exp must be a string')
        new YaqlExpression(data.yaql_exp)
      } catch (e) {
        issues.push(`${where(s)}: parameters.data ${JSON.stringify(data)}: ${(e as Error).message}`)
      }
    }
    const reads: Record<string, unknown> = {}
    for (const p of [...(expr?.paths() ?? []), ...(yaql?.paths() ?? []), ...list(t.parameters?.reads)])
      reads[p] = readPath(models, p)
    const factNames = list(t.parameters?.facts)
    let defDigest: string | undefined
    const nodeDigests = new Map<string, string>()
    for (const i of instancesOf.get(t.id) ?? []) {
      const pt = tasks[i]
      if (pt.node === SYNC_NODE) continue
      const node = nodeByName.get(pt.node) as GraphNode
      if (condSkip) pt.skipReason = condSkip
      else if (!condValue) pt.skipReason = `condition "${condText}" is false`
      const facts: Record<string, unknown> = {}
      for (const f of factNames) facts[f] = node.facts?.[f] ?? null
      // The definition's canonical form is computed once; the per-node part is small.
      defDigest ??= digestOf({ definition: t, source: s.source, reads })
      const nodePart = factNames.length ? JSON.stringify([node.roles, facts]) : node.roles.join('\n')
      let d = nodeDigests.get(nodePart)
      if (!d) nodeDigests.set(nodePart, (d = digestOf([defDigest, node.roles, facts])))
      pt.digest = d
      if (!pt.skipReason && opts.previous && !opts.force && !pt.reexecuteOnDeployChanges) {
        if (opts.previous.digests.get(pt.key) === pt.digest)
          pt.skipReason = 'unchanged since the last deployment (same definition, settings read and facts used)'
      }
    }
  }

  const plan: ExecutionPlan = { nodes: nodes.map((n) => n.name), tasks, limiters, faultTolerance }
  if (issues.length === 0) {
    try {
      topologicalOrder(plan)
    } catch (e) {
      if (e instanceof GraphCycleError) issues.push(e.message)
      else throw e
    }
  }
  if (issues.length) throw new GraphBuildError([...new Set(issues)])
  return { plan, notes: [...new Set(notes)] }
}

/** `changed(model:path)` becomes `true`/`false`: does the value differ from the previous deployment's? */
function rewriteChanged(cond: string, models: Models, previous: Models | undefined): string {
  return cond.replace(/changed\(\s*([\w]*:?[\w.-]+)\s*\)/g, (_m, path: string) => {
    if (!previous) return 'true'
    return JSON.stringify(readPath(models, path)) !== JSON.stringify(readPath(previous, path)) ? 'true' : 'false'
  })
}

function readPath(models: Models, path: string): unknown {
  const [model, rest] = path.includes(':') ? path.split(':', 2) : ['default', path]
  let cur: unknown = models[model]
  for (const k of rest.split('.')) {
    if (cur === null || typeof cur !== 'object') return null
    cur = (cur as Record<string, unknown>)[k]
  }
  return cur ?? null
}

/**
 * A copy of the models where every password setting's value (`{type: 'password', value}`) is replaced by
 * `sha256:<hex>`: comparable across deployments, never the secret itself.
 */
export function sealSecrets<T>(v: T): T {
  if (Array.isArray(v)) return v.map(sealSecrets) as T
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(o))
      out[k] =
        k === 'value' && o.type === 'password' && typeof x === 'string'
          ? `sha256:${createHash('sha256').update(x).digest('hex')}`
          : sealSecrets(x)
    return out as T
  }
  return v
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical)
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    )
  return v
}

export function digestOf(v: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(v)))
    .digest('hex')
    .slice(0, 32)
}
