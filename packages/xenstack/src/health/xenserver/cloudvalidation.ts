/**
 * Cloud validation: resources that run out quietly. Dom0's root file system is small (4 GiB on XenServer) and
 * fills with logs and stray images; XAPI keeps a bounded number of sessions and evicts the oldest, even in use,
 * when clients leak them (CTX137488) — the health run itself must not leak any.
 */
import { commandEvidence } from '../step.js'
import type { HealthTest } from '../types.js'
import { onEveryNode } from './common.js'
import type { XenServerHealthEnv } from './environment.js'

type Test = HealthTest<XenServerHealthEnv>

export const WARN_PERCENT = 80
export const FAIL_PERCENT = 95

export const dom0RootFs: Test = {
  id: 'xenstack.health.xenserver.cloudvalidation.test_dom0_root_fs_room',
  testset: 'cloudvalidation',
  title: 'Dom0’s root file system has room',
  description: `A warning from ${WARN_PERCENT} % use, a failure from ${FAIL_PERCENT} %: a full dom0 stops XAPI and every VM operation.`,
  steps: ['Read the use of / on every compute node’s dom0 (df -P /).'],
  duration: '2 s',
  deploymentTags: 'xenserver',
  async run(ctx) {
    const env = ctx.env
    if (!env.computes.length) ctx.skip('the environment has no compute nodes')
    await ctx.step(1, async () => {
      const r = await onEveryNode(env.computes, async (n) => {
        const dom0 = await env.dom0(n.name)
        const df = await dom0.run(['df', '-P', '/'])
        const m = /\s(\d+)%\s+\/\s*$/m.exec(df.stdout)
        if (!m) throw new Error(`${dom0.host}: cannot read the use of / from df -P: ${df.stdout.trim()}`)
        return { host: dom0.host, percent: Number(m[1]), df }
      })
      for (const x of r) ctx.evidence(`${x.node.name}'s dom0: df -P /`, x.value.df.stdout.trim())
      const full = r.filter((x) => x.value.percent >= FAIL_PERCENT)
      for (const x of r.filter((x) => x.value.percent >= WARN_PERCENT && x.value.percent < FAIL_PERCENT))
        ctx.warn(`${x.node.name}'s dom0: / is ${x.value.percent} % full (warning from ${WARN_PERCENT} %)`)
      if (full.length)
        ctx.fail(
          `less than ${FAIL_PERCENT} % of dom0's root file system in use`,
          full.map((x) => `${x.node.name}'s dom0: / is ${x.value.percent} % full`).join('; '),
          full.map((x) => commandEvidence(`${x.node.name}'s dom0: df -P /`, x.value.df)),
        )
    })
  },
}

/**
 * The number of sessions a pool holds. XAPI has no call that lists sessions; the simulator's admin endpoint
 * (`/_sim/info`) reports it. Undefined when the pool does not say.
 */
export async function sessionCount(url: string, signal?: AbortSignal): Promise<number | undefined> {
  try {
    const res = await fetch(new URL('/_sim/info', url), { signal: signal ?? AbortSignal.timeout(5000) })
    if (!res.ok) return undefined
    const info = (await res.json()) as { sessions?: unknown }
    return typeof info.sessions === 'number' ? info.sessions : undefined
  } catch {
    return undefined
  }
}

export const xapiSessionsStable: Test = {
  id: 'xenstack.health.xenserver.cloudvalidation.test_xapi_sessions_not_leaked',
  testset: 'cloudvalidation',
  title: 'The run leaves the pool’s XAPI session count where it found it',
  description:
    'Each XAPI login that is not logged out holds a session until XAPI evicts the oldest (possibly nova’s). The ' +
    'count is read before any test of the run starts and again after all the others have ended.',
  steps: ['Compare each pool’s session count at the end of the run with the count at its start.'],
  duration: '1 s',
  deploymentTags: 'xenserver',
  runLast: true,
  async baseline(env, signal) {
    const out: Record<string, number | undefined> = {}
    for (const p of env.pools) {
      // The run's own connection logs in first, so it is counted on both sides.
      await p.xapi.call('pool.get_all')
      out[p.name] = await sessionCount(p.url, signal)
    }
    return out
  },
  async run(ctx) {
    const before = (ctx.baseline ?? {}) as Record<string, number | undefined>
    await ctx.step(1, async () => {
      const counted = ctx.env.pools.filter((p) => before[p.name] !== undefined)
      if (!counted.length)
        ctx.skip('no pool of this environment reports its session count (XAPI has no call for it; the simulator does)')
      const leaks: string[] = []
      for (const p of counted) {
        // Another test may be between its login and its logout right now: a leak is a count that stays higher.
        let after = await sessionCount(p.url, ctx.signal)
        for (let i = 0; i < 20 && after !== undefined && after > before[p.name]!; i++) {
          await new Promise((r) => setTimeout(r, 250))
          after = await sessionCount(p.url, ctx.signal)
        }
        ctx.evidence(`pool ${p.name}: sessions`, { before: before[p.name], after })
        if (after === undefined) leaks.push(`pool ${p.name} stopped reporting its session count`)
        else if (after > before[p.name]!)
          leaks.push(
            `pool ${p.name} holds ${after} sessions after the run, ${before[p.name]} before (${after - before[p.name]!} leaked)`,
          )
      }
      if (leaks.length) ctx.fail('the same number of XAPI sessions after the run as before it', leaks.join('; '))
    })
  },
}
