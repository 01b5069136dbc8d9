// Hostile input: REST API bodies to the server (in-process through Fastify's inject, the same app `xenstack
// server` listens with; SQLite store). Valid bodies of every route that takes one are mutated (structure edits,
// JSON text edits) or replaced by random values, sent with the token. No answer may be a 5xx; every 4xx is the
// server's error document naming what is wrong (message, and the field or the problems list for 400s).
// FUZZ_SEED / FUZZ_CASES / FUZZ_CASE replay or scale (docs/reliability.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  scratchDirs,
  fuzz,
  formatFuzzStats,
  isFullRun,
  JSON_TOKENS,
  mutateStructure,
  mutateText,
  randomValue,
  type Rng,
} from '@xenstack/testkit'
import { recordTestRelease, testServer } from '../server/helpers.js'

const tmp = scratchDirs()

const TARGETS: { method: 'POST' | 'PUT'; url: string; valid: Record<string, unknown> }[] = [
  {
    method: 'POST',
    url: '/api/v1/environments',
    valid: {
      name: 'fz',
      release: 'fuzzrel',
      settings: { 'common.workers.value': '8', 'common.debug.value': true },
      nodes: [{ name: 'c1', roles: ['compute'], data: { local: true } }],
    },
  },
  { method: 'PUT', url: '/api/v1/environments/env-fz/settings', valid: { changes: { 'common.workers.value': '8' } } },
  {
    method: 'POST',
    url: '/api/v1/environments/env-fz/settings/validate',
    valid: { changes: { 'common.workers.value': '0', 'common.admin_password.value': 'Another-Passw0rd' } },
  },
  { method: 'POST', url: '/api/v1/environments/env-fz/nodes', valid: { name: 'n2', roles: ['compute'], data: {} } },
  { method: 'PUT', url: '/api/v1/environments/env-fz/nodes/n1', valid: { roles: ['controller'], data: { a: 1 } } },
  {
    method: 'POST',
    url: '/api/v1/pools',
    // Port 1 on loopback: a pool that passes validation is refused at once (no DNS, no waiting).
    valid: {
      name: 'p',
      url: 'http://127.0.0.1:1',
      username: 'root',
      password: 'Pool-Passw0rd',
      tls: { verify: false },
    },
  },
  { method: 'POST', url: '/api/v1/environments/env-fz/deployments', valid: { dryRun: true } },
]
// The REST server's own danger: member names that reach object prototypes.
const BODY_TOKENS = [...JSON_TOKENS, '"__proto__":', '"constructor":{"prototype":{}},']

function hostileBody(rng: Rng, valid: Record<string, unknown>): { payload: string; contentType: string } {
  return rng.weighted<() => { payload: string; contentType: string }>([
    [
      6,
      () => ({ payload: JSON.stringify(mutateStructure(rng, valid, rng.int(1, 3))), contentType: 'application/json' }),
    ],
    [3, () => ({ payload: mutateText(rng, JSON.stringify(valid), BODY_TOKENS), contentType: 'application/json' })],
    [1, () => ({ payload: JSON.stringify(randomValue(rng, 3)), contentType: 'application/json' })],
    [
      0.3,
      () => ({
        payload: JSON.stringify(valid),
        contentType: rng.pick(['text/plain', 'application/xml', 'application/x-www-form-urlencoded']),
      }),
    ],
  ])()
}

test('REST API: 10,000 hostile bodies are answered 2xx or a 4xx naming the field, never 5xx', async (t) => {
  const s = await testServer(t, 'sqlite', tmp('xenstack-fuzz-'))
  assert.ok(s)
  recordTestRelease(s.state, 'fuzzrel', [{ id: 'hello', cmd: 'true' }])
  const req = (method: string, url: string, payload: string, contentType = 'application/json') =>
    s.app.inject({ method: method as 'POST', url, payload, headers: { ...s.auth, 'content-type': contentType } })
  const created = await req(
    'POST',
    '/api/v1/environments',
    JSON.stringify({ name: 'env-fz', release: 'fuzzrel', nodes: [{ name: 'n1', roles: ['compute'] }] }),
  )
  assert.equal(created.statusCode, 201, created.body)

  const stats = await fuzz({
    name: 'REST API bodies',
    seed: 14,
    budgetMs: 10_000,
    run: async (rng) => {
      const target = rng.pick(TARGETS)
      const { payload, contentType } = hostileBody(rng, target.valid)
      let sent = payload
      if (target.url.endsWith('/deployments')) {
        // A valid dry run or deployment is not bad input; keep the cases cheap.
        const m = /"dryRun"\s*:\s*(true|false)/.exec(sent)
        if (m || sent === '{}') sent = sent.replace(/"dryRun"\s*:\s*(true|false)/, '"dryRun":"maybe"')
        if (sent === '{}') sent = '{"dryRun":1}'
      }
      if (target.url === '/api/v1/pools') sent = sent.replace(/"url"\s*:\s*"[^"]*"/g, '"url":"http://127.0.0.1:1"')
      const res = await req(target.method, target.url, sent, contentType)
      const what = `${target.method} ${target.url} ${sent.slice(0, 300)} → ${res.statusCode} ${res.body.slice(0, 300)}`
      assert.ok(res.statusCode < 500, `a 5xx for bad input: ${what}`)
      if (res.statusCode >= 400) {
        const err = res.json() as { error?: string; message?: string; field?: string; problems?: unknown[] }
        assert.ok(typeof err.message === 'string' && err.message.length > 0, `a 4xx says why: ${what}`)
        if (res.statusCode === 400)
          assert.ok(
            err.field || (err.problems && err.problems.length) || /body|JSON|\bat\b|:/i.test(err.message),
            `a 400 names where: ${what}`,
          )
        return `http-${res.statusCode}`
      }
      return 'accepted'
    },
  })
  console.log(formatFuzzStats(stats))
  // Still serving, and the environment the cases hammered is intact.
  const env = await s.app.inject({ method: 'GET', url: '/api/v1/environments/env-fz', headers: s.auth })
  assert.equal(env.statusCode, 200)
  if (isFullRun(stats)) assert.ok((stats.outcomes['http-400'] ?? 0) > stats.cases / 2)
})
