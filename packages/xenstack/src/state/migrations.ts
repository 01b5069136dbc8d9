/**
 * Schema migrations of the state store, applied in order of `id` and recorded in `schema_migrations`.
 *
 * Rules, so that a PostgreSQL backend can run the same list:
 *   - portable SQL only: TEXT, INTEGER, BIGINT, REAL; no AUTOINCREMENT (ids are TEXT, made by the application);
 *     timestamps are ISO-8601 TEXT in UTC; JSON documents are TEXT columns named `*_json`; booleans are
 *     INTEGER 0/1;
 *   - one statement per array entry (PostgreSQL drivers and better-sqlite3 both run them one by one);
 *   - never edit a migration that has shipped: add a new one.
 *
 * Other parts append their own migrations here with ids in their own range, e.g. the deployment engine
 * `0100_…`, the lab `0200_…`, the server `0300_…`; the id orders them, the name says what they do.
 */
export interface Migration {
  /** Sortable id: four digits, underscore, a name (`0001_plugins`). */
  id: string
  statements: string[]
}

export const MIGRATIONS: Migration[] = [
  {
    id: '0001_plugins_releases',
    statements: [
      `CREATE TABLE plugins (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        major TEXT NOT NULL,
        package_version TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        archive_sha256 TEXT,
        dir TEXT NOT NULL,
        data_json TEXT NOT NULL,
        installed_at TEXT NOT NULL,
        UNIQUE (name, version)
      )`,
      `CREATE TABLE plugin_files (
        plugin_id TEXT NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        PRIMARY KEY (plugin_id, path)
      )`,
      `CREATE TABLE releases (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        operating_system TEXT NOT NULL,
        source TEXT NOT NULL,
        data_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
    ],
  },
  {
    id: '0002_environments',
    statements: [
      `CREATE TABLE environments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        release_name TEXT NOT NULL,
        status TEXT NOT NULL,
        components_json TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      `CREATE TABLE environment_plugins (
        environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
        plugin_name TEXT NOT NULL,
        plugin_version TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        PRIMARY KEY (environment_id, plugin_name)
      )`,
      `CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        roles_json TEXT NOT NULL,
        status TEXT NOT NULL,
        data_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (environment_id, name)
      )`,
      `CREATE INDEX environment_plugins_by_plugin ON environment_plugins (plugin_name, plugin_version)`,
    ],
  },
  {
    id: '0003_environment_cluster',
    statements: [
      // The cluster model of restrictions (net_provider, net_segment_type, mode, …), set by component bindings.
      `ALTER TABLE environments ADD COLUMN cluster_json TEXT NOT NULL DEFAULT '{}'`,
    ],
  },
  {
    id: '0004_pools',
    statements: [
      // XenServer pools (state/pools.ts); nodes name theirs in data.pool. password is enc:v1:… only.
      `CREATE TABLE pools (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        username TEXT NOT NULL,
        password TEXT NOT NULL,
        tls_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
    ],
  },
]
