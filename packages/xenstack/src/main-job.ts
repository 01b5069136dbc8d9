/**
 * The main job (`npm start`): starts xenstack's parts with embedded defaults and keeps them running
 * until SIGINT/SIGTERM, then stops each one in reverse order and exits 0.
 *
 * Parts register here (the pool: main-pool.ts, the server: main-server.ts); each is a `Service`, started in
 * registration order. A service's `start` sees what the ones before it reported (the server reads the pool's).
 * A signal may arrive while a service is starting (a lab takes seconds): that service is stopped too, so its `stop`
 * must wait for its own start to settle before undoing it.
 * How long each start took is measured and printed: start-up must stay fast.
 */
import { stringify } from 'yaml'
import { emit } from './cli/output.js'

export interface Service {
  name: string
  /** Starts the service; resolves with what to print about it (URLs, credentials). */
  start(previous: Record<string, unknown>): Promise<Record<string, unknown>>
  /** Undoes start — also when called while start is still running or after it failed. */
  stop(): Promise<void>
}

export type ServiceFactory = () => Promise<Service[]>

const factories: ServiceFactory[] = []

/** Adds the services a part of xenstack contributes to the main job. */
export function registerMainJobServices(factory: ServiceFactory): void {
  factories.push(factory)
}

export async function runMainJob(opts: { json?: boolean }): Promise<void> {
  const t0 = performance.now()
  const services: Service[] = []
  for (const f of factories) services.push(...(await f()))
  const started: Service[] = []
  const info: Record<string, unknown> = {}
  const startupMs: Record<string, number> = {}
  let stopping = false
  const stop = async (signal: string, code = 0) => {
    if (stopping) return
    stopping = true
    // with --json, stdout holds the one JSON object: the progress goes to stderr
    if (opts.json) console.error(`xenstack: ${signal}, stopping`)
    else console.log(`\nxenstack: ${signal}, stopping`)
    for (const s of [...started].reverse()) {
      try {
        await s.stop()
      } catch (e) {
        console.error(`xenstack: stopping ${s.name} failed: ${(e as Error).message}`)
      }
    }
    process.exit(code)
  }
  // A second Ctrl-C must not kill the job halfway through taking the lab down (that would leave its namespaces and
  // mounts behind): it is only acknowledged.
  const onSignal = (signal: string) => {
    if (stopping) console.error(`xenstack: ${signal} received, still stopping (taking the lab down)`)
    else void stop(`${signal} received`)
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  for (const s of services) {
    if (stopping) return
    // listed before it starts: a signal during its start stops it too (each service's stop waits for its start)
    started.push(s)
    const t = performance.now()
    try {
      info[s.name] = await s.start(info)
    } catch (e) {
      if (stopping) return
      console.error(`xenstack: starting ${s.name} failed: ${(e as Error).message}`)
      await stop(`${s.name} did not start`, 1)
      return
    }
    startupMs[s.name] = Math.round(performance.now() - t)
  }
  if (stopping) return
  const total = Math.round(performance.now() - t0)
  emit(opts, { running: info, startupMs: { ...startupMs, total } }, () => {
    console.log('xenstack is running:')
    if (services.length === 0) console.log('  (no services are built yet)')
    const details = stringify(info, { indent: 2 }).trimEnd()
    if (services.length > 0) console.log(details.replace(/^/gm, '  '))
    console.log(
      `started in ${total} ms (${Object.entries(startupMs)
        .map(([n, ms]) => `${n} ${ms} ms`)
        .join(', ')})`,
    )
    console.log('Press Ctrl-C to stop.')
  })
  // Keep the event loop alive until a signal arrives.
  await new Promise<never>(() => setInterval(() => undefined, 1 << 30))
}
