// The simulated pool the HIMN tests start from: one host (xs1), a default ext SR named "Local storage", no templates.
import { startSimServer, validateScenario, type SimServer } from '@xenstack/xapi-sim'

/**
 * A simulator serving that pool, named `name`, with `extra` laid over it as the scenario format has it (VMs, networks,
 * version, patches; `srs` replaces the default SR).
 */
export function startOneHostPool(
  name: string,
  password: string,
  extra: Record<string, unknown> = {},
): Promise<SimServer> {
  const scenario = validateScenario(
    {
      name,
      pools: [
        {
          name,
          hosts: [{ name: 'xs1' }],
          srs: [{ name: 'Local storage', type: 'ext', size: '100GiB', default: true }],
          templates: 'none',
          ...extra,
        },
      ],
    },
    name,
  )
  return startSimServer({ scenario, password })
}
