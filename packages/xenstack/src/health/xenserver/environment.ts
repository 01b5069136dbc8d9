/**
 * What the XenServer checks run against: an environment of the state store opened the way the deployment engine
 * opens it (`loadDeployableEnvironment`: node access from the node records, one XAPI connection per pool, the
 * merged settings with passwords revealed and the release models), plus each compute node's dom0 through the
 * integration's `dom0Of` (ssh over the HIMN from the compute VM, dom0's host key pinned). Checks get a native
 * task's context for a node, so the integration's own functions (expected config values, route and NAT
 * resources, the pre-test) compute what "deployed" means — the checks never re-derive it.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { NativeTaskContext } from '../../engine/tasks.js'
import { loadDeployableEnvironment } from '../../engine/environment.js'
import type { PlanTask } from '../../engine/types.js'
import { dom0Of } from '../../integration/dom0-access.js'
import { Secret, type Executor } from '../../node/index.js'
import { mapPasswords } from '../../state/secrets.js'
import type { NodeRecord, StateStore } from '../../state/store.js'
import type { EnvironmentDescription, OpenedEnvironment } from '../runner.js'
import { environmentTags } from '../tags.js'

export interface XenServerHealthEnv {
  name: string
  /** Merged settings, passwords revealed (each also wrapped in a `Secret`, so `redact` scrubs it everywhere). */
  settings: Record<string, unknown>
  /** release {name, version}, cluster, networking_parameters … as native tasks see them. */
  models: Record<string, unknown>
  nodes: NodeRecord[]
  computes: NodeRecord[]
  controllers: NodeRecord[]
  /** Nodes on the storage network only (cinder). */
  storageNodes: NodeRecord[]
  exec(node: string): Promise<Executor>
  /** The compute node's dom0 (through the compute VM). */
  dom0(node: string): Promise<Executor>
  /** The XAPI connection of the node's pool (throws naming the node when it has none). */
  xapi(node: string): Xapi
  /** The pools the environment's nodes name, with their XAPI URL (for the session count). */
  pools: { name: string; url: string; xapi: Xapi }[]
  /** A native task's context for a node, for the integration's own helpers. */
  nativeContext(node: string): Promise<NativeTaskContext>
  signal?: AbortSignal
}

const isController = (n: NodeRecord) => n.roles.some((r) => r === 'controller' || r === 'primary-controller')

/** Tags and release version of an environment (cheap: the state store only). */
export function describeEnvironment(state: StateStore, name: string): EnvironmentDescription {
  const env = state.environments.require(name)
  const release = state.releases.get(env.release)
  return {
    tags: environmentTags({
      plugins: env.plugins,
      components: env.components,
      cluster: state.environments.cluster(name),
      settings: state.environments.settings(name),
      operatingSystem: release?.operatingSystem,
      nodes: state.environments.nodes(name),
    }),
    releaseVersion: release?.version ?? env.release,
  }
}

export async function openXenServerEnvironment(
  state: StateStore,
  name: string,
): Promise<OpenedEnvironment<XenServerHealthEnv>> {
  const deployable = loadDeployableEnvironment(state, name)
  const nodes = state.environments.nodes(name)
  const settings = (deployable.models.settings as Record<string, unknown>) ?? {}
  // Remember every password as a Secret: anything a check stores (evidence, messages) is scrubbed of it.
  mapPasswords(settings, (v) => {
    new Secret(v)
    return v
  })
  const poolNames = [...new Set(nodes.map((n) => n.data?.pool).filter((p): p is string => typeof p === 'string'))]
  const byName = new Map(nodes.map((n) => [n.name, n]))
  const require = (node: string): NodeRecord => {
    const n = byName.get(node)
    if (!n) throw new Error(`node ${node} is not part of environment ${name}`)
    return n
  }
  const xapi = (node: string): Xapi => {
    const x = deployable.xapi?.(require(node).name) as Xapi | undefined
    if (!x)
      throw new Error(
        `node ${node} of environment ${name} names no pool (data.pool), so its XenServer host cannot be asked through XAPI`,
      )
    return x
  }
  const exec = async (node: string) => (await deployable.access.executor(require(node).name)) as unknown as Executor
  const contexts = new Map<string, Promise<NativeTaskContext>>()
  const nativeContext = (node: string): Promise<NativeTaskContext> => {
    let p = contexts.get(node)
    if (!p) {
      p = (async () => {
        const rec = require(node)
        const pool = rec.data?.pool
        return {
          node,
          task: { id: 'health-check', node, type: 'native' } as unknown as PlanTask,
          exec: (await exec(node)) as unknown as NativeTaskContext['exec'],
          settings,
          models: deployable.models as Record<string, unknown>,
          facts: {},
          xapi: typeof pool === 'string' ? deployable.xapi?.(node) : undefined,
          nodeData: rec.data ?? {},
          log: () => {},
          signal: new AbortController().signal,
          dryRun: true,
        }
      })()
      p.catch(() => contexts.delete(node))
      contexts.set(node, p)
    }
    return p
  }
  const env: XenServerHealthEnv = {
    name,
    settings,
    models: deployable.models as Record<string, unknown>,
    nodes,
    computes: nodes.filter((n) => n.roles.includes('compute')),
    controllers: nodes.filter(isController),
    storageNodes: nodes.filter((n) => n.roles.includes('cinder')),
    exec,
    dom0: async (node) => dom0Of(await nativeContext(node)),
    xapi,
    pools: poolNames.map((p) => ({
      name: p,
      url: state.pools.require(p).url,
      xapi: xapi(nodes.find((n) => n.data?.pool === p)!.name),
    })),
    nativeContext,
  }
  return { env, close: () => deployable.close() }
}
