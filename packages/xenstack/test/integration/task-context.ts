// A native task's context made by hand, to call a task's handler directly in a test (the engine makes it with
// nativeContext, engine/tasks.ts): what the test does not give is empty, the run is real (no dry run, never aborted),
// and the handler's log lines are kept in `lines`.
import type { NativeTaskContext } from '../../src/engine/tasks.js'
import type { PlanTask } from '../../src/engine/types.js'

export function handlerContext(
  node: string,
  taskId: string,
  given: Pick<NativeTaskContext, 'exec'> & Partial<Omit<NativeTaskContext, 'node' | 'task' | 'log'>>,
  lines: string[] = [],
): NativeTaskContext {
  return {
    node,
    task: { id: taskId, node } as PlanTask,
    settings: {},
    facts: {},
    nodeData: {},
    signal: new AbortController().signal,
    dryRun: false,
    ...given,
    log: (l) => lines.push(l),
  }
}
