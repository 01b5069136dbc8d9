/**
 * Live progress of a deployment on stderr (stdout stays for the summary or the `--json` object).
 *
 * On a terminal: one bar per node (cli-progress), weighted by the engine's expected durations, showing the task
 * running there, plus an overall bar; a failed task's line is printed above the bars as it happens. Elsewhere (a
 * pipe, a CI log): one plain line per finished task, `[node] task: status (reason)`. With `--json`: nothing.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress'
import type { SchedulerEvent } from '../engine/scheduler.js'
import { SYNC_NODE } from '../engine/types.js'

export interface DeployProgress {
  onEvent(e: SchedulerEvent): void
  /** Prints a line without breaking the bars. */
  note(line: string): void
  stop(): void
}

export type ProgressMode = 'bars' | 'lines' | 'none'

export function progressMode(opts: { json?: boolean }, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (opts.json) return 'none'
  return stream.isTTY && process.env.TERM !== 'dumb' && !process.env.CI ? 'bars' : 'lines'
}

const FINISHED = new Set(['succeeded', 'failed', 'dep_failed', 'skipped', 'cancelled'])

export function createDeployProgress(mode: ProgressMode, nodes: string[] = []): DeployProgress {
  if (mode === 'none') return { onEvent: () => undefined, note: () => undefined, stop: () => undefined }
  if (mode === 'lines') return lineProgress()
  return barProgress(nodes)
}

function lineProgress(): DeployProgress {
  const write = (s: string) => process.stderr.write(s + '\n')
  return {
    onEvent: (e) => {
      if (e.type === 'task' && FINISHED.has(e.status) && e.node !== SYNC_NODE)
        write(`[${e.node}] ${e.task}: ${e.status}${e.reason ? ` (${e.reason})` : ''}`)
      else if (e.type === 'brake') write(`deployment braking: ${e.reason}`)
    },
    note: write,
    stop: () => undefined,
  }
}

function barProgress(nodes: string[]): DeployProgress {
  const multi = new MultiBar(
    {
      format: ' {name} {bar} {percentage}% {status}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      stream: process.stderr,
      fps: 8,
      autopadding: true,
    },
    Presets.shades_classic,
  )
  const width = Math.max(7, ...nodes.map((n) => n.length))
  const pad = (s: string) => s.padEnd(width)
  const overall = multi.create(100, 0, { name: pad('overall'), status: '' })
  const bars = new Map<string, SingleBar>()
  const bar = (node: string) => {
    let b = bars.get(node)
    if (!b) {
      b = multi.create(100, 0, { name: pad(node), status: 'waiting' })
      bars.set(node, b)
    }
    return b
  }
  nodes.forEach(bar)
  const failed = new Map<string, number>()
  return {
    onEvent: (e) => {
      if (e.type === 'progress') {
        if (e.node !== SYNC_NODE) bar(e.node).update(e.nodeProgress)
        overall.update(e.progress)
      } else if (e.type === 'task' && e.node !== SYNC_NODE) {
        if (e.status === 'running')
          bar(e.node).update({ status: `${e.task}${e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}` })
        else if (e.status === 'failed' || e.status === 'dep_failed' || e.status === 'cancelled') {
          failed.set(e.node, (failed.get(e.node) ?? 0) + 1)
          bar(e.node).update({ status: `${e.task}: ${e.status}` })
          if (e.status === 'failed') multi.log(`[${e.node}] ${e.task}: failed${e.reason ? ` (${e.reason})` : ''}\n`)
        }
      } else if (e.type === 'brake') multi.log(`deployment braking: ${e.reason}\n`)
    },
    note: (line) => multi.log(line + '\n'),
    stop: () => {
      for (const [node, b] of bars) if (!failed.has(node)) b.update({ status: 'done' })
      multi.stop()
    },
  }
}
