/**
 * A lab registered as an environment exactly as `xenstack lab up` does (XenServer plugin installed, pool recorded,
 * nodes with their data, the public VIP) and deployed through the engine with the integration's native tasks — the
 * state the health checks are meant to verify. Nothing is added by hand: SSH trust installs the compute VMs' keys in
 * dom0 through the deployer's direct access (the node's `dom0.ssh`), the bundled dom0 plugin set answers the
 * release's version check (Mitaka's `nova_plugin_version`), and the lab's controllers are Fuel controllers
 * (lab/controller-role.ts). One per test file.
 */
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'
import { withLab, type Lab } from '../../src/lab/index.js'
import { describeLab } from '../../src/lab/supervisor.js'
import { registerLabEnvironment } from '../../src/lab/environment.js'
import { buildPlugin, installPlugin } from '../../src/plugins/lifecycle.js'
import { builtinReleases } from '../../src/releases/release.js'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { loadDeployableEnvironment } from '../../src/engine/environment.js'
import { deployEnvironment } from '../../src/engine/deployment.js'
import type { NativeTaskContext } from '../../src/engine/tasks.js'
import type { PlanTask } from '../../src/engine/types.js'
import { apply, type Executor, type Resource } from '../../src/node/index.js'
import { xenserverNatives } from '../../src/integration/index.js'
import type { LabSimulatorOptions } from '../../src/lab/index.js'
import { glanceInstalled } from '../../src/glance/index.js'
import '../../src/integration/lab-services.js'
import { requirePrerequisite } from '@xenstack/testkit'
import { labPrerequisite } from '../node/helpers.js'
import { XENSERVER_COMPUTE_HANDLERS } from '../integration/xenserver-handlers.js'

const scratch = scratchDirs()
const XS_PLUGIN_DIR = fileURLToPath(new URL('../../../../../plugins/xenserver', import.meta.url))

export interface DeployedLab {
  lab: Lab
  state: StateStore
  env: string
  /** Deploys (again) through the engine; throws with the task errors unless the deployment is ready. */
  deploy(opts?: { force?: boolean }): Promise<void>
  /** Runs the XenServer native tasks directly, in the plugin's order (resources applied, then run). */
  deployXenServer(): Promise<void>
  /** Runs some of them again on a node (a partial redeploy: what repairs one broken thing). */
  runNatives(node: string, handlers: string[]): Promise<void>
}

/**
 * The plugin's native tasks per role, in deployment_tasks.yaml's order; on a compute node the steps after the guest
 * tools check (which only checks the VM's guest agent).
 */
export const COMPUTE_NATIVES = XENSERVER_COMPUTE_HANDLERS.filter((h) => h !== 'xenserver.guest-tools')
export const CONTROLLER_NATIVES = ['xenserver.controller-vnc-cache']
export const PRIMARY_CONTROLLER_NATIVES = [...CONTROLLER_NATIVES, 'xenserver.test-image']

export async function withDeployedLab(
  t: TestContext,
  opts: { simulator?: LabSimulatorOptions; controllers?: number; glance?: boolean },
  fn: (d: DeployedLab) => Promise<void>,
): Promise<void> {
  if (!(await labPrerequisite(t))) return
  const glance = opts.glance !== false
  if (glance && !requirePrerequisite(t, 'python3-glance (./scripts/setup.sh)', glanceInstalled)) return
  const dataDir = scratch('xenstack-health-lab-')
  // The image task caches its TestVM build in xenstack's data directory.
  const home = process.env.XENSTACK_HOME
  process.env.XENSTACK_HOME = dataDir
  t.after(() => {
    if (home === undefined) delete process.env.XENSTACK_HOME
    else process.env.XENSTACK_HOME = home
  })
  const lab = {
    hosts: 1,
    controllers: opts.controllers ?? 1,
    storageNode: glance,
    simulator: opts.simulator ?? true,
    services: glance ? [{ kind: 'glance' }] : [],
  }
  await withLab(lab, async (lab) => {
    const release = builtinReleases()[0]!
    const options = { coreTasks: release.tasks, releaseName: release.name, releaseComponents: release.components }
    const built = buildPlugin(XS_PLUGIN_DIR, scratch('xenstack-health-build-'), options)
    const state = StateStore.open({ dataDir })
    try {
      installPlugin(state, built.file, options)
      const desc = describeLab(lab, 0)
      const env = registerLabEnvironment(desc, lab.simulator!.password, Object.fromEntries(lab.simulator!.refs), {
        dataDir,
      })
      const engine = new EngineStore(state.db as never)
      const deploy = async (o: { force?: boolean } = {}) => {
        const d = loadDeployableEnvironment(state, env, { natives: xenserverNatives() })
        try {
          const r = await deployEnvironment(engine, d, { force: o.force })
          if (r.kind !== 'deployment' || r.summary.status !== 'ready')
            throw new Error(
              `lab deployment did not succeed: ${JSON.stringify(r.kind === 'deployment' ? r.summary.errors : r, null, 1).slice(0, 4000)}`,
            )
        } finally {
          await d.close()
        }
      }
      const runNatives = async (only: string | undefined, list: string[]) => {
        const d = loadDeployableEnvironment(state, env, { natives: xenserverNatives() })
        const natives = xenserverNatives()
        try {
          const runOn = async (node: string, handlers: string[]) => {
            for (const h of handlers) {
              const task = natives.get(h)
              if (!task) throw new Error(`no native task ${h}`)
              const exec = await d.access.executor(node)
              const ctx: NativeTaskContext = {
                node,
                task: { id: h, node, type: 'native', parameters: { handler: h } } as unknown as PlanTask,
                exec,
                settings: (d.models.settings as Record<string, unknown>) ?? {},
                models: d.models as Record<string, unknown>,
                facts: {},
                xapi: d.xapi?.(node),
                nodeData: d.nodeData?.(node) ?? {},
                log: () => {},
                signal: new AbortController().signal,
                dryRun: false,
              }
              try {
                const resources = ((await task.resources?.(ctx)) ?? []) as Resource[]
                if (resources.length) {
                  const r = await apply(exec as unknown as Executor, resources)
                  if (!r.ok) throw new Error(JSON.stringify(r.entries.filter((e) => e.status === 'failed')))
                }
                await task.run?.(ctx)
              } catch (e) {
                throw new Error(`${node}: ${h}: ${(e as Error).message}`, { cause: e })
              }
            }
          }
          const nodes = state.environments.nodes(env)
          if (only) await runOn(only, list)
          else {
            for (const n of nodes.filter((x) => x.roles.includes('compute'))) await runOn(n.name, list)
            // the lab's controllers have a Fuel controller's nova.conf (lab/controller-role.ts), which the
            // controller task edits; the primary one also runs Glance for TestVM
            for (const n of nodes.filter((x) => x.roles.includes('primary-controller')))
              await runOn(n.name, PRIMARY_CONTROLLER_NATIVES)
            for (const n of nodes.filter((x) => x.roles.includes('controller'))) await runOn(n.name, CONTROLLER_NATIVES)
          }
        } finally {
          await d.close()
        }
      }
      await fn({
        lab,
        state,
        env,
        deploy,
        deployXenServer: () => runNatives(undefined, COMPUTE_NATIVES),
        runNatives: (node, handlers) => runNatives(node, handlers),
      })
    } finally {
      state.close()
    }
  })
}
