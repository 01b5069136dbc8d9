/**
 * `xenstack lab up|down|status|exec`: real isolated Linux hosts wired to a simulated XenServer pool
 * (packages/xenstack/src/lab). `up` starts a detached supervisor that holds the lab and its simulator, waits until
 * it is ready and prints the simulator URL, credentials and each host's SSH endpoint (`--json`: one JSON object).
 * `down` stops the supervisor and removes everything; `up` of an existing name replaces it.
 */
import type { Command } from 'commander'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { generatePassword } from '@xenstack/xapi-sim'
import { Lab, labRoot, preflight, readState } from '../../lab/lab.js'
import { planLab, validateLabName, type LabEnvironment } from '../../lab/topology.js'
import type { LabDescription, LabRequest } from '../../lab/supervisor.js'
import { registerLabEnvironment, unregisterLabEnvironment } from '../../lab/environment.js'
import { isAlive, sleep } from '../../lab/sys.js'
import { CliError, ExitCode } from '../errors.js'
import { table } from '../output.js'

const SUPERVISOR = fileURLToPath(new URL('../../lab/supervisor-main.js', import.meta.url))
const DEFAULT_NAME = 'lab'

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .description('real isolated Linux hosts (dom0s, compute VMs, controllers, storage) wired to a simulated pool')
  lab
    .command('up')
    .description('bring a lab up (replacing one of the same name) and print its endpoints')
    .option('--name <name>', 'lab name', DEFAULT_NAME)
    .option('--hosts <k>', 'number of XenServer hosts in the pool (each: a dom0 and a compute VM)')
    .option('--env <file>', 'environment description (YAML or JSON): hosts, controllers, networks, version')
    .option('--json', 'print one JSON object')
    .action(async (opts: { name: string; hosts?: string; env?: string; json?: boolean }) => {
      await labUp(opts)
    })
  lab
    .command('down')
    .description('stop a lab and remove everything it created')
    .option('--name <name>', 'lab name', DEFAULT_NAME)
    .action(async (opts: { name: string }) => {
      const name = checkName(opts.name)
      const t0 = performance.now()
      const had = await Lab.destroy(name)
      try {
        if (unregisterLabEnvironment(name)) process.stdout.write(`environment ${name} removed\n`)
      } catch (e) {
        process.stderr.write(`xenstack: environment ${name} not removed: ${(e as Error).message}\n`)
      }
      process.stdout.write(
        had
          ? `lab ${name} is down (${Math.round(performance.now() - t0)} ms)\n`
          : `no lab named ${name}; nothing to do\n`,
      )
    })
  lab
    .command('status')
    .description("show a lab's hosts, supervisor and simulator")
    .option('--name <name>', 'lab name', DEFAULT_NAME)
    .option('--json', 'print one JSON object')
    .action(async (opts: { name: string; json?: boolean }) => {
      labStatus(checkName(opts.name), opts.json)
    })
  lab
    .command('exec')
    .description('run a command on a lab host (its network, mount and UTS namespaces): lab exec HOST -- CMD…')
    .option('--name <name>', 'lab name', DEFAULT_NAME)
    .argument('<host>', 'host name (dom0-1, compute-1, controller-1, storage, …)')
    .argument('<cmd...>', 'command and arguments (after --)')
    .action(async (host: string, cmd: string[], opts: { name: string }) => {
      const l = attach(checkName(opts.name))
      let h
      try {
        h = l.host(host)
      } catch (e) {
        throw new CliError((e as Error).message, ExitCode.notFound)
      }
      if (!isAlive(h.holderPid))
        throw new CliError(`lab ${l.name}: host ${host} is not running (run "xenstack lab up")`)
      const code = await new Promise<number>((resolve) => {
        const child = spawn('nsenter', ['-t', String(h.holderPid), '-m', '-u', '-n', '--', ...cmd], {
          stdio: 'inherit',
          cwd: '/',
          env: { ...process.env, HOME: '/root' },
        })
        child.on('error', () => resolve(127))
        child.on('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)))
      })
      process.exit(code)
    })
}

function checkName(name: string): string {
  try {
    return validateLabName(name)
  } catch (e) {
    throw new CliError(`--name: ${(e as Error).message}`, ExitCode.usage)
  }
}

function attach(name: string): Lab {
  try {
    return Lab.attach(name)
  } catch (e) {
    throw new CliError((e as Error).message, ExitCode.notFound, 'start one with "xenstack lab up"')
  }
}

/** Reads the lab part of an environment file: top-level keys, or under `lab:`. Errors name the file and field. */
export function loadLabEnvironment(file: string): LabEnvironment & { name?: string; version?: string } {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new CliError(
      `--env ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      ExitCode.notFound,
    )
  }
  let doc: any
  try {
    doc = parseYaml(text)
  } catch (e) {
    throw new CliError(`${file}: not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`, ExitCode.invalidInput)
  }
  const src = doc && typeof doc === 'object' && doc.lab && typeof doc.lab === 'object' ? doc.lab : doc
  const where = doc?.lab ? 'lab.' : ''
  if (!src || typeof src !== 'object' || Array.isArray(src))
    throw new CliError(`${file}: expected a mapping with hosts, controllers, networks…`, ExitCode.invalidInput)
  const bad = (field: string, expected: string, got: unknown) =>
    new CliError(`${file}: ${where}${field}: expected ${expected}, got ${JSON.stringify(got)}`, ExitCode.invalidInput)
  const known = [
    'name',
    'hosts',
    'controllers',
    'storage_node',
    'storageNode',
    'networks',
    'version',
    'http_probe_port',
  ]
  for (const k of Object.keys(src)) if (!known.includes(k)) throw bad(k, `one of ${known.join(', ')}`, k)
  const int = (field: string, v: unknown, min: number) => {
    if (v === undefined) return undefined
    if (!Number.isInteger(v) || (v as number) < min) throw bad(field, `a whole number ≥ ${min}`, v)
    return v as number
  }
  const env: LabEnvironment & { name?: string; version?: string } = {}
  if (src.name !== undefined) env.name = String(src.name)
  env.hosts = int('hosts', src.hosts, 1)
  env.controllers = int('controllers', src.controllers, 0)
  const sn = src.storage_node ?? src.storageNode
  if (sn !== undefined) {
    if (typeof sn !== 'boolean') throw bad('storage_node', 'true or false', sn)
    env.storageNode = sn
  }
  if (src.http_probe_port !== undefined) {
    if (src.http_probe_port !== false && !(Number.isInteger(src.http_probe_port) && src.http_probe_port > 0))
      throw bad('http_probe_port', 'a port number or false', src.http_probe_port)
    env.httpProbePort = src.http_probe_port
  }
  if (src.version !== undefined) {
    if (typeof src.version !== 'string' || !/^\d+\.\d+\.\d+$/.test(src.version))
      throw bad('version', 'a XenServer version such as 7.1.0', src.version)
    env.version = src.version
  }
  if (src.services !== undefined) {
    if (!Array.isArray(src.services)) throw bad('services', 'a list of { kind, host, options }', src.services)
    env.services = src.services.map((sv: any, i: number) => {
      if (!sv || typeof sv.kind !== 'string')
        throw bad(`services[${i}].kind`, 'a service kind such as glance', sv?.kind)
      if (sv.host !== undefined && typeof sv.host !== 'string')
        throw bad(`services[${i}].host`, 'a lab host name', sv.host)
      return { kind: sv.kind, host: sv.host, options: sv.options ?? {} }
    })
  }
  if (src.networks !== undefined) {
    if (typeof src.networks !== 'object' || Array.isArray(src.networks) || !src.networks)
      throw bad('networks', 'a mapping of management/storage to { cidr }', src.networks)
    env.networks = {}
    for (const [k, v] of Object.entries(src.networks as Record<string, any>)) {
      if (k !== 'management' && k !== 'storage') throw bad(`networks.${k}`, 'management or storage', k)
      if (!v || typeof v.cidr !== 'string') throw bad(`networks.${k}.cidr`, 'a CIDR such as 192.168.0.0/22', v?.cidr)
      env.networks[k] = { cidr: v.cidr }
    }
  }
  return env
}

async function labUp(opts: { name: string; hosts?: string; env?: string; json?: boolean }): Promise<void> {
  const t0 = performance.now()
  const fileEnv = opts.env ? loadLabEnvironment(opts.env) : {}
  const { name: envName, version, ...env } = fileEnv
  if (opts.hosts !== undefined) {
    const k = Number(opts.hosts)
    if (!Number.isInteger(k) || k < 1)
      throw new CliError(`--hosts: expected a whole number ≥ 1, got ${opts.hosts}`, ExitCode.usage)
    env.hosts = k
  }
  const name = checkName(opts.name !== DEFAULT_NAME ? opts.name : (envName ?? opts.name))
  try {
    planLab(name, 200, env) // validates counts and networks before anything is touched
  } catch (e) {
    throw new CliError(`${opts.env ? opts.env + ': ' : ''}${(e as Error).message}`, ExitCode.invalidInput)
  }
  try {
    await preflight()
  } catch (e) {
    throw new CliError((e as Error).message, ExitCode.failure)
  }
  await Lab.destroy(name) // a stale or running lab of the same name
  const dir = join(labRoot(), name)
  mkdirSync(dir, { recursive: true })
  const request: LabRequest = { name, env, version }
  writeFileSync(join(dir, 'request.json'), JSON.stringify(request, null, 2) + '\n')
  const password = generatePassword()
  const logFd = openSync(join(dir, 'supervisor.log'), 'a')
  const child = spawn(process.execPath, [SUPERVISOR, name, labRoot()], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
    cwd: '/',
    env: { ...process.env, XENSTACK_LAB_PASSWORD: password },
  })
  closeSync(logFd)
  child.unref()
  const pid = child.pid!
  const ready = join(dir, 'ready.json')
  const deadline = Date.now() + 120_000
  let desc: (LabDescription & { error?: string; log?: string[] }) | undefined
  for (;;) {
    if (existsSync(ready)) {
      try {
        desc = JSON.parse(readFileSync(ready, 'utf8'))
        break
      } catch {
        // being written
      }
    }
    if (!isAlive(pid) && !existsSync(ready)) {
      const log = existsSync(join(dir, 'supervisor.log')) ? readFileSync(join(dir, 'supervisor.log'), 'utf8') : ''
      await Lab.destroy(name)
      // the lab dir is gone with the lab: keep the supervisor's log beside it for the post-mortem
      const kept = join(labRoot(), `${name}.failed.log`)
      writeFileSync(kept, log)
      throw new CliError(`lab ${name}: the supervisor exited before the lab was up: ${firstError(log)} (log: ${kept})`)
    }
    if (Date.now() > deadline) {
      await Lab.destroy(name)
      throw new CliError(`lab ${name}: not up after 120 s (see ${join(dir, 'supervisor.log')})`)
    }
    await sleep(25)
  }
  if (!desc || desc.error) {
    await Lab.destroy(name)
    throw new CliError(`lab ${name}: ${desc?.error ?? 'no description'}`, ExitCode.failure)
  }
  // register the lab as an environment in xenstack's state store (a failure there does not undo the lab)
  try {
    desc.environment = registerLabEnvironment(desc, password, desc.refs)
    writeFileSync(ready, JSON.stringify(desc, null, 2) + '\n')
  } catch (e) {
    process.stderr.write(`xenstack: lab ${name}: environment not registered: ${(e as Error).message}\n`)
  }
  const upMs = Math.round(performance.now() - t0)
  const out = {
    name: desc.name,
    environment: desc.environment,
    simulator: { url: desc.simulator.url, username: desc.simulator.username, password },
    hosts: desc.hosts,
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify(out) + '\n')
    return
  }
  process.stdout.write(
    [
      `lab ${name} is up in ${(upMs / 1000).toFixed(1)} s (supervisor pid ${pid}, dir ${dir})`,
      `simulator: ${out.simulator.url}  user ${out.simulator.username}  password ${password}`,
      `ssh: ssh -F ${desc.sshConfigFile} <host>`,
      '',
      table(
        desc.hosts.map((h) => ({
          host: h.name,
          role: h.role,
          xapi: h.xapiHost ?? '',
          ssh: `${h.ssh.user}@${h.ssh.host}:${h.ssh.port}`,
          addresses: Object.entries(h.addresses)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
        })),
        ['host', 'role', 'xapi', 'ssh', 'addresses'],
      ),
      ...desc.services.map((s) => `service ${s.name} on ${s.host}: ${s.url}`),
      `environment: ${desc.environment ?? '(not registered)'}`,
      '',
    ].join('\n'),
  )
}

function firstError(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean)
  return lines.find((l) => /error|failed|cannot/i.test(l))?.trim() ?? lines.slice(-1)[0] ?? '(no output)'
}

function labStatus(name: string, json?: boolean): void {
  const dir = join(labRoot(), name)
  const state = readState(dir)
  if (!state) throw new CliError(`no lab named ${name}`, ExitCode.notFound, 'start one with "xenstack lab up"')
  const l = Lab.attach(name)
  let desc: Partial<LabDescription> = {}
  try {
    desc = JSON.parse(readFileSync(join(dir, 'ready.json'), 'utf8'))
  } catch {
    // not ready (yet)
  }
  const supervisor = state.supervisorPid && isAlive(state.supervisorPid) ? state.supervisorPid : null
  const hosts = l.hosts.map((h) => ({
    name: h.name,
    role: h.role,
    xapiHost: h.xapiHost,
    running: isAlive(h.holderPid) && existsSync(`/run/netns/${h.netns}`),
    ssh: h.ssh,
    addresses: h.addresses,
  }))
  const data = {
    name,
    dir,
    supervisor: supervisor ? { pid: supervisor, running: true } : { pid: state.supervisorPid ?? null, running: false },
    simulator: desc.simulator ? { url: desc.simulator.url, username: desc.simulator.username } : null,
    environment: desc.environment ?? null,
    hosts,
  }
  if (json) {
    process.stdout.write(JSON.stringify(data, null, 2) + '\n')
    return
  }
  process.stdout.write(
    [
      `lab ${name} (${dir})`,
      `supervisor: ${supervisor ? `running, pid ${supervisor}` : 'NOT running (simulator link down; "xenstack lab down" cleans up)'}`,
      `simulator: ${data.simulator ? `${data.simulator.url} user ${data.simulator.username}` : '-'}`,
      '',
      table(
        hosts.map((h) => ({
          host: h.name,
          role: h.role,
          state: h.running ? 'running' : 'DOWN',
          ssh: `${h.ssh.host}:${h.ssh.port}`,
          addresses: Object.entries(h.addresses)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
        })),
        ['host', 'role', 'state', 'ssh', 'addresses'],
      ),
      '',
    ].join('\n'),
  )
}
