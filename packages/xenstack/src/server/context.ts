/** What the routes share: the state store, the engine's store, the event hub, deployments and pool discovery. */
import type { EngineStore } from '../engine/store.js'
import type { StateStore } from '../state/store.js'
import type { DeploymentManager } from './deployments.js'
import type { EventHub } from './events.js'
import type { HealthProgress } from './health.js'
import type { PoolInventory } from './pools.js'

export interface ServerContext {
  state: StateStore
  engine: EngineStore
  hub: EventHub
  deployments: DeploymentManager
  pools: PoolInventory
  health: HealthProgress
  /** What this installation cannot do (e.g. node-level steps without the lab), shown by `GET /api/v1/status`. */
  notes: string[]
}
