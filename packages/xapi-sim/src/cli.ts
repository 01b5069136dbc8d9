/**
 * The simulator's command line, shared by `xenstack sim` and the package's own `xapi-sim` bin.
 *
 * Output contract: the first stdout line is exactly `xapi-sim listening on http://HOST:PORT`; then `user`,
 * `password` (only when generated or given, never read back from state), members, further pools, the state
 * directory and the admin endpoint. SIGINT/SIGTERM flush state, stop and exit 0.
 */
import { parseArgs } from 'node:util'
import { parseFaultFlag, FaultRuleError, type FaultRule } from './faults.js'
import { ScenarioError } from './scenario.js'
import { StateError } from './persist.js'
import { startSimServer, type SimServer, type SimServerOptions } from './server.js'

export interface SimCliOptions {
  listen?: string
  hosts?: string | number
  vms?: string | number
  scenario?: string
  state?: string
  password?: string
  pluginsDir?: string
  /** With --state: answer a call only once its changes are on disk (see SimServerOptions.syncWrites). */
  syncWrites?: boolean
  /** Fault flags: `KIND[:METHOD|PATH][@RATE][+LATENCY_MS]`. */
  fault?: string[]
  json?: boolean
}

/** A usage or input mistake, reported as one line by the CLIs. */
export class SimCliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message)
    this.name = 'SimCliError'
  }
}

function count(v: string | number | undefined, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined
  const n = typeof v === 'number' ? v : Number(v)
  if (!Number.isInteger(n) || n < min) throw new SimCliError(`${flag}: expected an integer ≥ ${min}, got ${v}`, 2)
  return n
}

/** Validates CLI options into server options (throws SimCliError with exit code 2 or 5). */
export function simOptionsFromCli(o: SimCliOptions): SimServerOptions {
  const hosts = count(o.hosts, '--hosts', 1)
  const vms = count(o.vms, '--vms', 0)
  if (o.scenario !== undefined && (hosts !== undefined || vms !== undefined))
    throw new SimCliError('give either --scenario FILE or --hosts N [--vms M], not both', 2)
  if (o.syncWrites && o.state === undefined)
    throw new SimCliError('--sync-writes: needs --state DIR (there is nothing to write without one)', 2)
  let faults: FaultRule[] = []
  try {
    faults = (o.fault ?? []).map(parseFaultFlag)
  } catch (e) {
    if (e instanceof FaultRuleError) throw new SimCliError(e.message, 2)
    throw e
  }
  return {
    listen: o.listen,
    hosts,
    vms,
    scenario: o.scenario,
    state: o.state,
    password: o.password,
    pluginsDir: o.pluginsDir,
    syncWrites: o.syncWrites,
    faults,
  }
}

/** Starts the simulator and prints the banner; resolves once listening. */
export async function startSimCli(
  o: SimCliOptions,
  out: (line: string) => void = (l) => console.log(l),
): Promise<SimServer> {
  const opts = simOptionsFromCli(o)
  let server: SimServer
  try {
    server = await startSimServer(opts)
  } catch (e) {
    if (e instanceof ScenarioError || e instanceof StateError) throw new SimCliError(e.message, 5)
    throw new SimCliError((e as Error).message, 1)
  }
  out(`xapi-sim listening on ${server.url}`)
  const first = server.pools[0]
  if (o.json) {
    out(
      JSON.stringify({
        url: server.url,
        user: 'root',
        password: server.password ?? null,
        pools: server.pools.map((p) => ({
          name: p.name,
          url: p.url,
          hosts: Object.fromEntries(p.addresses),
          plugins_dirs: Object.fromEntries([...p.pluginsDirs].filter(([k]) => !k.startsWith('OpaqueRef:'))),
        })),
        state: o.state ?? null,
      }),
    )
    return server
  }
  out(`user: root`)
  if (server.password !== undefined)
    out(`password: ${server.password}${server.passwordGenerated ? ' (generated; pass --password to choose one)' : ''}`)
  else out(`password: unchanged (the one this state directory was created with; --password sets a new one)`)
  for (const p of server.pools) {
    const port = new URL(p.url).port
    out(
      `pool ${p.name}: ${p.url} — ${[...p.addresses].map(([h, a]) => `${h} http://${a}:${port}`).join(', ')}` +
        (p === first ? '' : ' (further pool)'),
    )
  }
  const dirs = [...new Set([...first.pluginsDirs].filter(([k]) => !k.startsWith('OpaqueRef:')).map(([, d]) => d))]
  out(`plugins: ${dirs.length === 1 ? dirs[0] : dirs.join(', ')}`)
  out(
    o.state
      ? `state: ${server.stateDir} (flushed every 5 s and on exit)`
      : `state: in memory (pass --state DIR to keep it)`,
  )
  out(`admin: ${server.url}/_sim/faults, ${server.url}/_sim/info`)
  return server
}

/** Runs until SIGINT/SIGTERM, then flushes and exits 0. */
export async function runSimCli(o: SimCliOptions): Promise<void> {
  const server = await startSimCli(o)
  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      process.stderr.write(`xapi-sim: ${signal} received, flushing state and stopping\n`)
      void server.close().then(
        () => resolve(),
        (e) => {
          process.stderr.write(`xapi-sim: stopping failed: ${(e as Error).message}\n`)
          process.exit(1)
        },
      )
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
  process.exit(0)
}

/** The `xapi-sim` bin: same flags as `xenstack sim`. */
export async function xapiSimMain(argv: string[]): Promise<void> {
  let values: Record<string, string | string[] | boolean | undefined>
  try {
    values = parseArgs({
      args: argv,
      options: {
        listen: { type: 'string' },
        hosts: { type: 'string' },
        vms: { type: 'string' },
        scenario: { type: 'string' },
        state: { type: 'string' },
        password: { type: 'string' },
        'plugins-dir': { type: 'string' },
        'sync-writes': { type: 'boolean' },
        fault: { type: 'string', multiple: true },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (e) {
    process.stderr.write(`xapi-sim: ${(e as Error).message}\nhint: run "xapi-sim --help"\n`)
    process.exit(2)
  }
  if (values.help) {
    process.stdout.write(
      'usage: xapi-sim [--listen HOST:PORT] [--hosts N] [--vms M] [--scenario FILE] [--state DIR [--sync-writes]]\n' +
        '                [--password P] [--plugins-dir DIR] [--fault KIND[:METHOD|PATH][@RATE][+MS]]... [--json]\n',
    )
    return
  }
  try {
    await runSimCli({
      listen: values.listen as string | undefined,
      hosts: values.hosts as string | undefined,
      vms: values.vms as string | undefined,
      scenario: values.scenario as string | undefined,
      state: values.state as string | undefined,
      password: values.password as string | undefined,
      pluginsDir: values['plugins-dir'] as string | undefined,
      syncWrites: values['sync-writes'] as boolean | undefined,
      fault: values.fault as string[] | undefined,
      json: values.json as boolean | undefined,
    })
  } catch (e) {
    process.stderr.write(`xapi-sim: ${(e as Error).message}\n`)
    process.exit(e instanceof SimCliError ? e.exitCode : 1)
  }
}
