/**
 * Task types: how one planned task runs on its node. Fuel's types (shell, puppet, upload_file, copy_files,
 * sync, reboot; stage/group/skipped never reach here) and `native` tasks written in TypeScript.
 *
 * A failed task's error carries node, task, step (the command or resource), exit code and the last 40 lines
 * of output, so "Task X failed on node Y" is never all a user gets.
 */
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, posix, relative } from 'node:path'
import { redactPasswords } from '../state/secrets.js'
import { crashArrival, crashHookArmed, crashLog } from '../state/crash-hook.js'
import type { NodeAccess, NodeExecutor, ResourceReport, ResourceVerbs } from './ports.js'
import type { RunContext, TaskRunner } from './scheduler.js'
import { YaqlExpression } from './yaql.js'
import { tailLines, type PlanTask, type ResourceChange, type TaskOutcome } from './types.js'

const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i)

/** What a native task receives. */
export interface NativeTaskContext {
  node: string
  task: PlanTask
  exec: NodeExecutor
  /** The environment's merged settings (release + enabled plugins). */
  settings: Record<string, unknown>
  /**
   * The environment's other models (`release` {name, version}, `cluster`, `networking_parameters`, …) as
   * conditions see them; empty when the caller gives none (optional so contexts built by hand in tests stay valid).
   */
  models?: Record<string, unknown>
  /** Facts gathered from the node (empty when node access gathers none). */
  facts: Record<string, unknown>
  /** A XenAPI connection to the node's pool, when the environment has one for this node. */
  xapi?: unknown
  /** What the state store knows of the node (`data`: pool, vm, xapiHost, addresses, dom0, ssh); `{}` if nothing. */
  nodeData?: Record<string, unknown>
  resources?: ResourceVerbs
  log(line: string): void
  signal: AbortSignal
  dryRun: boolean
}

/**
 * A task written in TypeScript. `resources` are converged by the engine through node access (so a dry run is
 * their `plan`, and a second deploy changes nothing); `run` does the imperative rest and is skipped on dry run.
 */
export interface NativeTask {
  resources?(ctx: NativeTaskContext): unknown[] | Promise<unknown[]>
  run?(ctx: NativeTaskContext): Promise<void | ResourceChange[]>
}

export interface PluginScripts {
  /** Local directory holding the plugin's deployment scripts. */
  localDir: string
  /** Where they are synced on the node, and the cwd of the plugin's shell tasks. */
  remoteDir: string
}

export interface TaskRunnerOptions {
  access: NodeAccess
  settings?: Record<string, unknown>
  /** The environment's models (release, cluster, …) handed to native tasks. */
  models?: Record<string, unknown>
  natives?: Map<string, NativeTask>
  /** Per plugin name (a PlanTask's `source`). */
  scripts?: Map<string, PluginScripts>
  xapi?(node: string): unknown
  /** The node's record data (`NodeRecord.data`) for native tasks. */
  nodeData?(node: string): Record<string, unknown> | undefined
  /** Receives every output line as it is known (after the command ends), prefixed by node and task. */
  log?(node: string, task: string, line: string): void
  /** Poll interval while waiting for a reboot (default 2 s). */
  rebootPollMs?: number
  /**
   * How a node is rebooted and how its boot id is read (defaults: `reboot` in the background, and
   * /proc/sys/kernel/random/boot_id). Tests that cannot reboot the machine they run on give their own.
   */
  rebootCommand?: string
  bootIdCommand?: string
}

export class TaskStepError extends Error {
  constructor(
    message: string,
    readonly step?: string,
    readonly exitCode?: number,
    readonly tail?: string[],
  ) {
    super(message)
  }
}

/** Builds the runner the scheduler calls for each task. */
export function createTaskRunner(opts: TaskRunnerOptions): TaskRunner {
  const synced = new Map<string, Promise<void>>()
  const syncScripts = (node: string, exec: NodeExecutor, plugin: string): Promise<void> => {
    const s = opts.scripts?.get(plugin)
    if (!s) return Promise.resolve()
    const key = `${node}\0${plugin}`
    let p = synced.get(key)
    if (!p) {
      p = syncDirectory(exec, s.localDir, s.remoteDir)
      p.catch(() => synced.delete(key))
      synced.set(key, p)
    }
    return p
  }

  const armed = crashHookArmed()
  const run = async (task: PlanTask, ctx: RunContext): Promise<TaskOutcome> => {
    const opened = await opts.access.executor(task.node)
    const exec = armed ? crashingExecutor(opened) : opened
    const params = task.parameters
    const fail = (e: unknown): TaskOutcome => {
      const se = e instanceof TaskStepError ? e : undefined
      const message = e instanceof Error ? e.message : String(e)
      return {
        status: 'failed',
        error: { node: task.node, task: task.id, step: se?.step, exitCode: se?.exitCode, message, tail: se?.tail },
        outputTail: se?.tail,
      }
    }
    try {
      switch (task.type) {
        case 'shell':
        case 'puppet': {
          await syncScripts(task.node, exec, task.source)
          const cmd =
            task.type === 'shell'
              ? str(task, 'cmd')
              : `puppet apply --modulepath=${String(params.puppet_modules ?? '/etc/puppet/modules')} ${str(task, 'puppet_manifest')}`
          const cwd = typeof params.cwd === 'string' ? params.cwd : (opts.scripts?.get(task.source)?.remoteDir ?? '/')
          return await runCommand(exec, task, cmd, cwd, opts)
        }
        case 'upload_file': {
          const path = str(task, 'path')
          const { data, mode } = uploadData(task, opts)
          // check before acting: an equal file is left alone (a second deploy changes nothing)
          const current = await exec.get(path).catch(() => undefined)
          if (current?.equals(Buffer.from(data, 'utf8')))
            return { status: 'succeeded', changes: [{ resource: `file ${path}`, result: 'unchanged' }] }
          await ensureDir(exec, posix.dirname(path))
          await exec.put(path, data, { mode })
          return { status: 'succeeded', changes: [{ resource: `file ${path}`, result: 'changed' }] }
        }
        case 'copy_files': {
          const files = params.files
          if (!Array.isArray(files)) throw new TaskStepError('parameters.files must be a list of {src, dst}')
          const mode = typeof params.permissions === 'string' ? parseInt(params.permissions, 8) : 0o644
          const changes: ResourceChange[] = []
          for (const f of files as { src: string; dst: string }[]) {
            const step = `copy ${f.src} -> ${f.dst}`
            const data = await readFile(f.src).catch((e: Error) => {
              throw new TaskStepError(`cannot read ${f.src}: ${e.message}`, step)
            })
            await ensureDir(exec, posix.dirname(f.dst))
            await exec.put(f.dst, data, { mode })
            changes.push({ resource: `file ${f.dst}`, result: 'changed' })
          }
          return { status: 'succeeded', changes }
        }
        case 'sync': {
          await syncDirectory(exec, str(task, 'src'), str(task, 'dst'))
          return { status: 'succeeded' }
        }
        case 'reboot':
          return await reboot(exec, task, ctx, opts)
        case 'native':
          return await runNative(exec, task, ctx, opts, false)
        default:
          throw new TaskStepError(`task type ${JSON.stringify(task.type)} is not supported by the engine`)
      }
    } catch (e) {
      return fail(e)
    }
  }
  if (!armed) return run
  // Test-only (state/crash-hook.ts): every attempt's start and end go to the log outside the process, and node
  // commands pass the `node-command` crash point.
  return async (task, ctx) => {
    crashLog(`start ${task.key} ${ctx.attempt} ${process.pid}`)
    const outcome = await run(task, ctx)
    crashLog(`end ${task.key} ${outcome.status} ${process.pid}`)
    return outcome
  }
}

/** Test-only: an executor whose `run` is a `node-command` crash point (see state/crash-hook.ts). */
function crashingExecutor(exec: NodeExecutor): NodeExecutor {
  return new Proxy(exec, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown
      if (prop !== 'run' || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v
      return async (...args: Parameters<NodeExecutor['run']>) => {
        const kill = crashArrival('node-command')
        if (!kill) return (v as NodeExecutor['run']).apply(target, args)
        const timer = setTimeout(kill, 20)
        const result = await (v as NodeExecutor['run']).apply(target, args).catch(() => undefined)
        clearTimeout(timer)
        kill() // answered within 20 ms: the task never sees the answer either
        return result as never
      }
    },
  })
}

/**
 * An upload_file task's content: `data` as given, or Fuel's core `upload_configuration` expression `$.toYaml()` —
 * the node's view of the deployment as YAML (node, release, cluster, settings). Passwords are redacted: xenstack's
 * tasks take secrets from the engine, never from a file on the node. Any expression of the YAQL subset (yaql.ts) over
 * that view is evaluated (the corpus also has `$.network_metadata.nodes.values().toYaml()`); it must give text.
 */
function uploadData(task: PlanTask, opts: TaskRunnerOptions): { data: string; mode: number } {
  const data = task.parameters.data
  if (typeof data === 'string') return { data, mode: 0o644 }
  const expr = data && typeof data === 'object' ? (data as { yaql_exp?: unknown }).yaql_exp : undefined
  if (typeof expr === 'string') {
    const { settings: _settings, ...models } = opts.models ?? {}
    const view = { node: task.node, ...models, settings: redactPasswords(opts.settings ?? {}) }
    let out: unknown
    try {
      out = new YaqlExpression(expr).evaluate({ data: view })
    } catch (e) {
      throw new TaskStepError(
        `parameters.data yaql_exp ${JSON.stringify(expr)} (task ${task.id}, from ${task.source}): ${(e as Error).message}`,
        `upload ${String(task.parameters.path)}`,
      )
    }
    if (typeof out !== 'string')
      throw new TaskStepError(
        `parameters.data yaql_exp ${JSON.stringify(expr)} (task ${task.id}, from ${task.source}) must give text (end it with .toYaml()); it gave ${out === null || out === undefined ? 'nothing' : typeof out}`,
        `upload ${String(task.parameters.path)}`,
      )
    return { data: out, mode: 0o600 }
  }
  throw new TaskStepError(
    `parameters.data must be a string or {yaql_exp: <string>} (task ${task.id}, from ${task.source}); found ${JSON.stringify(data)}`,
    `upload ${String(task.parameters.path)}`,
  )
}

function str(task: PlanTask, name: string): string {
  const v = task.parameters[name]
  if (typeof v !== 'string' || v === '')
    throw new TaskStepError(`parameters.${name} must be a non-empty string (task ${task.id}, from ${task.source})`)
  return v
}

async function runCommand(
  exec: NodeExecutor,
  task: PlanTask,
  cmd: string,
  cwd: string,
  opts: TaskRunnerOptions,
): Promise<TaskOutcome> {
  let r
  try {
    r = await exec.run(cmd, { cwd, timeoutMs: task.timeoutMs, allowedExitCodes: ANY_EXIT })
  } catch (e) {
    throw new TaskStepError((e as Error).message, cmd)
  }
  const output = r.stdout + (r.stderr ? (r.stdout && !r.stdout.endsWith('\n') ? '\n' : '') + r.stderr : '')
  const tail = tailLines(output, 40)
  if (opts.log) for (const line of tail) opts.log(task.node, task.id, line)
  if (r.code !== 0) throw new TaskStepError(`command exited with code ${r.code}`, cmd, r.code, tail)
  return { status: 'succeeded', outputTail: tail }
}

async function ensureDir(exec: NodeExecutor, dir: string): Promise<void> {
  const r = await exec.run(['mkdir', '-p', dir], { allowedExitCodes: ANY_EXIT })
  if (r.code !== 0) throw new TaskStepError(`cannot create ${dir}`, `mkdir -p ${dir}`, r.code, tailLines(r.stderr))
}

/** Copies a local directory tree to the node (files keep their mode); what is already equal is rewritten. */
export async function syncDirectory(exec: NodeExecutor, localDir: string, remoteDir: string): Promise<void> {
  const walk = async (dir: string): Promise<string[]> => {
    const out: string[] = []
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) out.push(...(await walk(p)))
      else if (e.isFile()) out.push(p)
    }
    return out
  }
  const files = await walk(localDir).catch((e: Error) => {
    throw new TaskStepError(`cannot read scripts directory ${localDir}: ${e.message}`, `sync ${localDir}`)
  })
  await ensureDir(exec, remoteDir)
  const dirs = new Set(files.map((f) => posix.dirname(posix.join(remoteDir, relative(localDir, f)))))
  for (const d of dirs) if (d !== remoteDir) await ensureDir(exec, d)
  for (const f of files) {
    const st = await stat(f)
    await exec.put(posix.join(remoteDir, relative(localDir, f)), await readFile(f), { mode: st.mode & 0o777 })
  }
}

const BOOT_ID_COMMAND = 'cat /proc/sys/kernel/random/boot_id'
const REBOOT_COMMAND = 'nohup sh -c "sleep 1; reboot" >/dev/null 2>&1 &'

async function bootId(exec: NodeExecutor, command: string): Promise<string> {
  const r = await exec.run(command, { allowedExitCodes: ANY_EXIT, timeoutMs: 10_000 })
  if (r.code !== 0 || r.stdout.trim() === '')
    throw new Error(`cannot read the boot id (${command}): exit code ${r.code} ${r.stderr.trim()}`)
  return r.stdout.trim()
}

/**
 * Reboots the node and waits until it answers with a new boot id (Fuel compared /proc/1's mtime). The wait ends
 * two polls before the task's timeout, so a node that never comes back fails with this task's own error (old
 * boot id, last answer) rather than the scheduler's bare "timed out".
 */
async function reboot(
  exec: NodeExecutor,
  task: PlanTask,
  ctx: RunContext,
  opts: TaskRunnerOptions,
): Promise<TaskOutcome> {
  const pollMs = opts.rebootPollMs ?? 2000
  const idCommand = opts.bootIdCommand ?? BOOT_ID_COMMAND
  const before = await bootId(exec, idCommand).catch((e: Error) => {
    throw new TaskStepError(e.message, 'read boot id before reboot')
  })
  await exec.run(opts.rebootCommand ?? REBOOT_COMMAND, { allowedExitCodes: ANY_EXIT })
  const timeoutMs = task.timeoutMs ?? 900_000
  const waitMs = Math.max(pollMs, timeoutMs - 2 * pollMs)
  const deadline = Date.now() + waitMs
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    if (ctx.signal.aborted) throw new TaskStepError('reboot wait aborted', 'wait for new boot id')
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, deadline - Date.now()))))
    try {
      const now = await bootId(exec, idCommand)
      if (now !== before)
        return { status: 'succeeded', changes: [{ resource: `boot id of ${task.node}`, result: 'changed' }] }
      last = `the same boot id ${now}`
    } catch (e) {
      last = `unreachable: ${(e as Error).message}` // the node is down: keep waiting
    }
  }
  throw new TaskStepError(
    `node ${task.node} did not come back with a new boot id within ${waitMs / 1000} s (boot id before the reboot: ${before}; last answer: ${last})`,
    'wait for new boot id',
  )
}

export function nativeContext(
  exec: NodeExecutor,
  task: PlanTask,
  signal: AbortSignal,
  opts: TaskRunnerOptions,
  dryRun: boolean,
  facts: Record<string, unknown>,
  log: (line: string) => void,
): NativeTaskContext {
  return {
    node: task.node,
    task,
    exec,
    settings: opts.settings ?? {},
    models: opts.models ?? {},
    facts,
    xapi: opts.xapi?.(task.node),
    nodeData: opts.nodeData?.(task.node) ?? {},
    resources: opts.access.resources,
    log,
    signal,
    dryRun,
  }
}

function handlerName(task: PlanTask): string {
  return typeof task.parameters.handler === 'string' ? task.parameters.handler : task.id
}

export function toChanges(entries: ResourceReport[]): ResourceChange[] {
  return entries.map((e) => ({
    resource: e.id,
    result: e.status === 'failed' ? 'failed' : e.status === 'changed' || e.inSync === false ? 'changed' : 'unchanged',
    diff: e.diff.length ? e.diff.join('\n') : undefined,
  }))
}

async function runNative(
  exec: NodeExecutor,
  task: PlanTask,
  ctx: RunContext,
  opts: TaskRunnerOptions,
  dryRun: boolean,
): Promise<TaskOutcome> {
  const name = handlerName(task)
  const native = opts.natives?.get(name)
  if (!native) throw new TaskStepError(`no native task named ${JSON.stringify(name)} is registered`)
  const lines: string[] = []
  const facts = (await opts.access.facts?.(task.node)) ?? {}
  const nctx = nativeContext(exec, task, ctx.signal, opts, dryRun, facts, (line) => {
    lines.push(line)
    if (lines.length > 200) lines.splice(0, lines.length - 40)
    opts.log?.(task.node, task.id, line)
  })
  const changes: ResourceChange[] = []
  try {
    if (native.resources) {
      const resources = await native.resources(nctx)
      if (resources.length) {
        if (!opts.access.resources) throw new TaskStepError('node access provides no resource verbs', 'resources')
        const report = await opts.access.resources.apply(exec, resources)
        changes.push(...toChanges(report.entries))
        if (!report.ok) {
          const bad = report.entries.find((e) => e.status === 'failed')
          throw new TaskStepError(bad?.error ?? 'a resource failed', bad?.id, undefined, lines.slice(-40))
        }
      }
    }
    if (native.run) {
      const more = await native.run(nctx)
      if (more) changes.push(...more)
    }
  } catch (e) {
    if (e instanceof TaskStepError) throw e
    throw new TaskStepError((e as Error)?.message ?? String(e), undefined, undefined, lines.slice(-40))
  }
  return { status: 'succeeded', outputTail: lines.slice(-40), changes }
}
