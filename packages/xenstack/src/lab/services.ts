/**
 * Services the lab starts on its hosts from the environment description (`services:` in LabOptions or the
 * `lab up --env` file): `[{ kind, host, options }]`. The controller's HTTP reachability probe is built in (see
 * `httpProbePort`); other kinds register an implementation here.
 *
 * Hook for the Glance image service (issue 9): a module calls
 *   registerLabServiceKind('glance', async (ctx, spec) => { …start it with ctx.startOnHost… return { url } })
 * and is imported before the lab comes up. The `lab up` supervisor imports the modules named in
 * $XENSTACK_LAB_SERVICE_MODULES (comma-separated paths or package specifiers) and, when it exists,
 * packages/xenstack/dist/src/integration/lab-services.js — put the registration there.
 */
import type { Lab, LabHost } from './lab.js'

export interface LabServiceSpec {
  kind: string
  /** Host name (default: the first controller). */
  host?: string
  options?: Record<string, unknown>
}

export interface LabServiceEndpoint {
  kind: string
  host: string
  url?: string
  /** PIDs of what it started (they run in the host's namespaces, so lab down stops them anyway). */
  pids?: number[]
  [key: string]: unknown
}

export interface LabServiceContext {
  lab: Lab
  host: LabHost
  /** The host's dir on the machine (logs in <hostDir>/log). */
  hostDir: string
  /** Starts a long-running process on the host, output in <hostDir>/log/<logName>. */
  startOnHost(argv: string[], logName: string, env?: NodeJS.ProcessEnv): number
}

export type LabServiceImpl = (ctx: LabServiceContext, spec: LabServiceSpec) => Promise<LabServiceEndpoint>

const kinds = new Map<string, LabServiceImpl>()

export function registerLabServiceKind(kind: string, impl: LabServiceImpl): void {
  kinds.set(kind, impl)
}

export function labServiceKinds(): string[] {
  return [...kinds.keys()].sort()
}

export async function startLabServices(lab: Lab, specs: LabServiceSpec[]): Promise<LabServiceEndpoint[]> {
  const out: LabServiceEndpoint[] = []
  for (const [i, spec] of specs.entries()) {
    const impl = kinds.get(spec.kind)
    if (!impl)
      throw new Error(
        `services[${i}].kind: no lab service "${spec.kind}" (known: ${labServiceKinds().join(', ') || 'none registered'})`,
      )
    const hostName = spec.host ?? lab.hosts.find((h) => h.role === 'controller')?.name
    if (!hostName) throw new Error(`services[${i}].host: no host given and the lab has no controller`)
    const host = lab.host(hostName)
    out.push(
      await impl(
        {
          lab,
          host,
          hostDir: lab.hostDir(host.name),
          startOnHost: (argv, logName, env) => lab.startOnHost(host.name, argv, logName, env),
        },
        spec,
      ),
    )
  }
  return out
}

/** Imports the modules that register service kinds (see the header). */
export async function loadLabServiceModules(): Promise<void> {
  const mods = (process.env.XENSTACK_LAB_SERVICE_MODULES ?? '').split(',').filter(Boolean)
  const integration = new URL('../integration/lab-services.js', import.meta.url).href
  for (const m of [...mods, integration]) {
    try {
      await import(m)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (m === integration && code === 'ERR_MODULE_NOT_FOUND' && (e as Error).message.includes('lab-services.js'))
        continue
      throw new Error(`cannot load lab service module ${m}: ${(e as Error).message}`)
    }
  }
}
