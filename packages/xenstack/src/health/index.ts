/** Health checks (issue 10): OSTF-style test sets that check a XenServer-backed environment and explain failures. */
export * from './types.js'
export { StepFailure, SkipTest, StepError, failureMessage, commandEvidence } from './step.js'
export { HealthStore, HEALTH_MIGRATIONS, ActiveRunError, RunNotFoundError } from './store.js'
export {
  HealthRunner,
  UnknownTestSetError,
  UnknownTestError,
  RunNotActiveHereError,
  describe as describeTest,
  type HealthRunnerOptions,
  type EnvironmentDescription,
  type OpenedEnvironment,
} from './runner.js'
export { TEST_SETS, testSet } from './testsets.js'
export { parseDeploymentTags, unmetTags, releaseAtLeast, disabledReason, environmentTags } from './tags.js'
