/**
 * Registers a lab as an environment in xenstack's state store (`lab up`), ready for `xenstack deploy <name>`:
 * the environment has the lab's name and the first shipped release; its settings hold the lab's pool (XAPI URL,
 * username, and the password as a `type: password` setting, which the store keeps encrypted); its nodes are the
 * compute VMs (role compute), the controllers (primary-controller for the first, controller for the others) and the
 * storage node (cinder), each with what the lab knows (XAPI host/VM, SSH endpoint, addresses, its dom0). The
 * XenServer plugin is enabled when it is installed. `lab down` removes the environment again, but only one the lab
 * registered (settings.lab.name equals the lab's name).
 */
import { StateStore } from '../state/store.js'
import { builtinReleases } from '../releases/release.js'
import type { LabDescription } from './supervisor.js'

export interface RegisterOptions {
  /** State store data directory (default: XENSTACK_HOME or ~/.xenstack). */
  dataDir?: string
}

export function registerLabEnvironment(
  desc: LabDescription,
  password: string,
  refs: Record<string, string> = {},
  opts: RegisterOptions = {},
): string {
  const store = StateStore.open({ dataDir: opts.dataDir })
  try {
    const name = desc.name
    const existing = store.environments.get(name)
    if (existing) {
      if (store.environments.settings(name).lab?.name?.value !== name)
        throw new Error(`environment "${name}" exists and was not made by the lab; choose another lab name`)
      store.environments.delete(name)
    }
    const release = builtinReleases()[0]?.name
    if (!release) throw new Error('no release is shipped with xenstack to register the lab environment with')
    store.transaction(() => {
      store.environments.create({
        name,
        release,
        status: 'new',
        settings: {
          lab: {
            name: { type: 'text', value: name },
            dir: { type: 'text', value: desc.dir },
          },
          xenserver: {
            url: { type: 'text', value: desc.simulator.url },
            username: { type: 'text', value: desc.simulator.username },
            password: { type: 'password', value: password },
          },
        },
      })
      let controllers = 0
      for (const h of desc.hosts) {
        let roles: string[]
        if (h.role === 'compute') roles = ['compute']
        else if (h.role === 'controller') roles = [controllers++ === 0 ? 'primary-controller' : 'controller']
        else if (h.role === 'storage') roles = ['cinder']
        else continue // dom0s are XenServer hosts, reached through their compute VM and XAPI
        const dom0 =
          h.role === 'compute' ? desc.hosts.find((d) => d.role === 'dom0' && d.xapiHost === h.xapiHost) : undefined
        store.environments.addNode(name, {
          name: h.name,
          roles,
          data: {
            lab: name,
            xapiHost: h.xapiHost,
            vm: refs[h.name],
            ssh: h.ssh,
            addresses: h.addresses,
            dom0: dom0 ? { name: dom0.name, xapiHost: dom0.xapiHost, host: refs[dom0.name], ssh: dom0.ssh } : undefined,
          },
        })
      }
      const xs = store.plugins.list().find((p) => /xenserver/i.test(p.name))
      if (xs) store.environments.setPlugin(name, xs.name, xs.version, true)
    })
    return name
  } finally {
    store.close()
  }
}

/** Removes the environment a lab registered (no-op when there is none, or it is not the lab's). */
export function unregisterLabEnvironment(name: string, opts: RegisterOptions = {}): boolean {
  const store = StateStore.open({ dataDir: opts.dataDir })
  try {
    if (!store.environments.get(name)) return false
    if (store.environments.settings(name).lab?.name?.value !== name) return false
    store.environments.delete(name)
    return true
  } finally {
    store.close()
  }
}
