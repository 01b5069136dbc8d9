/**
 * Graph checks run when a plugin is built, checked or installed — what fuel-plugin-builder never did and nailgun
 * only found at deploy time: cycles (printed), references to unknown tasks (merged with the release's core
 * graph), regexes that do not compile, unknown stages, and task types without their required parameters.
 *
 * Edges follow nailgun's GraphSolver: `requires: [R]` R→T, `required_for: [R]` T→R, `groups: [G]` T→G,
 * group G with `tasks: [T]` T→G. Names written `/regex/` match every task id the regex matches.
 */
import type { Issue, YamlSource } from './source.js'

export interface DeploymentTask {
  id: string
  type: string
  version?: string
  role?: string | string[]
  roles?: string | string[]
  groups?: string | string[]
  tags?: string | string[]
  requires?: string[]
  required_for?: string[]
  tasks?: string[]
  stage?: string
  condition?: unknown
  parameters?: Record<string, unknown>
  'cross-depends'?: unknown
  'cross-depended-by'?: unknown
  reexecute_on?: string[]
  fault_tolerance?: number | string
  timeout?: number
  [key: string]: unknown
}

/** A task together with where it was defined (for messages with file/line/column). */
export interface LocatedTask {
  task: DeploymentTask
  /** `release` or the plugin's name. */
  owner: string
  source?: YamlSource
  index: number
}

/** Parameters each task type must have (astute cannot run the task without them). */
export const REQUIRED_PARAMETERS: Record<string, string[]> = {
  puppet: ['puppet_manifest', 'puppet_modules'],
  shell: ['cmd'],
  sync: ['src', 'dst'],
  upload_file: ['path', 'data'],
  copy_files: ['files'],
  native: ['handler'],
}

const STAGE_FIELD = /^(pre_deployment|deploy|post_deployment)(\/[-+]?\d+(\.\d+)?)?$/

export const isRegexName = (s: string): boolean => s.length >= 2 && s.startsWith('/') && s.endsWith('/')

function compileRegex(s: string): RegExp | Error {
  try {
    return new RegExp(s.slice(1, -1))
  } catch (e) {
    return e as Error
  }
}

const asList = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x) => typeof x === 'string') : typeof v === 'string' ? [v] : []

function crossNames(v: unknown): { name: string; role?: unknown; i: number }[] {
  if (!Array.isArray(v)) return []
  return v.flatMap((d, i) =>
    d && typeof d === 'object' && typeof d.name === 'string' ? [{ name: d.name, role: d.role, i }] : [],
  )
}

function issueAt(
  t: LocatedTask,
  path: (string | number)[],
  message: string,
  extra: { expected?: string; found?: string } = {},
): Issue {
  if (t.source) return t.source.issue([t.index, ...path], message, extra)
  return {
    severity: 'error',
    file: `${t.owner} core graph`,
    line: 0,
    column: 0,
    path: `[${t.index}]${path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('')}`,
    message,
    ...extra,
  }
}

/**
 * Checks the plugin's tasks against themselves and the release's core tasks. Issues are reported on the
 * plugin's own tasks only (the release is trusted to have been checked when it was loaded), except cycles,
 * which are reported on the first plugin task of the cycle (or the first task if the cycle is the release's).
 */
export function checkTaskGraph(pluginTasks: LocatedTask[], coreTasks: LocatedTask[] = []): Issue[] {
  const issues: Issue[] = []
  const all = [...coreTasks, ...pluginTasks]
  const byId = new Map<string, LocatedTask>()
  for (const t of all) {
    if (typeof t.task?.id !== 'string') continue
    const prev = byId.get(t.task.id)
    if (prev && pluginTasks.includes(t)) {
      issues.push(
        issueAt(
          t,
          ['id'],
          `task "${t.task.id}" is already defined by ${prev.owner === t.owner ? 'this file' : prev.owner}`,
          {
            expected: 'a unique task id',
            found: `"${t.task.id}"`,
          },
        ),
      )
      continue
    }
    byId.set(t.task.id, t)
  }
  const ids = [...byId.keys()]

  const resolve = (name: string): string[] => {
    if (isRegexName(name)) {
      const re = compileRegex(name)
      return re instanceof Error ? [] : ids.filter((id) => re.test(id))
    }
    return byId.has(name) ? [name] : []
  }

  // References, regexes, stages, parameters — on the plugin's tasks.
  for (const t of pluginTasks) {
    const task = t.task
    if (!task || typeof task !== 'object') continue
    const refFields: ('requires' | 'required_for' | 'groups' | 'tasks')[] = [
      'requires',
      'required_for',
      'groups',
      'tasks',
    ]
    for (const field of refFields) {
      asList(task[field]).forEach((name, i) => {
        const path = Array.isArray(task[field]) ? [field, i] : [field]
        if (isRegexName(name)) {
          const re = compileRegex(name)
          if (re instanceof Error) {
            issues.push(
              issueAt(t, path, `regular expression ${name} does not compile: ${re.message}`, {
                expected: 'a valid /regex/',
              }),
            )
          }
          return
        }
        const target = byId.get(name)
        if (field === 'groups' && target && target.task.type !== 'group') {
          const groups = ids.filter((id) => byId.get(id)!.task.type === 'group')
          issues.push(
            issueAt(t, path, `"${name}" in groups of [${task.id}] is a ${target.task.type} task, not a group`, {
              expected: `the id of a group task (${groups.join(', ') || 'none defined'})`,
              found: `"${name}"`,
            }),
          )
          return
        }
        if (!target) {
          issues.push(
            issueAt(
              t,
              path,
              `Tasks '${name}' can't be in ${field} for [${task.id}] because they don't exist in the graph`,
              {
                expected: `the id of a task of this plugin or of the release`,
                found: `"${name}"`,
              },
            ),
          )
        }
      })
    }
    for (const field of ['cross-depends', 'cross-depended-by'] as const) {
      for (const d of crossNames(task[field])) {
        if (isRegexName(d.name)) {
          const re = compileRegex(d.name)
          if (re instanceof Error) {
            issues.push(
              issueAt(t, [field, d.i, 'name'], `regular expression ${d.name} does not compile: ${re.message}`, {
                expected: 'a valid /regex/',
              }),
            )
          }
        } else if (!byId.has(d.name)) {
          issues.push(
            issueAt(
              t,
              [field, d.i, 'name'],
              `Tasks '${d.name}' can't be in ${field} for [${task.id}] because they don't exist in the graph`,
              {
                expected: 'the id of a task of this plugin or of the release',
                found: `"${d.name}"`,
              },
            ),
          )
        }
        asList(d.role).forEach((r, j) => {
          if (!isRegexName(r)) return
          const re = compileRegex(r)
          if (re instanceof Error) {
            issues.push(
              issueAt(t, [field, d.i, 'role', j], `role regular expression ${r} does not compile: ${re.message}`, {
                expected: 'a valid /regex/',
              }),
            )
          }
        })
      }
    }
    for (const field of ['role', 'roles', 'tags'] as const) {
      asList(task[field]).forEach((r, i) => {
        if (!isRegexName(r)) return
        const re = compileRegex(r)
        if (re instanceof Error) {
          issues.push(
            issueAt(
              t,
              Array.isArray(task[field]) ? [field, i] : [field],
              `role regular expression ${r} does not compile: ${re.message}`,
              {
                expected: 'a valid /regex/',
                found: JSON.stringify(r),
              },
            ),
          )
        }
      })
    }
    if (task.stage !== undefined && (typeof task.stage !== 'string' || !STAGE_FIELD.test(task.stage))) {
      issues.push(
        issueAt(t, ['stage'], `unknown stage`, {
          expected: 'pre_deployment, deploy or post_deployment, optionally with a /<number> postfix',
          found: JSON.stringify(task.stage),
        }),
      )
    }
    const required = REQUIRED_PARAMETERS[task.type]
    if (required) {
      const params = task.parameters && typeof task.parameters === 'object' ? task.parameters : undefined
      for (const p of required) {
        const v = params?.[p]
        if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) {
          issues.push(
            issueAt(t, params ? ['parameters'] : [], `task "${task.id}" of type ${task.type} needs parameters.${p}`, {
              expected: `parameters: {${required.join(', ')}}`,
              found: params ? `parameters with ${Object.keys(params).join(', ') || 'nothing'}` : 'no parameters',
            }),
          )
        }
      }
    }
    if (task.type === 'group' && !asList(task.role).length && !asList(task.roles).length && !asList(task.tags).length) {
      issues.push({
        ...issueAt(t, ['id'], `group "${task.id}" has no role, roles or tags: it will run on no node`),
        severity: 'warning',
      })
    } else if (
      task.type !== 'stage' &&
      task.type !== 'group' &&
      !['role', 'roles', 'groups', 'tags'].some((f) => asList(task[f]).length)
    ) {
      issues.push({
        ...issueAt(t, ['id'], `task "${task.id}" has none of role, roles, groups, tags: it will run on no node`),
        severity: 'warning',
      })
    }
  }

  // Cycles over the merged graph.
  const edges = new Map<string, Set<string>>()
  const addEdge = (from: string, to: string) => {
    if (from === to) return
    if (!edges.has(from)) edges.set(from, new Set())
    edges.get(from)!.add(to)
  }
  for (const t of all) {
    const task = t.task
    if (!task || typeof task.id !== 'string') continue
    for (const r of asList(task.requires)) for (const id of resolve(r)) addEdge(id, task.id)
    for (const r of asList(task.required_for)) for (const id of resolve(r)) addEdge(task.id, id)
    for (const g of asList(task.groups))
      for (const id of resolve(g)) if (byId.get(id)?.task.type === 'group') addEdge(task.id, id)
    if (task.type === 'group') for (const m of asList(task.tasks)) for (const id of resolve(m)) addEdge(id, task.id)
  }
  const cycle = findCycle(ids, edges)
  if (cycle) {
    const inPlugin = cycle.map((id) => byId.get(id)!).find((t) => pluginTasks.includes(t)) ?? byId.get(cycle[0])!
    issues.push(
      issueAt(
        inPlugin,
        ['id'],
        `Graph cannot be processed because it contains cycles in it: ${[...cycle, cycle[0]].join(' -> ')}`,
        {
          expected: 'an acyclic graph',
        },
      ),
    )
  }
  return issues
}

/** One cycle (as the list of its ids in order), or undefined. Iterative DFS: graphs can be deep. */
export function findCycle(ids: string[], edges: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 1 | 2>()
  for (const start of ids) {
    if (state.has(start)) continue
    const stack: { id: string; next: Iterator<string> }[] = [
      { id: start, next: (edges.get(start) ?? new Set()).values() },
    ]
    const onPath: string[] = [start]
    state.set(start, 1)
    while (stack.length) {
      const top = stack[stack.length - 1]
      const n = top.next.next()
      if (n.done) {
        state.set(top.id, 2)
        stack.pop()
        onPath.pop()
        continue
      }
      const to = n.value
      const s = state.get(to)
      if (s === 1) return onPath.slice(onPath.indexOf(to))
      if (s === 2) continue
      state.set(to, 1)
      onPath.push(to)
      stack.push({ id: to, next: (edges.get(to) ?? new Set()).values() })
    }
  }
  return undefined
}
