/**
 * The health checks' REST API in fuel-ostf's shape, as a Fastify plugin the server mounts, so clients written for
 * fuel-ostf (its UI, python-fuelclient's `fuel health`) can drive it:
 *
 *   GET /v1/testsets/{env}          [{id, name}] — the sets that apply to the environment
 *   GET /v1/tests/{env}             [{id, testset, name, description, duration, message, step, status, taken}]
 *                                   (status/message from the environment's last run of each set)
 *   GET /v1/testruns                every run, newest first
 *   GET /v1/testruns/{id}           one run
 *   GET /v1/testruns/last/{env}     the last run of each set on the environment
 *   POST /v1/testruns               [{testset, tests?: [id], metadata: {cluster_id, config?}}] → [run]
 *   PUT /v1/testruns                [{id, status: 'stopped' | 'restarted', tests?: [id]}] → [run]
 *
 * A run is `{id, testset, meta, cluster_id, status, started_at, ended_at, tests: [...]}` (plus each test's
 * `evidence`, which fuel-ostf did not have). `{env}` and `cluster_id` are an environment's name or id. Errors are
 * `{message}` with 400 (bad body), 404 (unknown environment, run or set) or 409 (a run of the set is active).
 * fuel-ostf's `ostf_os_access_creds` are accepted and ignored: checks use the environment's own credentials, and
 * nothing a client sends is stored except `cluster_id` and `config`.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import { disabledReason } from './tags.js'
import { TEST_SETS } from './testsets.js'
import {
  ActiveRunError,
  RunNotActiveHereError,
  RunNotFoundError,
  UnknownTestError,
  UnknownTestSetError,
  type HealthRunner,
} from './runner.js'
import type { RunRecord, TestResult } from './types.js'

export interface HealthRoutesDeps {
  runner: HealthRunner<any>
  /** An environment's name from its name or id; undefined when there is none (→ 404). */
  environmentName(key: string): string | undefined
}

/** fuel-ostf's test object. */
export function testJson(t: TestResult) {
  return {
    id: t.id,
    testset: t.testset,
    name: t.name,
    description: t.description,
    duration: t.duration,
    message: t.message,
    step: t.step,
    status: t.status,
    taken: t.taken,
    evidence: t.evidence,
    started_at: t.startedAt,
    ended_at: t.endedAt,
  }
}

/** fuel-ostf's run object. */
export function runJson(r: RunRecord) {
  return {
    id: r.id,
    testset: r.testset,
    meta: r.meta,
    cluster_id: r.environment,
    status: r.status,
    started_at: r.startedAt,
    ended_at: r.endedAt,
    tests: r.tests.map(testJson),
  }
}

class BadRequest extends Error {}
class UnknownEnvironment extends Error {}

const isObj = (v: unknown): v is Record<string, any> => !!v && typeof v === 'object' && !Array.isArray(v)

function stringList(v: unknown, where: string): string[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw new BadRequest(`${where}: expected a list of test ids (strings)`)
  return v as string[]
}

/** A list body, or one object (fuel-ostf's clients always send lists; curl users often do not). */
function listBody(body: unknown): Record<string, any>[] {
  const list = Array.isArray(body) ? body : [body]
  if (!list.length || !list.every(isObj)) throw new BadRequest('expected a JSON list of objects')
  return list
}

export async function registerHealthRoutes(app: FastifyInstance, deps: HealthRoutesDeps): Promise<void> {
  const { runner } = deps
  const store = runner.store

  const envOr404 = (key: string): string => {
    const name = deps.environmentName(key)
    if (!name) throw new UnknownEnvironment(`environment ${key} does not exist`)
    return name
  }

  const fail = (reply: FastifyReply, e: unknown) => {
    const message = (e as Error)?.message ?? String(e)
    if (e instanceof BadRequest) return reply.code(400).send({ message })
    if (
      e instanceof RunNotFoundError ||
      e instanceof UnknownEnvironment ||
      e instanceof UnknownTestSetError ||
      e instanceof UnknownTestError
    )
      return reply.code(404).send({ message })
    if (e instanceof ActiveRunError || e instanceof RunNotActiveHereError) return reply.code(409).send({ message })
    throw e
  }

  app.get<{ Params: { env: string } }>('/v1/testsets/:env', async (req, reply) => {
    try {
      const env = envOr404(req.params.env)
      const desc = runner.options.describe(env)
      return TEST_SETS.filter((s) => !disabledReason(s, desc)).map((s) => ({ id: s.id, name: s.name }))
    } catch (e) {
      return fail(reply, e)
    }
  })

  app.get<{ Params: { env: string } }>('/v1/tests/:env', async (req, reply) => {
    try {
      const env = envOr404(req.params.env)
      const last = new Map(store.lastRuns(env).map((r) => [r.testset, r]))
      return TEST_SETS.flatMap((s) => {
        const run = last.get(s.id)
        return runner.plan(env, s.id).map((planned) => {
          const ran = run?.tests.find((t) => t.id === planned.id)
          // Never run: fuel-ostf shows no status; not applicable: disabled with the reason.
          const t = ran ?? { ...planned, status: planned.status === 'disabled' ? planned.status : null }
          return testJson(t as TestResult)
        })
      })
    } catch (e) {
      return fail(reply, e)
    }
  })

  app.get('/v1/testruns', async () => store.runs().map(runJson))

  app.get<{ Params: { env: string } }>('/v1/testruns/last/:env', async (req, reply) => {
    try {
      return store.lastRuns(envOr404(req.params.env)).map(runJson)
    } catch (e) {
      return fail(reply, e)
    }
  })

  app.get<{ Params: { id: string } }>('/v1/testruns/:id', async (req, reply) => {
    try {
      return runJson(store.run(req.params.id))
    } catch (e) {
      return fail(reply, e)
    }
  })

  app.post('/v1/testruns', async (req, reply) => {
    try {
      const items = listBody(req.body).map((item, i) => {
        const where = `item ${i + 1}`
        if (typeof item.testset !== 'string') throw new BadRequest(`${where}: "testset" (a string) is required`)
        const md = item.metadata
        if (!isObj(md) || (typeof md.cluster_id !== 'string' && typeof md.cluster_id !== 'number'))
          throw new BadRequest(`${where}: "metadata.cluster_id" (the environment's name or id) is required`)
        return {
          testset: item.testset,
          tests: stringList(item.tests, `${where}: "tests"`),
          env: envOr404(String(md.cluster_id)),
          meta: { cluster_id: String(md.cluster_id), ...(isObj(md.config) ? { config: md.config } : {}) },
        }
      })
      const runs = items.map((it) =>
        runner.start(it.env, it.testset, { tests: it.tests?.length ? it.tests : undefined, meta: it.meta }),
      )
      return reply.code(200).send(runs.map(runJson))
    } catch (e) {
      return fail(reply, e)
    }
  })

  app.put('/v1/testruns', async (req, reply) => {
    try {
      const items = listBody(req.body).map((item, i) => {
        const where = `item ${i + 1}`
        if (typeof item.id !== 'string' && typeof item.id !== 'number')
          throw new BadRequest(`${where}: "id" (the run's id) is required`)
        if (item.status !== 'stopped' && item.status !== 'restarted')
          throw new BadRequest(
            `${where}: "status" must be "stopped" or "restarted", got ${JSON.stringify(item.status)}`,
          )
        return {
          id: String(item.id),
          status: item.status as string,
          tests: stringList(item.tests, `${where}: "tests"`),
        }
      })
      const out: RunRecord[] = []
      for (const it of items) {
        if (it.status === 'stopped') out.push(await runner.stop(it.id))
        else out.push(runner.restart(it.id, it.tests?.length ? it.tests : undefined))
      }
      return out.map(runJson)
    } catch (e) {
      return fail(reply, e)
    }
  })
}
