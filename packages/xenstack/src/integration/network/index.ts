import type { NativeTask } from '../../engine/tasks.js'

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {}
