/**
 * The deployment process of the crash tests, each a test file that runs itself again as this child: one deployment,
 * its summary on stdout for the parent to read, its outcome in the exit code.
 */
import { startDeployment, resumeDeployment } from '../../src/engine/engine.js'
import type { EngineStore } from '../../src/engine/store.js'
import type { TaskRunner } from '../../src/engine/scheduler.js'
import type { ExecutionPlan } from '../../src/engine/types.js'

/**
 * `start`: deploys `plan` as a new deployment of `env`; `resume`: resumes the environment's latest deployment. Prints
 * the summary as one JSON line; the exit code is 0 when the deployment ended ready, 1 otherwise.
 */
export async function deployAndReport(
  store: EngineStore,
  env: string,
  mode: string,
  plan: () => ExecutionPlan,
  runner: TaskRunner,
): Promise<void> {
  const summary =
    mode === 'start'
      ? await startDeployment(store, env, plan(), { runner })
      : await resumeDeployment(store, store.latestDeployment(env)!.id, { runner })
  process.stdout.write(JSON.stringify(summary) + '\n')
  process.exitCode = summary.status === 'ready' ? 0 : 1
}
