/** The controllers' step of the XenServer integration (PLUGIN): noVNC console tokens shared through memcache. */
import type { NativeTask } from '../../engine/tasks.js'
import { controllerVncCache } from './vnc-cache.js'

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  'xenserver.controller-vnc-cache': controllerVncCache,
}
