import type { DeploymentStatus } from './types.js'

/**
 * What an environment's status becomes after a deployment ends in each status — nailgun's cluster statuses. The
 * CLI's `deploy` and the server's deployments set the same ones, so `env list` and the web UI agree.
 */
export const ENV_STATUS: Readonly<Record<DeploymentStatus, string>> = {
  pending: 'deployment',
  running: 'deployment',
  ready: 'operational',
  error: 'error',
  stopped: 'stopped',
  partially_deployed: 'partially_deployed',
}
