import type { NativeTask } from '../../engine/tasks.js'
import { runTestImage } from './test-image.js'

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  /** Primary controller: exactly one TestVM in Glance, xenstack's own VHD (test-image.ts). */
  'xenserver.test-image': { run: runTestImage },
}
