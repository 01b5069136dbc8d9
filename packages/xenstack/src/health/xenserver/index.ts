/**
 * xenstack's XenServer checks, by test set, and the runner wired to the state store. Every check is declared as
 * data (title, description, numbered steps, duration, deployment tags) next to its code.
 */
import type { StateStore } from '../../state/store.js'
import { HealthRunner } from '../runner.js'
import { HealthStore } from '../store.js'
import type { HealthTest } from '../types.js'
import { dom0RootFs, xapiSessionsStable } from './cloudvalidation.js'
import {
  dom0BridgeModule,
  dom0ConsoleLogs,
  dom0Firewall,
  neutronAgentConfig,
  novaComputeConfig,
  rootwrapXenapi,
} from './configuration.js'
import { describeEnvironment, openXenServerEnvironment, type XenServerHealthEnv } from './environment.js'
import { ceilometerInspector, consoleTokensShared } from './ha.js'
import { defaultSr, dom0Plugins, himnInterface, platformVersion, xapiOverHimn } from './sanity.js'
import { dom0ThroughNat, novncForward } from './smoke.js'
import { dom0SrLinks } from './sr-links.js'
import { testVmImage } from './test-image.js'

export { describeEnvironment, openXenServerEnvironment, type XenServerHealthEnv }

export const XENSERVER_CHECKS: readonly HealthTest<XenServerHealthEnv>[] = [
  himnInterface,
  xapiOverHimn,
  platformVersion,
  defaultSr,
  dom0Plugins,
  testVmImage,
  dom0ThroughNat,
  novncForward,
  consoleTokensShared,
  ceilometerInspector,
  dom0RootFs,
  xapiSessionsStable,
  novaComputeConfig,
  neutronAgentConfig,
  rootwrapXenapi,
  dom0Firewall,
  dom0ConsoleLogs,
  dom0BridgeModule,
  dom0SrLinks,
]

/** The runner over the state store with xenstack's checks (what the CLI and the server use). */
export function xenserverHealthRunner(
  state: StateStore,
  opts: { concurrency?: number; testTimeoutMs?: number } = {},
): HealthRunner<XenServerHealthEnv> {
  return new HealthRunner<XenServerHealthEnv>({
    store: new HealthStore(state),
    catalog: XENSERVER_CHECKS,
    describe: (env) => describeEnvironment(state, env),
    open: (env) => openXenServerEnvironment(state, env),
    ...opts,
  })
}
