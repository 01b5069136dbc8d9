/**
 * The main job's server (`npm start`): xenstack's REST API on the main job's pool, with embedded defaults —
 * the state in SQLite under `$XENSTACK_HOME` (default `.state/xenstack`, beside the simulator's `.state/sim`),
 * the XenServer plugin installed when it is shipped, and a demo environment ready to deploy: the lab's
 * environment (its hosts as nodes with roles, its simulated pool) when the lab runs, else the simulator's pool
 * with an environment and a note saying which node-level steps cannot run. A new API token is printed on every
 * start (the previous main-job token stops working; tokens are stored hashed only).
 */
import { describeLab } from './lab/supervisor.js'
import { registerLabEnvironment, XENSERVER_PLUGIN } from './lab/environment.js'
import { registerMainJobServices } from './main-job.js'
import { mainPool } from './main-pool.js'
import { compatiblePlugins, createEnvironment, resolveRelease } from './plugins/environment.js'
import { xenserverNatives } from './integration/index.js'
import { ensureShippedPlugins } from './integration/shipped.js'
import { startServer, DEFAULT_PORT, type RunningServer } from './server/index.js'
import { resolveDataDir, StateStore } from './state/store.js'

export const DEMO = 'demo'

/** The simulator-only demo: the simulator as pool `demo`, an environment `demo` on it (XenServer when installed). */
function simulatorDemo(dataDir: string, url: string, password: string): void {
  const store = StateStore.open({ dataDir })
  try {
    ensureShippedPlugins(store)
    store.transaction(() => {
      if (!store.pools.get(DEMO)) store.pools.add({ name: DEMO, url, username: 'root', password })
      else store.pools.update(DEMO, { url, password })
      if (store.environments.get(DEMO)) return
      const release = resolveRelease(store)
      const xs = compatiblePlugins(store, release).find((p) => p.name === XENSERVER_PLUGIN)
      const defaults = release.components.filter((c) => c.default).map((c) => c.name)
      const attrs = (xs?.data.attributes ?? {}) as Record<string, unknown>
      const settings: Record<string, unknown> = {}
      if (attrs.username) settings[`${XENSERVER_PLUGIN}.username.value`] = 'root'
      if (attrs.password) settings[`${XENSERVER_PLUGIN}.password.value`] = password
      createEnvironment(store, {
        name: DEMO,
        release: release.name,
        ...(xs
          ? {
              components: [...defaults.filter((c) => !c.startsWith('hypervisor:')), 'hypervisor:xenserver'],
              plugins: [{ name: xs.name, version: xs.version }],
              settings,
            }
          : {}),
      })
    })
  } finally {
    store.close()
  }
}

registerMainJobServices(async () => {
  let server: RunningServer | undefined
  return [
    {
      name: 'server',
      async start(previous) {
        const dataDir = resolveDataDir(process.env.XENSTACK_HOME || '.state/xenstack')
        const notes: string[] = []
        const poolNote = (previous.pool as { note?: string } | undefined)?.note
        if (poolNote) notes.push(poolNote)
        let environment = DEMO
        if (mainPool.lab?.simulator) {
          const lab = mainPool.lab
          const desc = describeLab(lab, 0)
          environment = registerLabEnvironment(desc, lab.simulator!.password, desc.refs, { dataDir })
        } else if (mainPool.sim && mainPool.simPassword) {
          simulatorDemo(dataDir, mainPool.sim.url, mainPool.simPassword)
          notes.push(
            `environment ${DEMO} has no nodes with node access (no lab): a dry run plans it, a deployment cannot run`,
          )
        }
        const port = process.env.XENSTACK_PORT ? Number(process.env.XENSTACK_PORT) : DEFAULT_PORT
        server = await startServer({
          dataDir,
          host: process.env.XENSTACK_HOST || '127.0.0.1',
          port,
          natives: xenserverNatives(),
          notes,
          token: 'rotate:npm start',
        })
        return {
          url: server.url,
          token: server.newToken,
          docs: `${server.url}/api/docs`,
          state: server.context.state.location,
          environment,
          ...(notes.length ? { notes } : {}),
        }
      },
      async stop() {
        await server?.close()
      },
    },
  ]
})
