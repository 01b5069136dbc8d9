/**
 * Starts xenstack's server: opens the state store (SQLite in the data dir, or PostgreSQL with DATABASE_URL),
 * makes the API token at first start, starts pool discovery and listens — on 127.0.0.1 unless told otherwise.
 * `xenstack server` and the main job (`npm start`) both start it through here.
 */
import type { FastifyInstance } from 'fastify'
import { EngineStore } from '../engine/store.js'
import type { NativeTask } from '../engine/tasks.js'
import type { HealthRoutesDeps } from '../health/api.js'
import { ensureShippedPlugins } from '../integration/shipped.js'
import { xenserverHealthRunner } from '../health/xenserver/index.js'
import { StateStore } from '../state/store.js'
import { buildApp } from './app.js'
import { TokenStore } from './auth.js'
import type { ServerContext } from './context.js'
import { DeploymentManager } from './deployments.js'
import { EventHub } from './events.js'
import { PoolInventory } from './pools.js'
import { HealthProgress } from './health.js'
import { HealthStore } from '../health/store.js'

export { buildApp } from './app.js'
export { TokenStore } from './auth.js'

export interface ServerOptions {
  dataDir?: string
  /** `postgresql://…` (default: $DATABASE_URL; '' forces SQLite). */
  databaseUrl?: string
  /** Default 127.0.0.1: the API is reachable from this machine only unless asked. */
  host?: string
  /** Default 8700; 0 picks a free port. */
  port?: number
  /** Native tasks for deployments (the XenServer integration's). */
  natives?: Map<string, NativeTask>
  /** Things this installation cannot do, shown by GET /api/v1/status. */
  notes?: string[]
  /** The health API's dependencies, built on the opened store (default: xenstack's XenServer checks). */
  health?: (state: StateStore) => HealthRoutesDeps | undefined
  webDir?: string
  /**
   * Token policy: `first-start` (default) makes one only when none exists; `rotate:<name>` replaces the tokens of
   * that name by a new one on every start (the main job, which must print a working token each time).
   */
  token?: 'first-start' | `rotate:${string}`
  /** Where the warning about a non-loopback bind goes (default: stderr). */
  warn?: (message: string) => void
}

export interface RunningServer {
  url: string
  /** The API token when this start created it: print it once; it is stored only hashed. */
  newToken?: string
  app: FastifyInstance
  context: ServerContext
  close(): Promise<void>
}

export const DEFAULT_PORT = 8700

/** The fuel-ostf health API over xenstack's XenServer checks; `{env}` is an environment's name or id. */
export function xenserverHealthDeps(state: StateStore): HealthRoutesDeps {
  return {
    runner: xenserverHealthRunner(state),
    environmentName: (key) => state.environments.list().find((e) => e.name === key || e.id === key)?.name,
  }
}

/** Opens what the server needs on a state store (also used by tests with app.inject). */
export function serverContext(state: StateStore, opts: { natives?: Map<string, NativeTask>; notes?: string[] } = {}) {
  const engine = new EngineStore(state.db)
  const hub = new EventHub()
  const context: ServerContext = {
    state,
    engine,
    hub,
    deployments: new DeploymentManager(state, engine, hub, opts.natives),
    pools: new PoolInventory(state, hub),
    health: new HealthProgress(hub, new HealthStore(state)),
    notes: opts.notes ?? [],
  }
  return { context, tokens: new TokenStore(state) }
}

/** True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host) || /^::ffff:127\./i.test(host)
}

export async function startServer(opts: ServerOptions = {}): Promise<RunningServer> {
  const state = StateStore.open({ dataDir: opts.dataDir, databaseUrl: opts.databaseUrl })
  try {
    // As the CLI does: a fresh store gets xenstack's shipped plugins (the XenServer plugin) installed once.
    const notes = [...(opts.notes ?? [])]
    try {
      notes.push(...ensureShippedPlugins(state).notes)
    } catch (e) {
      notes.push(`the shipped plugins could not be installed: ${(e as Error).message}`)
    }
    const { context, tokens } = serverContext(state, { ...opts, notes })
    const newToken = opts.token?.startsWith('rotate:') ? tokens.rotate(opts.token.slice(7)) : tokens.ensure()
    const app = await buildApp(context, {
      tokens,
      health: (opts.health ?? xenserverHealthDeps)(state),
      webDir: opts.webDir,
    })
    const host = opts.host ?? '127.0.0.1'
    await app.listen({ host, port: opts.port ?? DEFAULT_PORT })
    const addr = app.server.address()
    const port = typeof addr === 'object' && addr ? addr.port : (opts.port ?? DEFAULT_PORT)
    // Anyone who can reach a non-loopback address can try tokens and read the UI: say so every time it is asked for.
    if (!isLoopback(host))
      (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(
        `the API listens on ${host}:${port}, reachable from other machines (plain HTTP: put TLS in front of it); ` +
          'without --host it listens on 127.0.0.1 only',
      )
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
    context.pools.watchAll()
    return {
      url: `http://${shown}:${port}`,
      newToken,
      app,
      context,
      async close() {
        await context.deployments.close()
        await context.pools.close()
        context.health.close()
        await app.close()
        state.close()
      },
    }
  } catch (e) {
    state.close()
    throw e
  }
}
