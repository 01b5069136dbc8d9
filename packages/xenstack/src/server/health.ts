/**
 * Health progress for the event stream: the health checks' runs live in the state store (health/store.ts), written
 * by whichever process runs them (this server's runner, or `xenstack health` elsewhere). While someone follows an
 * environment's `health:<env>` channel, its last runs are read twice a second and every run whose status or test
 * statuses changed is published as a `run` event (fuel-ostf's run object, the same as GET /api/health/v1/testruns).
 */
import { runJson } from '../health/api.js'
import type { HealthStore } from '../health/store.js'
import type { RunRecord } from '../health/types.js'
import type { EventHub } from './events.js'

const POLL_MS = 500

export const healthChannel = (env: string) => `health:${env}`

const digest = (r: RunRecord) => `${r.status}|${r.tests.map((t) => `${t.id}:${t.status}`).join(',')}`

export class HealthProgress {
  private readonly followed = new Map<string, { timer: NodeJS.Timeout; seen: Map<string, string> }>()

  constructor(
    private readonly hub: EventHub,
    readonly store: HealthStore,
  ) {}

  /** The environment's last run of each test set, as the stream's snapshot. */
  snapshot(env: string) {
    return this.store.lastRuns(env).map(runJson)
  }

  /** Polls the environment's runs while its channel has listeners. */
  follow(env: string): void {
    if (this.followed.has(env)) return
    const channel = healthChannel(env)
    const seen = new Map(this.store.lastRuns(env).map((r) => [r.id, digest(r)]))
    const tick = () => {
      if (this.hub.listeners(channel) === 0) return this.unfollow(env)
      try {
        for (const r of this.store.lastRuns(env)) {
          const d = digest(r)
          if (seen.get(r.id) === d) continue
          seen.set(r.id, d)
          this.hub.publish(channel, 'run', runJson(r))
        }
      } catch (e) {
        this.hub.publish(channel, 'error', { message: (e as Error).message })
      }
    }
    const timer = setInterval(tick, POLL_MS)
    timer.unref()
    this.followed.set(env, { timer, seen })
  }

  private unfollow(env: string): void {
    const f = this.followed.get(env)
    if (f) clearInterval(f.timer)
    this.followed.delete(env)
  }

  close(): void {
    for (const env of [...this.followed.keys()]) this.unfollow(env)
  }
}
