/**
 * Connection profiles as the CLI reads them: the state store's pools (state/pools.ts; password encrypted at rest,
 * revealed here only to hand to the client).
 */
import { StateStore } from '../state/store.js'
import { tlsOptions } from '../state/pools.js'
import type { TlsOptions } from '@xenstack/xenapi'
import { CliError, ExitCode } from './errors.js'

export interface PoolProfile {
  name: string
  url: string
  username: string
  /** Decrypted for the connection only; never printed. */
  password: string
  tls?: TlsOptions
}

export function lookupPoolProfile(name: string, dataDir?: string): PoolProfile {
  const store = StateStore.open({ dataDir })
  try {
    const p = store.pools.get(name, { reveal: true })
    if (!p) {
      const known = store.pools.list().map((x) => x.name)
      throw new CliError(
        `no pool profile "${name}"`,
        ExitCode.notFound,
        known.length ? `profiles: ${known.join(', ')}` : 'add one: xenstack pool add NAME --url URL --username USER',
      )
    }
    return { name: p.name, url: p.url, username: p.username, password: p.password, tls: tlsOptions(p.tls) }
  } finally {
    store.close()
  }
}
