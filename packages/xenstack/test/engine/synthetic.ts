/** Helpers for engine tests: synthetic plans written by key, and a runner that records what ran when. */
import { SYNC_NODE, type ExecutionPlan, type PlanTask, type TaskOutcome } from '../../src/engine/types.js'
import type { RunContext, TaskRunner } from '../../src/engine/scheduler.js'

export interface SynthTask {
  /** `<node>/<id>`; node `_sync` for sync points. */
  key: string
  requires?: string[]
  any?: string[][]
  type?: string
  expectedMs?: number
  limiters?: number[]
  timeoutMs?: number
  retries?: number
  skipReason?: string
}

export function synthPlan(
  tasks: SynthTask[],
  extra: Partial<Pick<ExecutionPlan, 'limiters' | 'faultTolerance'>> = {},
): ExecutionPlan {
  const index = new Map(tasks.map((t, i) => [t.key, i]))
  const idx = (k: string) => {
    const i = index.get(k)
    if (i === undefined) throw new Error(`synthetic plan: unknown key ${k}`)
    return i
  }
  const nodes = [...new Set(tasks.map((t) => t.key.split('/')[0]).filter((n) => n !== SYNC_NODE))]
  const planTasks: PlanTask[] = tasks.map((t) => {
    const [node, id] = t.key.split('/')
    return {
      key: t.key,
      id,
      node,
      type: t.type ?? (node === SYNC_NODE ? 'stage' : 'native'),
      parameters: {},
      skipReason: t.skipReason,
      requires: (t.requires ?? []).map(idx),
      requiresAny: (t.any ?? []).map((g) => g.map(idx)),
      syncPoint: node === SYNC_NODE,
      limiters: t.limiters ?? [],
      expectedMs: t.expectedMs ?? 10,
      timeoutMs: t.timeoutMs,
      retries: t.retries ?? 0,
      retryIntervalMs: 1,
      source: 'test',
    }
  })
  return { nodes, tasks: planTasks, limiters: extra.limiters ?? [], faultTolerance: extra.faultTolerance ?? [] }
}

export interface Behaviour {
  ms?: number
  /** Fail the first N attempts (Infinity: always). */
  failTimes?: number
  /** Ignore the abort signal (to test timeouts of stubborn tasks). */
  stubborn?: boolean
  /**
   * After `ms`, wait for this too: the test opens it when the moment it is testing has come, so "still running
   * when X happened" holds however slowly the machine runs (instead of racing a longer `ms` against X).
   */
  gate?: Promise<void>
}

/** Records starts and ends in order, and the most nodes / tasks seen running at once. */
export class Recorder {
  readonly log: string[] = []
  readonly starts: string[] = []
  running = new Set<string>()
  runningNodes = new Map<string, number>()
  maxNodes = 0
  maxPerNode = 0
  attempts = new Map<string, number>()
  concurrentSets: string[][] = []

  constructor(private readonly behaviour: Record<string, Behaviour> = {}) {}

  runner: TaskRunner = async (task: PlanTask, ctx: RunContext): Promise<TaskOutcome> => {
    const b = this.behaviour[task.key] ?? {}
    this.starts.push(task.key)
    this.log.push(`start ${task.key}`)
    this.attempts.set(task.key, ctx.attempt)
    this.running.add(task.key)
    const c = (this.runningNodes.get(task.node) ?? 0) + 1
    this.runningNodes.set(task.node, c)
    this.maxPerNode = Math.max(this.maxPerNode, c)
    this.maxNodes = Math.max(this.maxNodes, this.runningNodes.size)
    this.concurrentSets.push([...this.running])
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, b.ms ?? 5)
        if (!b.stubborn)
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer)
            reject(ctx.signal.reason)
          })
      })
      if (b.gate) await b.gate
      if (ctx.attempt <= (b.failTimes ?? 0))
        return {
          status: 'failed',
          error: { node: task.node, task: task.id, message: `planned failure ${ctx.attempt}`, exitCode: 1 },
        }
      return { status: 'succeeded' }
    } finally {
      this.log.push(`end ${task.key}`)
      this.running.delete(task.key)
      const left = (this.runningNodes.get(task.node) ?? 1) - 1
      if (left === 0) this.runningNodes.delete(task.node)
      else this.runningNodes.set(task.node, left)
    }
  }

  /** Position of an event in the log (throws when absent). */
  at(event: string): number {
    const i = this.log.indexOf(event)
    if (i < 0) throw new Error(`event ${event} not in log: ${this.log.join(', ')}`)
    return i
  }
}
