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
import { resolveDataDir, StateStore, type InstalledPlugin } from './state/store.js'

export const DEMO = 'demo'

/** Task types that run on a node (through its executor), as opposed to graph structure (stages, groups). */
const NODE_TASK_TYPES = new Set([
  'native',
  'shell',
  'puppet',
  'upload_file',
  'sync',
  'copy_files',
  'reboot',
  'cobbler_sync',
])

/**
 * What the simulator-only demo cannot do, by name: every task of the XenServer plugin runs on a node — a compute VM
 * over SSH, its dom0 through the HIMN, a controller — and without the lab there is none to reach.
 */
export function nodeLevelStepsNote(plugin: InstalledPlugin | undefined): string {
  const byRole = new Map<string, string[]>()
  for (const t of (plugin?.data.deploymentTasks ?? []) as { id?: unknown; type?: unknown; role?: unknown }[]) {
    if (typeof t.id !== 'string' || !NODE_TASK_TYPES.has(String(t.type))) continue
    const roles = Array.isArray(t.role) ? t.role.map(String).join('/') : String(t.role ?? 'any node')
    byRole.set(roles, [...(byRole.get(roles) ?? []), t.id])
  }
  const steps = [...byRole].map(([roles, ids]) => `on ${roles}: ${ids.join(', ')}`).join('; ')
  return (
    `environment ${DEMO} cannot be deployed without the lab (run as root on Linux): these node-level steps need SSH ` +
    `to its nodes and cannot run${steps ? ` — ${steps}` : ''}. Settings, pools and the simulated pool's hosts and ` +
    `VMs work`
  )
}

/**
 * The simulator-only demo: the simulator as pool `demo`, an environment `demo` on it (XenServer when installed).
 * Returns the note naming the node-level steps it cannot run.
 */
function simulatorDemo(dataDir: string, url: string, password: string): string {
  const store = StateStore.open({ dataDir })
  try {
    ensureShippedPlugins(store)
    const release = resolveRelease(store)
    const xs = compatiblePlugins(store, release).find((p) => p.name === XENSERVER_PLUGIN)
    store.transaction(() => {
      if (!store.pools.get(DEMO)) store.pools.add({ name: DEMO, url, username: 'root', password })
      else store.pools.update(DEMO, { url, password })
      if (store.environments.get(DEMO)) return
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
    return nodeLevelStepsNote(xs)
  } finally {
    store.close()
  }
}

registerMainJobServices(async () => {
  let server: RunningServer | undefined
  let starting: Promise<unknown> | undefined
  const start = async (previous: Record<string, unknown>): Promise<Record<string, unknown>> => {
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
      notes.push(simulatorDemo(dataDir, mainPool.sim.url, mainPool.simPassword))
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
  }
  return [
    {
      name: 'server',
      start(previous) {
        const p = start(previous)
        starting = p
        return p
      },
      async stop() {
        await starting?.catch(() => undefined)
        await server?.close()
      },
    },
  ]
})
