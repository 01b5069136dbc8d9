/**
 * The lab supervisor: the long-lived process behind `xenstack lab up`. It brings the lab up, holds its simulator
 * (HTTP server, change hooks that hot-plug NICs, xenstore sockets) and keeps running after `lab up` returns.
 *
 * Files in the lab dir: `request.json` (what to build, written by `lab up`), `supervisor.pid`, `supervisor.log`
 * (its output, with timings), `ready.json` (the lab's description once up, or `{ "error": … }` when up failed).
 * The simulator's password comes in the XENSTACK_LAB_PASSWORD environment variable and is written nowhere.
 * SIGTERM/SIGINT (what `lab down` sends) take the lab down and exit 0.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Lab, labRoot, type LabOptions } from './lab.js'
import type { LabEnvironment } from './topology.js'
import { loadLabServiceModules } from './services.js'

export interface LabRequest {
  name: string
  env: LabEnvironment
  /** XenServer product_version of the simulated pool. */
  version?: string
}

/** What `lab up --json` prints (with the password added by `lab up`, which knows it), and `ready.json` holds. */
export interface LabDescription {
  name: string
  environment: string | null
  simulator: { url: string; username: string; password?: string }
  hosts: {
    name: string
    role: string
    xapiHost: string | null
    ssh: { host: string; port: number; user: string; identityFile: string; knownHostsFile: string }
    addresses: Record<string, string>
  }[]
  dir: string
  sshConfigFile: string
  supervisorPid: number
  /** `adminUrl`: where the machine reaches a service that lab hosts use at `url` (e.g. Glance). */
  services: { name: string; host: string; url?: string; adminUrl?: string }[]
  /** Lab host name → XAPI ref (dom0 → host, compute → VM). */
  refs: Record<string, string>
  timings: { upMs: number }
}

export function describeLab(lab: Lab, upMs: number): LabDescription {
  return {
    name: lab.name,
    environment: null,
    simulator: { url: lab.simulator?.url ?? '', username: lab.simulator?.username ?? 'root' },
    hosts: lab.hosts.map((h) => ({
      name: h.name,
      role: h.role,
      xapiHost: h.xapiHost,
      ssh: h.ssh,
      addresses: Object.fromEntries(Object.entries(h.addresses).filter(([, v]) => v)) as Record<string, string>,
    })),
    dir: lab.dir,
    sshConfigFile: lab.sshConfigFile,
    supervisorPid: process.pid,
    services: [
      ...(lab.plan.httpProbePort === false
        ? []
        : lab.hosts
            .filter((h) => h.role === 'controller')
            .map((h) => ({ name: 'http-probe', host: h.name, url: lab.httpProbeUrl(h.name) }))),
      ...lab.services.map((s) => ({
        name: s.kind,
        host: s.host,
        url: s.url,
        adminUrl: typeof s.adminUrl === 'string' ? s.adminUrl : undefined,
      })),
    ],
    refs: Object.fromEntries(lab.simulator?.refs ?? []),
    timings: { upMs },
  }
}

export async function runSupervisor(name: string, root?: string): Promise<void> {
  const dir = join(labRoot(root), name)
  const ts = () => new Date().toISOString()
  const lines: string[] = []
  const log = (line: string) => {
    lines.push(line)
    process.stdout.write(`${ts()} ${line}\n`)
  }
  const request = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')) as LabRequest
  const password = process.env.XENSTACK_LAB_PASSWORD
  delete process.env.XENSTACK_LAB_PASSWORD // not inherited by anything the lab starts
  writeFileSync(join(dir, 'supervisor.pid'), `${process.pid}\n`)
  let lab: Lab | undefined
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    log(`stopping (exit ${code})`)
    const t = performance.now()
    try {
      await lab?.down()
    } catch (e) {
      log(`down failed: ${(e as Error).message}`)
    }
    process.stderr.write(`${ts()} lab ${name} down in ${Math.round(performance.now() - t)} ms\n`)
    process.exit(code)
  }
  process.on('SIGTERM', () => void stop(0))
  process.on('SIGINT', () => void stop(0))
  process.on('uncaughtException', (e) => {
    log(`uncaught: ${e.stack ?? e}`)
    void stop(1)
  })
  const t0 = performance.now()
  try {
    await loadLabServiceModules()
    const options: LabOptions = {
      ...request.env,
      name,
      root,
      simulator: { password, version: request.version },
      log,
    }
    lab = await Lab.up(options)
    lab.recordSupervisor(process.pid)
    const upMs = Math.round(performance.now() - t0)
    writeFileSync(join(dir, 'ready.json.tmp'), JSON.stringify(describeLab(lab, upMs), null, 2) + '\n')
    renameSync(join(dir, 'ready.json.tmp'), join(dir, 'ready.json'))
    log(`ready in ${upMs} ms; simulator ${lab.simulator?.url}`)
  } catch (e) {
    log(`up failed: ${(e as Error).stack ?? e}`)
    // the failed up removed the lab dir (and this log with it): leave the reason for `lab up` to print
    mkdirSync(dir, { recursive: true })
    writeFileSync(
      join(dir, 'ready.json'),
      JSON.stringify({ error: (e as Error).message, log: lines.slice(-20) }) + '\n',
    )
    process.exit(1)
  }
}
