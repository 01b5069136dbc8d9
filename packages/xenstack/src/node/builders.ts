/**
 * Small builders for the shapes deployments use most: many keys of one ini file, a chain with its rules, and one
 * executor per host shared by every task that touches it.
 */
import type { Executor } from './executor.js'
import type { Resource } from './resource.js'
import { type IniOptions, IniSetting } from './resources/file.js'
import { IptablesChain, IptablesPersist, IptablesRule, type IptablesRuleOptions } from './resources/iptables.js'
import type { MaybeSecret } from './secret.js'

/**
 * One `IniSetting` per key, in the order given: `iniSettings('/etc/nova/nova-compute.conf', { DEFAULT: {
 * compute_driver: 'xenapi.XenAPIDriver' }, xenserver: { connection_password: password } })`. A value of `null`
 * removes the key.
 */
export function iniSettings(
  path: string,
  sections: Record<string, Record<string, MaybeSecret | null>>,
  options: Omit<IniOptions, 'path' | 'section' | 'key' | 'value' | 'ensure'> = {},
): IniSetting[] {
  const out: IniSetting[] = []
  for (const [section, keys] of Object.entries(sections))
    for (const [key, value] of Object.entries(keys))
      out.push(
        value === null
          ? new IniSetting({ ...options, path, section, key, ensure: 'absent' })
          : new IniSetting({ ...options, path, section, key, value }),
      )
  return out
}

export interface FirewallOptions {
  table?: string
  /** A user chain to create first (e.g. `XenServer-Neutron-INPUT`), with a jump to it inserted in `jumpFrom`. */
  chain?: string
  jumpFrom?: string
  rules: Omit<IptablesRuleOptions, 'table'>[]
  /** Save the running rules with the OS's mechanism at the end (default true). */
  persist?: boolean
  persistPath?: string
}

/** A chain (optional), its rules, the jump into it and the save, as ordered resources. */
export function firewall(options: FirewallOptions): Resource[] {
  const table = options.table ?? 'filter'
  const out: Resource[] = []
  if (options.chain) out.push(new IptablesChain({ table, chain: options.chain }))
  for (const r of options.rules) out.push(new IptablesRule({ ...r, table }))
  if (options.chain && options.jumpFrom)
    out.push(new IptablesRule({ table, chain: options.jumpFrom, rule: ['-j', options.chain], position: 'insert' }))
  if (options.persist !== false) out.push(new IptablesPersist(options.persistPath ? { path: options.persistPath } : {}))
  return out
}

/**
 * One executor per host, created on first use and shared (so every task on a host reuses its one SSH connection);
 * `closeAll` at the end of a deployment.
 */
export class ExecutorPool {
  readonly #executors = new Map<string, Executor>()

  get(key: string, create: () => Executor): Executor {
    let e = this.#executors.get(key)
    if (!e) {
      e = create()
      this.#executors.set(key, e)
    }
    return e
  }

  async closeAll(): Promise<void> {
    const all = [...this.#executors.values()]
    this.#executors.clear()
    await Promise.allSettled(all.map((e) => e.close()))
  }
}
