/**
 * The XenServer integration's native tasks, by handler name. `plugins/xenserver/deployment_tasks.yaml` names
 * them (`type: native`, `parameters.handler: xenserver.<step>`); the engine looks them up here. Each area owns
 * one module that exports its `natives`; this file only merges them (a name defined twice is a bug: it throws).
 */
import type { NativeTask } from '../engine/tasks.js'
import { natives as compute } from './compute/index.js'
import { natives as controller } from './controller/index.js'
import { natives as dom0 } from './dom0/index.js'
import { natives as himn } from './himn/index.js'
import { natives as image } from './image/index.js'
import { natives as network } from './network/index.js'

export function xenserverNatives(): Map<string, NativeTask> {
  const all = new Map<string, NativeTask>()
  for (const group of [himn, network, dom0, image, compute, controller]) {
    for (const [name, task] of Object.entries(group)) {
      if (all.has(name)) throw new Error(`native task ${JSON.stringify(name)} is defined twice`)
      all.set(name, task)
    }
  }
  return all
}
