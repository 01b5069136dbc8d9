/**
 * The lab's Glance service kind (`services: [{ kind: 'glance' }]`): a real OpenStack Glance v2 image API (Debian's
 * python3-glance, Zed) on a lab controller, the way /work/shared/reference/glance-recipe.md runs it: one eventlet
 * process (`workers = 0`), sqlite database and the `file` store, no Keystone.
 *
 * Everything lives inside the controller host, as a packaged Glance would: configuration in /etc/glance, database and
 * image files in /var/lib/glance (both per-host overlays, so they land in the host's backing dirs in the lab dir and
 * go with the lab). The API's log goes to <host dir>/log/glance-api.log, `db_sync`'s to glance-db-sync.log.
 *
 * Addresses: Glance listens on the controller's management address, where the lab's other hosts (and OpenStack
 * services in a real deployment) reach it. xenstack itself runs on the machine, which reaches lab hosts only over
 * their admin links, so Glance also listens there: it binds 0.0.0.0 inside the host's own network namespace (nothing
 * outside the namespace sees it). The endpoint reports both: `url` (management) and `adminUrl` (what the machine uses).
 * The configuration (keystone-less, `publicize_image` opened by policy) is glance/server-config.ts's.
 *
 * Options (`spec.options`): `port` (default 9292), `readyTimeoutMs` (default GLANCE_READY_TIMEOUT_MS, 300000: the
 * API starts in ~2.5 s on an idle machine, past 90 s on a loaded one), `debug` (Glance debug logging).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  GLANCE_DEFAULT_PORT,
  GLANCE_PYTHON,
  GLANCE_READY_TIMEOUT_MS,
  glanceApiArgv,
  glanceConfigFiles,
  glanceDataSubdirs,
  glanceHttpStatus,
  glanceInstalled,
  glanceLogTail,
  glanceManageArgv,
  type GlanceServerLayout,
} from '../glance/server-config.js'
import {
  registerLabServiceKind,
  type LabServiceContext,
  type LabServiceEndpoint,
  type LabServiceSpec,
} from './services.js'
import { isAlive, sleep } from './sys.js'

export interface GlanceServiceOptions {
  port?: number
  readyTimeoutMs?: number
  debug?: boolean
}

export interface GlanceEndpoint extends LabServiceEndpoint {
  kind: 'glance'
  /** On the controller's management address: what lab hosts use. */
  url: string
  /** On the controller's admin address: what the machine (xenstack) uses. */
  adminUrl: string
  /** The API's log on the machine. */
  logFile: string
}

function parseOptions(spec: LabServiceSpec): Required<GlanceServiceOptions> {
  const o = spec.options ?? {}
  const port = o.port ?? GLANCE_DEFAULT_PORT
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`glance service: options.port must be a TCP port number (1-65535), got ${JSON.stringify(port)}`)
  const readyTimeoutMs = o.readyTimeoutMs ?? GLANCE_READY_TIMEOUT_MS
  if (typeof readyTimeoutMs !== 'number' || readyTimeoutMs <= 0)
    throw new Error(
      `glance service: options.readyTimeoutMs must be a positive number, got ${JSON.stringify(readyTimeoutMs)}`,
    )
  return { port, readyTimeoutMs, debug: o.debug === true }
}

/** Writes a file inside the host (through its mount namespace: writes into backing dirs are not reliably seen). */
async function writeOnHost(ctx: LabServiceContext, path: string, content: string, mode: number): Promise<void> {
  const script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
  await ctx.lab.execOk(ctx.host.name, ['sh', '-c', script, 'write', path, mode.toString(8)], { stdin: content })
}

export async function startGlance(ctx: LabServiceContext, spec: LabServiceSpec): Promise<GlanceEndpoint> {
  const { port, readyTimeoutMs, debug } = parseOptions(spec)
  const host = ctx.host.name
  if (!glanceInstalled())
    throw new Error(
      `glance service on ${host}: python3-glance is not installed (no glance module for ${GLANCE_PYTHON}); run scripts/setup.sh`,
    )
  const mgmt = ctx.host.addresses.management?.split('/')[0]
  if (!mgmt) throw new Error(`glance service on ${host}: the host has no management address`)
  const url = `http://${mgmt}:${port}`
  const adminUrl = `http://${ctx.host.ssh.host}:${port}`
  const logDir = join(ctx.hostDir, 'log')
  const logFile = join(logDir, 'glance-api.log')

  // eventlet listens with SO_REUSEPORT: a second server on the port would silently share it (recipe, pitfall 4)
  const inUse = await ctx.lab.execOk(host, ['ss', '-Hltn', `sport = :${port}`])
  if (inUse.stdout.trim())
    throw new Error(`glance service on ${host}: port ${port} is already in use there:\n${inUse.stdout.trim()}`)

  // 0.0.0.0 inside the controller's own network namespace: its management and admin addresses
  const layout: GlanceServerLayout = {
    confDir: '/etc/glance',
    dataDir: '/var/lib/glance',
    bindHost: '0.0.0.0',
    port,
    debug,
  }
  await ctx.lab.execOk(host, ['mkdir', '-p', ...glanceDataSubdirs(layout)])
  for (const f of glanceConfigFiles(layout)) await writeOnHost(ctx, f.path, f.content, f.mode)

  const sync = await ctx.lab.exec(host, glanceManageArgv(layout), { timeoutMs: readyTimeoutMs })
  writeFileSync(join(logDir, 'glance-db-sync.log'), sync.stdout + sync.stderr)
  if (sync.code !== 0)
    throw new Error(
      `glance service on ${host}: glance-manage db_sync failed with exit code ${sync.code} ` +
        `(see ${join(logDir, 'glance-db-sync.log')}):\n${sync.stderr.trim().split('\n').slice(-8).join('\n')}`,
    )

  const pid = ctx.startOnHost(glanceApiArgv(layout), 'glance-api.log')

  // ready: /healthcheck answers 200 on the admin address, then the images API on the management address (from
  // inside the host: the address the other hosts use)
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    if (!isAlive(pid))
      throw new Error(
        `glance service on ${host}: glance-api (pid ${pid}) exited; end of ${logFile}:\n${glanceLogTail(logFile)}`,
      )
    const status = await glanceHttpStatus(`${adminUrl}/healthcheck`, 2000)
    if (status === 200) break
    if (Date.now() > deadline)
      throw new Error(
        `glance service on ${host}: ${adminUrl}/healthcheck not ready after ${readyTimeoutMs} ms ` +
          `(last status ${status || 'no answer'}); end of ${logFile}:\n${glanceLogTail(logFile)}`,
      )
    await sleep(100)
  }
  const probe = await ctx.lab.exec(host, ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', `${url}/v2/images`], {
    timeoutMs: 30_000,
  })
  if (probe.stdout.trim() !== '200')
    throw new Error(
      `glance service on ${host}: GET ${url}/v2/images from the host answered ${probe.stdout.trim() || probe.stderr.trim()}, expected 200; end of ${logFile}:\n${glanceLogTail(logFile)}`,
    )
  return { kind: 'glance', host, url, adminUrl, logFile, pids: [pid] }
}

registerLabServiceKind('glance', startGlance)
