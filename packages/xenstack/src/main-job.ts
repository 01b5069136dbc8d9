/**
 * The main job (`npm start`): starts xenstack's parts with embedded defaults and keeps them running
 * until SIGINT/SIGTERM, then stops each one in reverse order and exits 0.
 *
 * Parts register here as they land (simulator, lab, server + UI); each is a `Service`.
 */
import { stringify } from 'yaml'
import { emit } from './cli/output.js'

export interface Service {
  name: string
  /** Starts the service; resolves with what to print about it (URLs, credentials). */
  start(): Promise<Record<string, unknown>>
  stop(): Promise<void>
}

export type ServiceFactory = () => Promise<Service[]>

const factories: ServiceFactory[] = []

/** Adds the services a part of xenstack contributes to the main job. */
export function registerMainJobServices(factory: ServiceFactory): void {
  factories.push(factory)
}

export async function runMainJob(opts: { json?: boolean }): Promise<void> {
  const services: Service[] = []
  for (const f of factories) services.push(...(await f()))
  const started: Service[] = []
  const info: Record<string, unknown> = {}
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    if (!opts.json) console.log(`\nxenstack: ${signal} received, stopping`)
    for (const s of started.reverse()) {
      try {
        await s.stop()
      } catch (e) {
        console.error(`xenstack: stopping ${s.name} failed: ${(e as Error).message}`)
      }
    }
    process.exit(0)
  }
  process.once('SIGINT', () => void stop('SIGINT'))
  process.once('SIGTERM', () => void stop('SIGTERM'))
  for (const s of services) {
    info[s.name] = await s.start()
    started.push(s)
  }
  emit(opts, { running: info }, () => {
    console.log('xenstack is running:')
    if (services.length === 0) console.log('  (no services are built yet)')
    const details = stringify(info, { indent: 2 }).trimEnd()
    if (services.length > 0) console.log(details.replace(/^/gm, '  '))
    console.log('Press Ctrl-C to stop.')
  })
  // Keep the event loop alive until a signal arrives.
  await new Promise<never>(() => setInterval(() => undefined, 1 << 30))
}
