/**
 * Configuration of a keystone-less Glance v2 API server (Debian's python3-glance, Zed), as in
 * /work/shared/reference/glance-recipe.md: one eventlet process (`workers = 0`), sqlite database, the `file` store.
 * Used by the lab's Glance service (lab/glance-service.ts) and by the standalone server tests start (standalone.ts).
 *
 * Without Keystone every request gets Glance's anonymous admin-ish context (`UnauthenticatedContextMiddleware`);
 * `publicize_image` is opened by the policy file because Zed's default (`role:admin`) cannot match its empty roles.
 */
import { existsSync, readFileSync } from 'node:fs'
import { request } from 'node:http'

/** Debian's interpreter: a pyenv/venv `python3` on PATH cannot import glance (recipe, pitfall 1). */
export const GLANCE_PYTHON = '/usr/bin/python3'
export const GLANCE_DEFAULT_PORT = 9292
/**
 * How long a starting glance-api may take to answer its health check (and db_sync to finish) before the start fails:
 * ~2.5 s on an idle machine, but past 90 s on a 2-core box under heavy load (eventlet and Glance's imports are CPU
 * bound). A start that fails outright ends at once (the process exits and that is reported), so a long deadline only
 * delays the report of a server that hangs.
 */
export const GLANCE_READY_TIMEOUT_MS = 300_000

/** True when python3-glance is installed for Debian's Python. */
export function glanceInstalled(): boolean {
  return existsSync('/usr/lib/python3/dist-packages/glance/cmd/api.py')
}

export interface GlanceServerLayout {
  /** Where glance-api.conf, the paste ini and policy.yaml live. */
  confDir: string
  /** Database, image files, staging, tasks, locks. */
  dataDir: string
  bindHost: string
  port: number
  debug?: boolean
  /**
   * Validate tokens with Keystone (keystonemiddleware's authtoken; paste flavor `keystone`) instead of the anonymous
   * context. The service credentials land in glance-api.conf, as in any Glance deployment: write it 0600.
   */
  keystone?: { authUrl: string; username: string; password: string; projectName: string }
}

export function glanceApiConf(l: GlanceServerLayout): string {
  const d = l.dataDir
  return `# written by xenstack: a keystone-less Glance v2 API (see packages/xenstack/src/glance/server-config.ts)
[DEFAULT]
bind_host = ${l.bindHost}
bind_port = ${l.port}
# no forked workers: one process, one PID
workers = 0
# the log goes to stderr, which the starter sends to its log file
use_stderr = true
debug = ${l.debug === true}
enabled_backends = file:file
node_staging_uri = file://${d}/staging
image_size_cap = 10737418240

[database]
connection = sqlite:///${d}/glance.sqlite

[glance_store]
default_backend = file

[file]
filesystem_store_datadir = ${d}/images/

[os_glance_staging_store]
filesystem_store_datadir = ${d}/staging/

[os_glance_tasks_store]
filesystem_store_datadir = ${d}/tasks/

[paste_deploy]
flavor = ${l.keystone ? 'keystone' : ''}
config_file = ${l.confDir}/glance-api-paste.ini
${l.keystone ? keystoneAuthtoken(l.keystone) : ''}
[oslo_policy]
policy_file = ${l.confDir}/policy.yaml

[oslo_concurrency]
lock_path = ${d}/lock
`
}

function keystoneAuthtoken(k: NonNullable<GlanceServerLayout['keystone']>): string {
  return `
[keystone_authtoken]
www_authenticate_uri = ${k.authUrl}
auth_url = ${k.authUrl}
auth_type = password
username = ${k.username}
password = ${k.password}
project_name = ${k.projectName}
user_domain_name = Default
project_domain_name = Default
`
}

/** A cut-down copy of Debian's glance-api-paste.ini (python3-glance ships none). */
export function glancePasteIni(l: GlanceServerLayout): string {
  return `[pipeline:glance-api]
pipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation osprofiler unauthenticated-context rootapp

[pipeline:glance-api-keystone]
pipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation osprofiler authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:healthcheck]
paste.filter_factory = oslo_middleware:Healthcheck.factory
backends = disable_by_file
disable_by_file_path = ${l.dataDir}/healthcheck_disable

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:unauthenticated-context]
paste.filter_factory = glance.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
`
}

/** Zed's publicize_image default is role:admin, which the anonymous context (roles=[]) never has. */
export const GLANCE_POLICY = `"publicize_image": ""\n`

/**
 * The files of the configuration directory, each with its mode: glance-api.conf is 0600 (Keystone's service password
 * lands in it), the others 0644.
 */
export const glanceConfigFiles = (l: GlanceServerLayout): { path: string; content: string; mode: number }[] => [
  { path: `${l.confDir}/glance-api.conf`, content: glanceApiConf(l), mode: 0o600 },
  { path: `${l.confDir}/glance-api-paste.ini`, content: glancePasteIni(l), mode: 0o644 },
  { path: `${l.confDir}/policy.yaml`, content: GLANCE_POLICY, mode: 0o644 },
]

/** The directories Glance needs under its data dir before it starts. */
export const glanceDataSubdirs = (l: GlanceServerLayout): string[] =>
  ['images', 'staging', 'tasks', 'lock'].map((d) => `${l.dataDir}/${d}`)

/** argv of `db_sync` and of the API server. */
export const glanceManageArgv = (l: GlanceServerLayout): string[] => [
  GLANCE_PYTHON,
  '-m',
  'glance.cmd.manage',
  '--config-file',
  `${l.confDir}/glance-api.conf`,
  'db_sync',
]
export const glanceApiArgv = (l: GlanceServerLayout): string[] => [
  GLANCE_PYTHON,
  '-m',
  'glance.cmd.api',
  '--config-file',
  `${l.confDir}/glance-api.conf`,
]

/** The HTTP status `url` answers (a health check's), or 0 when there is no answer within `timeoutMs`. */
export function glanceHttpStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: timeoutMs }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(0))
    req.end()
  })
}

/** The last lines of a Glance log, for errors that say why it did not start. */
export function glanceLogTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}
