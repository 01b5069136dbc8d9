/**
 * xenstack's state store: SQLite (better-sqlite3, WAL) under the data directory, schema migrations, small typed
 * repositories (plugins, releases, environments with settings, enabled plugins and nodes) and secrets.
 *
 * Data directory: `--data-dir`, else `$XENSTACK_HOME`, else `~/.xenstack` (created 0700). It holds `state.db`
 * (+ WAL files), `secret.key` (0600) and `plugins/<name>-<version>/` (installed plugin files).
 *
 * Passwords: every `type: password` setting is stored encrypted (`enc:v1:…`, see secrets.ts). Reads return
 * them redacted unless the caller asks for `reveal` (the deployment engine, which needs the value).
 */
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { PostgresDatabase } from './postgres.js'
import { openSqlite, redactUrl, type Backend, type Database } from './driver.js'
import { MIGRATIONS, type Migration } from './migrations.js'
import { PoolRepository } from './pools.js'
import { mapPasswords, redactPasswords, SecretBox } from './secrets.js'
import { recordDefaultStoreOpen, testDatabaseFor } from './test-databases.js'
import { foldEngineJournals } from '../engine/store.js'

/** The driver interface (driver.ts): better-sqlite3, or PostgreSQL when DATABASE_URL is set. */
export type SqliteDatabase = Database

/** The data directory: explicit, else $XENSTACK_HOME, else ~/.xenstack. */
export function resolveDataDir(explicit?: string): string {
  return resolve(explicit || process.env.XENSTACK_HOME || join(homedir(), '.xenstack'))
}

export class StateError extends Error {
  constructor(
    message: string,
    readonly code: 'not_found' | 'conflict' | 'invalid',
  ) {
    super(message)
    this.name = 'StateError'
  }
}

const now = () => new Date().toISOString()
const json = (v: unknown) => JSON.stringify(v ?? null)
const parse = <T>(s: string): T => JSON.parse(s) as T

/** Fuel's `<major>` of a plugin version: its first two components (2.0.2 → 2.0). */
export const pluginMajor = (version: string): string => version.split('.').slice(0, 2).join('.')

// ---------------------------------------------------------------------------------------------- plugins

export interface PluginFileRecord {
  path: string
  sha256: string
  size: number
}

/** What the plugin framework keeps of a loaded plugin (everything the server, UI and engine read). */
export interface PluginData {
  metadata: Record<string, any>
  attributes: Record<string, any>
  components: any[]
  deploymentTasks: any[]
  legacyTasks: any[]
  nodeRoles: Record<string, any>
  volumes?: Record<string, any>
  networkRoles: any[]
  nodeConfig: Record<string, any>
  nicConfig: Record<string, any>
  bondConfig: Record<string, any>
  nodeTags: Record<string, any>
}

export interface InstalledPlugin {
  id: string
  name: string
  version: string
  major: string
  packageVersion: string
  title: string
  description: string
  /** Where its files are (deployment scripts are synced from here). */
  dir: string
  archiveSha256?: string
  installedAt: string
  data: PluginData
  files: PluginFileRecord[]
}

interface PluginRow {
  id: string
  name: string
  version: string
  major: string
  package_version: string
  title: string
  description: string
  archive_sha256: string | null
  dir: string
  data_json: string
  installed_at: string
}

export class PluginRepository {
  constructor(private readonly db: SqliteDatabase) {}

  private hydrate(r: PluginRow): InstalledPlugin {
    const files = this.db
      .prepare('SELECT path, sha256, size FROM plugin_files WHERE plugin_id = ? ORDER BY path')
      .all(r.id) as PluginFileRecord[]
    return {
      id: r.id,
      name: r.name,
      version: r.version,
      major: r.major,
      packageVersion: r.package_version,
      title: r.title,
      description: r.description,
      dir: r.dir,
      archiveSha256: r.archive_sha256 ?? undefined,
      installedAt: r.installed_at,
      data: parse<PluginData>(r.data_json),
      files,
    }
  }

  list(): InstalledPlugin[] {
    const rows = this.db.prepare('SELECT * FROM plugins ORDER BY name, version').all() as PluginRow[]
    return rows.map((r) => this.hydrate(r))
  }

  get(name: string, version: string): InstalledPlugin | undefined {
    const r = this.db.prepare('SELECT * FROM plugins WHERE name = ? AND version = ?').get(name, version) as
      PluginRow | undefined
    return r && this.hydrate(r)
  }

  byName(name: string): InstalledPlugin[] {
    const rows = this.db.prepare('SELECT * FROM plugins WHERE name = ? ORDER BY version').all(name) as PluginRow[]
    return rows.map((r) => this.hydrate(r))
  }

  /** Records an installed plugin (the caller has validated it and put its files in `dir`). */
  add(p: Omit<InstalledPlugin, 'id' | 'installedAt' | 'major'>): InstalledPlugin {
    if (this.get(p.name, p.version)) {
      throw new StateError(`plugin ${p.name}==${p.version} is already installed`, 'conflict')
    }
    const id = randomUUID()
    this.db
      .prepare(
        `INSERT INTO plugins (id, name, version, major, package_version, title, description, archive_sha256, dir, data_json, installed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        p.name,
        p.version,
        pluginMajor(p.version),
        p.packageVersion,
        p.title,
        p.description,
        p.archiveSha256 ?? null,
        p.dir,
        json(p.data),
        now(),
      )
    const insert = this.db.prepare('INSERT INTO plugin_files (plugin_id, path, sha256, size) VALUES (?, ?, ?, ?)')
    for (const f of p.files) insert.run(id, f.path, f.sha256, f.size)
    return this.get(p.name, p.version)!
  }

  /** Environments that have this plugin version enabled. */
  enabledIn(name: string, version: string): string[] {
    const rows = this.db
      .prepare(
        `SELECT e.name FROM environment_plugins ep JOIN environments e ON e.id = ep.environment_id
         WHERE ep.plugin_name = ? AND ep.plugin_version = ? AND ep.enabled = 1 ORDER BY e.name`,
      )
      .all(name, version) as { name: string }[]
    return rows.map((r) => r.name)
  }

  /** Removes the record; refused while an environment has the plugin enabled (Fuel: 400 "Can't delete plugin…"). */
  remove(name: string, version: string): InstalledPlugin {
    const p = this.get(name, version)
    if (!p) throw new StateError(`plugin ${name}==${version} is not installed`, 'not_found')
    const envs = this.enabledIn(name, version)
    if (envs.length) {
      throw new StateError(
        `Can't delete plugin ${name}==${version}: it is enabled for environment${envs.length > 1 ? 's' : ''} ${envs.join(', ')}`,
        'conflict',
      )
    }
    this.db.prepare('DELETE FROM environment_plugins WHERE plugin_name = ? AND plugin_version = ?').run(name, version)
    this.db.prepare('DELETE FROM plugins WHERE id = ?').run(p.id)
    return p
  }

  /** Replaces an installed version by a newer one of the same major; environments follow to the new version. */
  replace(old: InstalledPlugin, next: Omit<InstalledPlugin, 'id' | 'installedAt' | 'major'>): InstalledPlugin {
    if (pluginMajor(old.version) !== pluginMajor(next.version)) {
      throw new StateError(
        `cannot update ${old.name} from ${old.version} to ${next.version}: the major version differs (${pluginMajor(old.version)} → ${pluginMajor(next.version)}); install it alongside instead`,
        'invalid',
      )
    }
    this.db.prepare('DELETE FROM plugins WHERE id = ?').run(old.id)
    const added = this.add(next)
    this.db
      .prepare('UPDATE environment_plugins SET plugin_version = ? WHERE plugin_name = ? AND plugin_version = ?')
      .run(next.version, old.name, old.version)
    return added
  }
}

// ---------------------------------------------------------------------------------------------- releases

export interface ReleaseRecord {
  name: string
  version: string
  operatingSystem: string
  /** `builtin` or the file it was loaded from. */
  source: string
  /** The release (settings, components, roles, networks, core tasks) as JSON. */
  data: Record<string, any>
  updatedAt: string
}

export class ReleaseRepository {
  constructor(private readonly db: SqliteDatabase) {}

  upsert(r: Omit<ReleaseRecord, 'updatedAt'>): void {
    this.db
      .prepare(
        `INSERT INTO releases (name, version, operating_system, source, data_json, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, operating_system = excluded.operating_system,
           source = excluded.source, data_json = excluded.data_json, updated_at = excluded.updated_at`,
      )
      .run(r.name, r.version, r.operatingSystem, r.source, json(r.data), now())
  }

  list(): ReleaseRecord[] {
    return (this.db.prepare('SELECT * FROM releases ORDER BY name').all() as any[]).map((r) => ({
      name: r.name,
      version: r.version,
      operatingSystem: r.operating_system,
      source: r.source,
      data: parse(r.data_json),
      updatedAt: r.updated_at,
    }))
  }

  get(name: string): ReleaseRecord | undefined {
    return this.list().find((r) => r.name === name)
  }
}

// ---------------------------------------------------------------------------------------------- environments

export interface EnvironmentPlugin {
  name: string
  version: string
  enabled: boolean
}

export interface Environment {
  id: string
  name: string
  release: string
  status: string
  /** Selected wizard components. */
  components: string[]
  plugins: EnvironmentPlugin[]
  createdAt: string
  updatedAt: string
}

export interface NodeRecord {
  id: string
  environment: string
  name: string
  roles: string[]
  status: string
  /** Anything the lab/server knows about the node (pool, host, VM, addresses, facts). */
  data: Record<string, any>
  createdAt: string
  updatedAt: string
}

export class EnvironmentRepository {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly secrets: SecretBox,
  ) {}

  private row(name: string): any {
    const r = this.db.prepare('SELECT * FROM environments WHERE name = ?').get(name)
    if (!r) throw new StateError(`environment "${name}" does not exist`, 'not_found')
    return r
  }

  private hydrate(r: any): Environment {
    const plugins = (
      this.db
        .prepare(
          'SELECT plugin_name, plugin_version, enabled FROM environment_plugins WHERE environment_id = ? ORDER BY plugin_name',
        )
        .all(r.id) as any[]
    ).map((p) => ({ name: p.plugin_name, version: p.plugin_version, enabled: p.enabled === 1 }))
    return {
      id: r.id,
      name: r.name,
      release: r.release_name,
      status: r.status,
      components: parse(r.components_json),
      plugins,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }
  }

  private seal(settings: unknown): string {
    return json(mapPasswords(settings, (v) => (SecretBox.isEncrypted(v) ? v : this.secrets.encrypt(v))))
  }

  create(e: {
    name: string
    release: string
    components?: string[]
    settings: Record<string, any>
    status?: string
  }): Environment {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(e.name)) {
      throw new StateError(
        `environment name "${e.name}" is invalid (expected letters, digits, "_", "." or "-")`,
        'invalid',
      )
    }
    if (this.db.prepare('SELECT 1 FROM environments WHERE name = ?').get(e.name)) {
      throw new StateError(`environment "${e.name}" already exists`, 'conflict')
    }
    const t = now()
    this.db
      .prepare(
        `INSERT INTO environments (id, name, release_name, status, components_json, settings_json, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(randomUUID(), e.name, e.release, e.status ?? 'new', json(e.components ?? []), this.seal(e.settings), t, t)
    return this.get(e.name)!
  }

  get(name: string): Environment | undefined {
    const r = this.db.prepare('SELECT * FROM environments WHERE name = ?').get(name)
    return r ? this.hydrate(r) : undefined
  }

  require(name: string): Environment {
    return this.hydrate(this.row(name))
  }

  list(): Environment[] {
    return (this.db.prepare('SELECT * FROM environments ORDER BY name').all() as any[]).map((r) => this.hydrate(r))
  }

  /** The settings tree; passwords redacted unless `reveal` (only for code that must use them). */
  settings(name: string, options: { reveal?: boolean } = {}): Record<string, any> {
    const stored = parse<Record<string, any>>(this.row(name).settings_json)
    return options.reveal
      ? mapPasswords(stored, (v) => (SecretBox.isEncrypted(v) ? this.secrets.decrypt(v) : v))
      : redactPasswords(stored)
  }

  saveSettings(name: string, settings: Record<string, any>): void {
    this.row(name)
    this.db
      .prepare('UPDATE environments SET settings_json = ?, updated_at = ? WHERE name = ?')
      .run(this.seal(settings), now(), name)
  }

  /** The environment's cluster model (net_provider, net_segment_type, mode, … — written by component bindings). */
  cluster(name: string): Record<string, any> {
    return parse<Record<string, any>>(this.row(name).cluster_json ?? '{}')
  }

  setCluster(name: string, cluster: Record<string, any>): void {
    this.row(name)
    this.db
      .prepare('UPDATE environments SET cluster_json = ?, updated_at = ? WHERE name = ?')
      .run(json(cluster), now(), name)
  }

  setComponents(name: string, components: string[]): void {
    this.row(name)
    this.db
      .prepare('UPDATE environments SET components_json = ?, updated_at = ? WHERE name = ?')
      .run(json(components), now(), name)
  }

  setStatus(name: string, status: string): void {
    this.row(name)
    this.db.prepare('UPDATE environments SET status = ?, updated_at = ? WHERE name = ?').run(status, now(), name)
  }

  /** Enables (or records disabled) one version of a plugin; one version per plugin name per environment. */
  setPlugin(name: string, plugin: string, version: string, enabled: boolean): void {
    const r = this.row(name)
    this.db
      .prepare(
        `INSERT INTO environment_plugins (environment_id, plugin_name, plugin_version, enabled) VALUES (?, ?, ?, ?)
         ON CONFLICT (environment_id, plugin_name) DO UPDATE SET plugin_version = excluded.plugin_version, enabled = excluded.enabled`,
      )
      .run(r.id, plugin, version, enabled ? 1 : 0)
  }

  delete(name: string): void {
    const r = this.row(name)
    this.db.prepare('DELETE FROM environments WHERE id = ?').run(r.id)
  }

  addNode(env: string, n: { name: string; roles?: string[]; status?: string; data?: Record<string, any> }): NodeRecord {
    const r = this.row(env)
    if (this.db.prepare('SELECT 1 FROM nodes WHERE environment_id = ? AND name = ?').get(r.id, n.name)) {
      throw new StateError(`node "${n.name}" already exists in environment "${env}"`, 'conflict')
    }
    const t = now()
    this.db
      .prepare(
        'INSERT INTO nodes (id, environment_id, name, roles_json, status, data_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(randomUUID(), r.id, n.name, json(n.roles ?? []), n.status ?? 'discover', json(n.data ?? {}), t, t)
    return this.nodes(env).find((x) => x.name === n.name)!
  }

  nodes(env: string): NodeRecord[] {
    const r = this.row(env)
    return (this.db.prepare('SELECT * FROM nodes WHERE environment_id = ? ORDER BY name').all(r.id) as any[]).map(
      (x) => ({
        id: x.id,
        environment: env,
        name: x.name,
        roles: parse(x.roles_json),
        status: x.status,
        data: parse(x.data_json),
        createdAt: x.created_at,
        updatedAt: x.updated_at,
      }),
    )
  }

  updateNode(
    env: string,
    node: string,
    change: { roles?: string[]; status?: string; data?: Record<string, any> },
  ): NodeRecord {
    const current = this.nodes(env).find((n) => n.name === node)
    if (!current) throw new StateError(`node "${node}" does not exist in environment "${env}"`, 'not_found')
    this.db
      .prepare('UPDATE nodes SET roles_json = ?, status = ?, data_json = ?, updated_at = ? WHERE id = ?')
      .run(
        json(change.roles ?? current.roles),
        change.status ?? current.status,
        json(change.data ?? current.data),
        now(),
        current.id,
      )
    return this.nodes(env).find((n) => n.name === node)!
  }

  removeNode(env: string, node: string): void {
    const current = this.nodes(env).find((n) => n.name === node)
    if (!current) throw new StateError(`node "${node}" does not exist in environment "${env}"`, 'not_found')
    this.db.prepare('DELETE FROM nodes WHERE id = ?').run(current.id)
  }
}

// ---------------------------------------------------------------------------------------------- the store

export interface OpenOptions {
  /** Default: resolveDataDir() (XENSTACK_HOME or ~/.xenstack). */
  dataDir?: string
  /** Migrations beyond MIGRATIONS (tests, or parts that keep theirs apart). */
  extraMigrations?: Migration[]
  /**
   * `postgresql://…`: keep the state in PostgreSQL instead of `<data-dir>/state.db` (default: $DATABASE_URL; pass
   * `''` for SQLite whatever the environment says). The data directory still holds secret.key and plugin files.
   */
  databaseUrl?: string
}

export class StateStore {
  readonly plugins: PluginRepository
  readonly releases: ReleaseRepository
  readonly environments: EnvironmentRepository
  /** XenServer pools (XAPI URL, encrypted credentials, TLS trust): state/pools.ts. */
  readonly pools: PoolRepository

  private constructor(
    readonly db: SqliteDatabase,
    readonly dataDir: string,
    readonly secrets: SecretBox,
    /** Which database holds the state: `sqlite` (state.db) or `postgresql` (DATABASE_URL). */
    readonly backend: Backend = 'sqlite',
    /** Where the state is, safe to print (the file, or the URL without its password). */
    readonly location: string = join(dataDir, 'state.db'),
  ) {
    this.plugins = new PluginRepository(db)
    this.releases = new ReleaseRepository(db)
    this.environments = new EnvironmentRepository(db, secrets)
    this.pools = new PoolRepository(db, secrets)
  }

  /** Opens (creating) the data directory and database, and applies pending migrations. */
  static open(options: OpenOptions = {}): StateStore {
    const dataDir = resolveDataDir(options.dataDir)
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    const explicit = options.databaseUrl ?? process.env.DATABASE_URL
    // The test suite's PostgreSQL pass puts a default store in a database of its data dir's own (test-databases.ts).
    if (explicit === undefined) recordDefaultStoreOpen()
    const url = explicit ?? testDatabaseFor(dataDir) ?? ''
    let store: StateStore
    if (url) {
      if (!/^postgres(ql)?:\/\//.test(url)) {
        throw new StateError(
          `DATABASE_URL "${redactUrl(url)}" is not supported: expected postgresql://user:password@host[:port]/database`,
          'invalid',
        )
      }
      // Loaded only when asked for: SQLite users never load libpq.
      const db = new PostgresDatabase(url)
      store = new StateStore(db, dataDir, SecretBox.forDataDir(dataDir), 'postgresql', redactUrl(url))
    } else {
      store = new StateStore(openSqlite(join(dataDir, 'state.db')), dataDir, SecretBox.forDataDir(dataDir))
    }
    try {
      store.migrate([...MIGRATIONS, ...(options.extraMigrations ?? [])])
      // A killed deployment engine leaves its last journal batches unfolded (engine/store.ts, SqliteJournal):
      // folded here, so whoever opens the store next reads task tables that include them.
      foldEngineJournals(store.db)
    } catch (e) {
      store.close()
      throw e
    }
    return store
  }

  /** Applies the migrations not yet recorded, each in its own transaction; returns the ids applied. */
  migrate(migrations: Migration[] = MIGRATIONS): string[] {
    const appliedIds = () =>
      new Set((this.db.prepare('SELECT id FROM schema_migrations').all() as { id: string }[]).map((r) => r.id))
    let done: Set<string>
    try {
      done = appliedIds()
    } catch {
      // A new database. Created under the writer lock: on PostgreSQL two processes creating the table at once can
      // both miss it, and one then fails on the catalog's unique index (IF NOT EXISTS is not atomic there).
      this.db
        .transaction(() =>
          this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)'),
        )
        .immediate()
      done = appliedIds()
    }
    const ids = migrations.map((m) => m.id)
    const dup = ids.find((id, i) => ids.indexOf(id) !== i)
    if (dup) throw new StateError(`migration id ${dup} is defined twice`, 'invalid')
    const applied: string[] = []
    // BEGIN IMMEDIATE: two processes opening the store at once apply each migration once.
    const apply = this.db.transaction((m: Migration) => {
      if (this.db.prepare('SELECT 1 FROM schema_migrations WHERE id = ?').get(m.id)) return
      for (const s of m.statements) this.db.exec(s)
      this.db.prepare('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)').run(m.id, now())
      applied.push(m.id)
    })
    for (const m of [...migrations].sort((a, b) => a.id.localeCompare(b.id))) {
      if (!done.has(m.id)) apply.immediate(m)
    }
    return applied
  }

  appliedMigrations(): string[] {
    return (this.db.prepare('SELECT id FROM schema_migrations ORDER BY id').all() as { id: string }[]).map((r) => r.id)
  }

  /** Runs `fn` in one transaction (nested calls become savepoints). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)()
  }

  /** Directory where an installed plugin's files are kept. */
  pluginDir(name: string, version: string): string {
    return join(this.dataDir, 'plugins', `${name}-${version}`)
  }

  close(): void {
    this.db.close()
  }
}
