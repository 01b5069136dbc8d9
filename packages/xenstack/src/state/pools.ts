/**
 * XenServer pools in the state store: where a pool's XAPI is (the master's URL), who logs in, and how its TLS
 * certificate is trusted. Nodes name their pool in `data.pool`; the deployment engine connects once per pool.
 *
 * The password is kept only encrypted (`enc:v1:…`, SecretBox); reads return `********` unless the caller asks
 * for `reveal` (the code that connects). TLS verification is on by default: system CAs, or a given CA bundle, or a
 * pinned SHA-256 fingerprint of the master's certificate; `verify: false` must be asked for explicitly.
 */
import { Xapi, connect, normaliseFingerprint, type ConnectOptions, type TlsOptions } from '@xenstack/xenapi'
import { REDACTED, SecretBox } from './secrets.js'
import { StateError, type SqliteDatabase, type StateStore } from './store.js'

export interface PoolTls {
  /** Verify the master's certificate (default true). Ignored when `fingerprint` is set: the pin decides. */
  verify: boolean
  /** PEM CA certificate(s) trusted instead of the system store. */
  ca?: string
  /** SHA-256 fingerprint of the master's certificate (64 hex digits, normalised to lower case without colons). */
  fingerprint?: string
}

export interface PoolRecord {
  name: string
  /** The pool master's XAPI endpoint, `https://host[:port]` (or `http://` for a simulator on loopback). */
  url: string
  username: string
  /** `********` unless read with `reveal`. */
  password: string
  tls: PoolTls
  createdAt: string
  updatedAt: string
}

export interface PoolInput {
  name: string
  url: string
  username: string
  password: string
  tls?: Partial<PoolTls>
}

export type PoolChange = Partial<Omit<PoolInput, 'name'>>

interface PoolRow {
  name: string
  url: string
  username: string
  password: string
  tls_json: string
  created_at: string
  updated_at: string
}

const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

export class PoolRepository {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly secrets: SecretBox,
  ) {}

  /** Records a pool; its name must be new. */
  add(p: PoolInput): PoolRecord {
    if (!POOL_NAME.test(p.name)) {
      throw new StateError(`pool name "${p.name}" is invalid (expected letters, digits, "_", "." or "-")`, 'invalid')
    }
    if (this.row(p.name)) throw new StateError(`pool "${p.name}" already exists`, 'conflict')
    const url = checkUrl(p.name, p.url)
    const username = checkUsername(p.name, p.username)
    const password = this.seal(p.name, p.password)
    const tls = checkTls(p.name, p.tls ?? {})
    const t = new Date().toISOString()
    this.db
      .prepare(
        'INSERT INTO pools (name, url, username, password, tls_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(p.name, url, username, password, JSON.stringify(tls), t, t)
    return this.require(p.name)
  }

  get(name: string, options: { reveal?: boolean } = {}): PoolRecord | undefined {
    const r = this.row(name)
    return r && this.hydrate(r, options.reveal === true)
  }

  /** Like `get`, but a missing pool is a `not_found` error naming it. */
  require(name: string, options: { reveal?: boolean } = {}): PoolRecord {
    const p = this.get(name, options)
    if (!p) throw new StateError(`pool "${name}" does not exist`, 'not_found')
    return p
  }

  list(options: { reveal?: boolean } = {}): PoolRecord[] {
    const rows = this.db.prepare('SELECT * FROM pools ORDER BY name').all() as PoolRow[]
    return rows.map((r) => this.hydrate(r, options.reveal === true))
  }

  /** Changes some fields; `tls` fields given replace those stored, the others stay. */
  update(name: string, change: PoolChange): PoolRecord {
    const current = this.require(name)
    const url = change.url === undefined ? current.url : checkUrl(name, change.url)
    const username = change.username === undefined ? current.username : checkUsername(name, change.username)
    const tls = change.tls === undefined ? current.tls : checkTls(name, { ...current.tls, ...change.tls })
    const stored = this.row(name)!
    const password = change.password === undefined ? stored.password : this.seal(name, change.password)
    this.db
      .prepare('UPDATE pools SET url = ?, username = ?, password = ?, tls_json = ?, updated_at = ? WHERE name = ?')
      .run(url, username, password, JSON.stringify(tls), new Date().toISOString(), name)
    return this.require(name)
  }

  /** Removes a pool; refused while a node of any environment names it in `data.pool`. */
  remove(name: string): void {
    this.require(name)
    const users = this.nodesUsing(name)
    if (users.length) {
      throw new StateError(
        `Can't remove pool "${name}": node${users.length > 1 ? 's' : ''} ${users.join(', ')} belong${users.length > 1 ? '' : 's'} to it`,
        'conflict',
      )
    }
    this.db.prepare('DELETE FROM pools WHERE name = ?').run(name)
  }

  /** `<environment>/<node>` of every node whose `data.pool` is this pool. */
  nodesUsing(name: string): string[] {
    const rows = this.db
      .prepare(
        'SELECT e.name AS env, n.name AS node, n.data_json FROM nodes n JOIN environments e ON e.id = n.environment_id ORDER BY e.name, n.name',
      )
      .all() as { env: string; node: string; data_json: string }[]
    return rows
      .filter((r) => (JSON.parse(r.data_json) as { pool?: unknown })?.pool === name)
      .map((r) => `${r.env}/${r.node}`)
  }

  private row(name: string): PoolRow | undefined {
    return this.db.prepare('SELECT * FROM pools WHERE name = ?').get(name) as PoolRow | undefined
  }

  private hydrate(r: PoolRow, reveal: boolean): PoolRecord {
    return {
      name: r.name,
      url: r.url,
      username: r.username,
      password: reveal ? this.secrets.decrypt(r.password) : REDACTED,
      tls: JSON.parse(r.tls_json) as PoolTls,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }
  }

  private seal(pool: string, password: string): string {
    if (typeof password !== 'string' || password === '') {
      throw new StateError(`pool "${pool}": password is required (a non-empty string)`, 'invalid')
    }
    if (password === REDACTED) {
      // A redacted read written back would replace the real password by asterisks.
      throw new StateError(
        `pool "${pool}": password "${REDACTED}" is the redacted placeholder, not a password`,
        'invalid',
      )
    }
    return SecretBox.isEncrypted(password) ? password : this.secrets.encrypt(password)
  }
}

function checkUrl(pool: string, url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new StateError(`pool "${pool}": url "${url}" is not a URL (expected https://host[:port])`, 'invalid')
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new StateError(`pool "${pool}": url "${url}" must use https:// (or http://), not ${u.protocol}`, 'invalid')
  }
  if (u.username || u.password) {
    // Credentials in the URL would be stored in plain text: they belong in username/password.
    throw new StateError(
      `pool "${pool}": url must not carry credentials; give username and password instead`,
      'invalid',
    )
  }
  if (u.pathname !== '/' || u.search || u.hash) {
    throw new StateError(`pool "${pool}": url "${url}" must be the endpoint only (scheme, host, port)`, 'invalid')
  }
  return u.origin
}

function checkUsername(pool: string, username: string): string {
  if (typeof username !== 'string' || username.trim() === '') {
    throw new StateError(`pool "${pool}": username is required`, 'invalid')
  }
  return username
}

function checkTls(pool: string, tls: Partial<PoolTls>): PoolTls {
  const out: PoolTls = { verify: tls.verify ?? true }
  if (typeof out.verify !== 'boolean') {
    throw new StateError(
      `pool "${pool}": tls.verify must be true or false, got ${JSON.stringify(tls.verify)}`,
      'invalid',
    )
  }
  if (tls.ca !== undefined && tls.ca !== '') {
    if (typeof tls.ca !== 'string' || !tls.ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new StateError(
        `pool "${pool}": tls.ca must be PEM certificate text (-----BEGIN CERTIFICATE-----…)`,
        'invalid',
      )
    }
    out.ca = tls.ca
  }
  if (tls.fingerprint !== undefined && tls.fingerprint !== '') {
    const fp = normaliseFingerprint(String(tls.fingerprint))
    if (!/^[0-9a-f]{64}$/.test(fp)) {
      throw new StateError(
        `pool "${pool}": tls.fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed), got ${JSON.stringify(tls.fingerprint)}`,
        'invalid',
      )
    }
    out.fingerprint = fp
  }
  return out
}

/** The client's TLS options for a pool record. */
export function tlsOptions(tls: PoolTls): TlsOptions & { ca?: string } {
  if (tls.fingerprint) return { fingerprint: tls.fingerprint }
  if (!tls.verify) return { insecure: true }
  return tls.ca ? { ca: tls.ca } : {}
}

/** Connect options for a pool (the password revealed: pass them only to the client). */
export function poolConnectOptions(
  store: StateStore,
  name: string,
  extra: Omit<ConnectOptions, 'url' | 'username' | 'password' | 'tls'> = {},
): ConnectOptions {
  const p = store.pools.require(name, { reveal: true })
  return { ...extra, url: p.url, username: p.username, password: p.password, tls: tlsOptions(p.tls) }
}

/** A logged-in XenAPI connection to the pool's master; the caller closes it. */
export async function connectPool(
  store: StateStore,
  name: string,
  extra: Omit<ConnectOptions, 'url' | 'username' | 'password' | 'tls'> = {},
): Promise<Xapi> {
  const options = poolConnectOptions(store, name, extra)
  try {
    return await connect(options)
  } catch (e) {
    throw new Error(`pool "${name}" (${options.url}): cannot log in as ${options.username}: ${(e as Error).message}`, {
      cause: e,
    })
  }
}

/**
 * One XenAPI connection per pool, made on first use and reused (the deployment engine's `xapi(node)`): the
 * client logs in on its first call, so handing the connection out costs nothing until a task uses it.
 */
export class PoolConnections {
  private readonly open = new Map<string, Xapi>()

  constructor(
    private readonly store: StateStore,
    private readonly extra: Omit<ConnectOptions, 'url' | 'username' | 'password' | 'tls'> = {},
  ) {}

  get(pool: string): Xapi {
    let x = this.open.get(pool)
    if (!x) {
      x = new Xapi(poolConnectOptions(this.store, pool, this.extra))
      this.open.set(pool, x)
    }
    return x
  }

  /** Logs out of every pool used. */
  async close(): Promise<void> {
    const all = [...this.open.values()]
    this.open.clear()
    await Promise.allSettled(all.map((x) => x.close()))
  }
}
