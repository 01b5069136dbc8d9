/**
 * Registers a lab as an environment in xenstack's state store (`lab up`), ready for `xenstack deploy <name>`,
 * through the plugin framework's `createEnvironment` — the same path as `xenstack env create` — so the release's
 * settings, the component selection and the enabled plugins' attributes are all there and validated:
 *
 * - the lab's simulated pool is recorded in `store.pools` under the lab's name (URL, root, the password encrypted);
 * - xenstack's shipped plugins are installed first if this store has never had them (integration/shipped.ts);
 * - when the XenServer plugin is installed, the component `hypervisor:xenserver` replaces the release's default
 *   hypervisor (which enables the plugin) and its settings get the lab's credentials (username root, the pool's
 *   password — stored encrypted) and `allow_vm_restart: true` (the lab consents to the HIMN shutdown/start cycle);
 * - the cluster's `public_vip` and `management_vip` are the first controller's management address (the lab has no
 *   public network; nova's noVNC base URL needs one);
 * - nodes: the compute VMs (role compute), the controllers (primary-controller for the first, controller for the
 *   others) and the storage node (cinder), each with `data`: `lab`, `pool`, `xapiHost`, `vm` (the compute VM's XAPI
 *   ref), `ssh`, `addresses` (with their real prefixes) and, for a compute VM, `dom0: { name, xapiHost, host, ssh }`.
 *
 * `lab down` removes the environment and the pool again, but only what the lab registered: an environment whose
 * nodes all carry `data.lab` = the lab's name, and a pool of that name that points at a loopback simulator. Both
 * registering again and removing forget the engine's deployments of the environment: a lab's hosts are new each
 * time it comes up, so an old deployment's redeploy digests must not mark tasks on them as done.
 */
import { ensureShippedPlugins } from '../integration/shipped.js'
import { EnvironmentError, compatiblePlugins, createEnvironment, resolveRelease } from '../plugins/environment.js'
import { EngineStore } from '../engine/store.js'
import { StateStore, type InstalledPlugin } from '../state/store.js'
import type { LabDescription } from './supervisor.js'

export interface RegisterOptions {
  /** State store data directory (default: XENSTACK_HOME or ~/.xenstack). */
  dataDir?: string
  /** Release name or version (default: the first shipped release). */
  release?: string
  /** Progress and notes (a shipped plugin that could not be installed); default: none. */
  log?: (line: string) => void
}

/** The XenServer plugin's name (plugins/xenserver/metadata.yaml) and the component that enables it. */
export const XENSERVER_PLUGIN = 'xenserver'
const XENSERVER_COMPONENT = 'hypervisor:xenserver'

export function registerLabEnvironment(
  desc: LabDescription,
  password: string,
  refs: Record<string, string> = {},
  opts: RegisterOptions = {},
): string {
  const store = StateStore.open({ dataDir: opts.dataDir })
  try {
    const name = desc.name
    if (store.environments.get(name)) {
      if (!isLabEnvironment(store, name))
        throw new Error(`environment "${name}" exists and was not made by the lab; choose another lab name`)
    }
    const pool = store.pools.get(name)
    if (pool && !isLabPool(pool.url))
      throw new Error(`pool "${name}" exists (${pool.url}) and was not made by the lab; choose another lab name`)

    // xenstack's shipped plugins (the XenServer plugin) are installed the first time a store is used, as the CLI does
    for (const note of ensureShippedPlugins(store).notes) opts.log?.(`note: ${note}`)
    const release = resolveRelease(store, opts.release)
    const xs = compatiblePlugins(store, release).find((p) => p.name === XENSERVER_PLUGIN)
    const nodes = labNodes(desc, refs, name)
    // a lab registered again is new hosts under the old names: what the engine remembers of the old ones (history,
    // redeploy digests that would skip tasks as done) goes with the old environment, as `env delete` does
    const engine = new EngineStore(store.db)
    store.transaction(() => {
      engine.forgetEnvironment(name)
      if (store.environments.get(name)) store.environments.delete(name)
      if (pool) store.pools.remove(name)
      store.pools.add({
        name,
        url: desc.simulator.url,
        username: desc.simulator.username,
        password,
        // the lab's simulator speaks plain HTTP on loopback; TLS options stay at their (verifying) default
      })
      try {
        const env = createEnvironment(store, {
          name,
          release: release.name,
          ...(xs ? xenserverSelection(release.components, xs, desc.simulator.username, password) : {}),
          nodes,
        })
        // the lab has no public network: its first controller's management address is where users (noVNC) and
        // services reach the environment, as Fuel's public and management VIPs are on a real one
        const vip = desc.hosts.find((h) => h.role === 'controller')?.addresses.management?.split('/')[0]
        if (vip)
          store.environments.setCluster(env.name, {
            ...store.environments.cluster(env.name),
            public_vip: vip,
            management_vip: vip,
          })
      } catch (e) {
        // the messages name settings, never their values
        if (e instanceof EnvironmentError) throw new Error(`lab ${name}: ${e.message}`)
        throw e
      }
    })
    return name
  } finally {
    store.close()
  }
}

/** Removes the environment and pool a lab registered (nothing when there are none, or they are not the lab's). */
export function unregisterLabEnvironment(name: string, opts: RegisterOptions = {}): boolean {
  const store = StateStore.open({ dataDir: opts.dataDir })
  try {
    let removed = false
    store.transaction(() => {
      if (store.environments.get(name) && isLabEnvironment(store, name)) {
        new EngineStore(store.db).forgetEnvironment(name)
        store.environments.delete(name)
        removed = true
      }
      const pool = store.pools.get(name)
      if (pool && isLabPool(pool.url) && store.pools.nodesUsing(name).length === 0) store.pools.remove(name)
    })
    return removed
  } finally {
    store.close()
  }
}

/** Components with the XenServer hypervisor instead of the release's default one, and the plugin's settings. */
function xenserverSelection(
  components: { name: string; default?: boolean }[],
  xs: InstalledPlugin,
  username: string,
  password: string,
): { components: string[]; plugins: { name: string; version: string }[]; settings: Record<string, unknown> } {
  const provides = ((xs.data.components ?? []) as { name: string }[]).some((c) => c.name === XENSERVER_COMPONENT)
  const defaults = components.filter((c) => c.default).map((c) => c.name)
  const attrs = xs.data.attributes ?? {}
  const settings: Record<string, unknown> = {}
  const set = (key: string, value: unknown) => {
    // only the attributes this version of the plugin has (an older one may lack allow_vm_restart)
    if (attrs[key] && typeof attrs[key] === 'object') settings[`${XENSERVER_PLUGIN}.${key}.value`] = value
  }
  set('username', username)
  set('password', password)
  set('allow_vm_restart', true)
  return {
    components: provides ? [...defaults.filter((c) => !c.startsWith('hypervisor:')), XENSERVER_COMPONENT] : defaults,
    plugins: [{ name: xs.name, version: xs.version }],
    settings,
  }
}

function labNodes(
  desc: LabDescription,
  refs: Record<string, string>,
  pool: string,
): { name: string; roles: string[]; data: Record<string, unknown> }[] {
  const out: { name: string; roles: string[]; data: Record<string, unknown> }[] = []
  let controllers = 0
  for (const h of desc.hosts) {
    let roles: string[]
    if (h.role === 'compute') roles = ['compute']
    else if (h.role === 'controller') roles = [controllers++ === 0 ? 'primary-controller' : 'controller']
    else if (h.role === 'storage') roles = ['cinder']
    else continue // dom0s are XenServer hosts, reached through their compute VM and XAPI
    const dom0 =
      h.role === 'compute' ? desc.hosts.find((d) => d.role === 'dom0' && d.xapiHost === h.xapiHost) : undefined
    out.push({
      name: h.name,
      roles,
      data: {
        lab: desc.name,
        // controllers and storage are not VMs of the pool here, but they belong to the lab's one pool
        pool,
        xapiHost: h.xapiHost,
        vm: refs[h.name],
        ssh: h.ssh,
        addresses: h.addresses,
        dom0: dom0 ? { name: dom0.name, xapiHost: dom0.xapiHost, host: refs[dom0.name], ssh: dom0.ssh } : undefined,
        // the controller's Glance, where xenstack (xenserver.test-image) reaches it
        glance: glanceOf(desc, h.name),
      },
    })
  }
  return out
}

function glanceOf(desc: LabDescription, host: string): { url: string } | undefined {
  const g = desc.services.find((s) => s.name === 'glance' && s.host === host)
  const url = g?.adminUrl ?? g?.url
  return url ? { url } : undefined
}

function isLabEnvironment(store: StateStore, name: string): boolean {
  const nodes = store.environments.nodes(name)
  if (nodes.length) return nodes.every((n) => n.data?.lab === name)
  // registered by an older xenstack: the lab's name was in the settings
  return store.environments.settings(name).lab?.name?.value === name
}

/** The lab's pools point at its simulator, which listens on loopback only. */
function isLabPool(url: string): boolean {
  try {
    return /^127\.\d+\.\d+\.\d+$/.test(new URL(url).hostname)
  } catch {
    return false
  }
}
