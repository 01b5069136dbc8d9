// The REST API on both state-store backends: authentication on every route, bad input answered with a 4xx
// naming the field (never a 5xx), environments with settings and roles, plugins from an uploaded archive,
// and the OpenAPI document and security headers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import type { LightMyRequestResponse } from 'fastify'
import { buildPlugin } from '../../src/plugins/lifecycle.js'
import { builtinReleases } from '../../src/releases/release.js'
import { buildApp, serverContext, TokenStore } from '../../src/server/index.js'
import { StateStore } from '../../src/state/store.js'
import { corpusDir } from '../plugins/corpus.js'
import { BACKENDS, openStore } from '../state/databases.js'
import { recordTestRelease, testServer } from './helpers.js'

const tmp = scratchDirs()
const SECRET = 'Api-S3cret-Passw0rd'

/** Every route of the OpenAPI document with its parameters filled in. */
function routesOf(doc: any): { method: string; url: string }[] {
  const out: { method: string; url: string }[] = []
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    for (const method of Object.keys(ops)) {
      const url = path.replace(/\{(\w+)\}/g, (_m, p: string) => (p === 'id' ? '1' : p === 'version' ? '1.0.0' : 'x'))
      out.push({ method: method.toUpperCase(), url })
    }
  }
  return out
}

/** A small seeded generator (mulberry32): the same cases on every run. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

function randomValue(next: () => number, depth = 0): unknown {
  const k = Math.floor(next() * (depth > 2 ? 6 : 8))
  const strings = [
    '',
    'demo',
    'x'.repeat(300),
    '../../etc/passwd',
    'a.b.c',
    'a.b',
    '********',
    '💥',
    "'; DROP TABLE x;--",
  ]
  switch (k) {
    case 0:
      return null
    case 1:
      return next() < 0.5
    case 2:
      return Math.floor(next() * 2e9) - 1e9
    case 3:
    case 4:
      return strings[Math.floor(next() * strings.length)]
    case 5:
      return next() * 1e300
    case 6:
      return Array.from({ length: Math.floor(next() * 4) }, () => randomValue(next, depth + 1))
    default: {
      const keys = ['name', 'release', 'components', 'plugins', 'settings', 'nodes', 'roles', 'data', 'changes']
      keys.push('url', 'username', 'password', 'tls', 'dryRun', 'force', 'extra')
      const o: Record<string, unknown> = {}
      for (let i = Math.floor(next() * 5); i > 0; i--)
        o[keys[Math.floor(next() * keys.length)]] = randomValue(next, depth + 1)
      return o
    }
  }
}

for (const backend of BACKENDS) {
  test(`${backend}: every API route refuses a request without a token or with a wrong one (401); docs and / are public`, async (t) => {
    // No UI built in this web dir: / is the placeholder page.
    const s = await testServer(t, backend, tmp('xenstack-server-'), [], { webDir: tmp('xenstack-noweb-') })
    if (!s) return
    const docs = await s.app.inject({ method: 'GET', url: '/api/docs' })
    assert.equal(docs.statusCode, 200)
    const routes = routesOf(docs.json())
    assert.ok(routes.length >= 25, `the OpenAPI document lists ${routes.length} routes`)
    const wrong = s.token.slice(0, -4) + (s.token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    for (const r of routes) {
      const variants: Record<string, string>[] = [
        {},
        { authorization: `Bearer ${wrong}` },
        { authorization: 'Basic cm9vdDpyb290' },
      ]
      for (const headers of variants) {
        const res: LightMyRequestResponse = await s.app.inject({ method: r.method as 'GET', url: r.url, headers })
        assert.equal(res.statusCode, 401, `${r.method} ${r.url} with ${JSON.stringify(headers)}: ${res.body}`)
        assert.match(res.json().message, /token/)
      }
    }
    // The event stream's query token is checked the same way.
    const sse = await s.app.inject({ method: 'GET', url: `/api/v1/environments/x/events?access_token=${wrong}` })
    assert.equal(sse.statusCode, 401)
    // A query token is not accepted on other routes (it would end up in logs and histories).
    const q = await s.app.inject({ method: 'GET', url: `/api/v1/status?access_token=${s.token}` })
    assert.equal(q.statusCode, 401)
    const ok = await s.app.inject({ method: 'GET', url: '/api/v1/status', headers: s.auth })
    assert.equal(ok.statusCode, 200)
    assert.equal(ok.json().backend, backend)
    const root = await s.app.inject({ method: 'GET', url: '/' })
    for (const res of [ok, docs, root]) {
      assert.equal(res.headers['x-frame-options'], 'DENY')
      assert.match(String(res.headers['content-security-policy']), /frame-ancestors 'none'/)
    }
    assert.equal(root.statusCode, 200)
    assert.match(root.body, /UI is coming/)
    assert.match(root.body, /\/api\/docs/)
    // The token is stored hashed only.
    const rows = s.state.db.prepare('SELECT * FROM api_tokens').all() as Record<string, string>[]
    assert.equal(rows.length, 1)
    // (the secret is base64url, which may itself hold '_': take all of it after `xst_<id>_`, not a split piece —
    // a piece can be one character or empty, which any row text 'includes')
    const secret = /^xst_[0-9a-f]{16}_(.{43})$/.exec(s.token)![1]!
    assert.equal(JSON.stringify(rows).includes(secret), false)
  })

  test(`${backend}: bad input gets a 4xx naming the field, never a 5xx (fixed cases and 400 seeded random bodies)`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'))
    if (!s) return
    recordTestRelease(s.state, 'srvtest', [{ id: 'hello', cmd: 'true' }])
    const req = (method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
      s.app.inject({ method: method as 'GET', url, payload: payload as string, headers: { ...s.auth, ...headers } })
    const cases: [string, string, unknown, string][] = [
      ['POST', '/api/v1/environments', { name: 'bad name!' }, 'body.name'],
      ['POST', '/api/v1/environments', { name: 'ok', colour: 'red' }, 'body.colour'],
      ['POST', '/api/v1/environments', { release: 'srvtest' }, 'body.name'],
      [
        'POST',
        '/api/v1/environments',
        { name: 'ok', nodes: [{ name: 'n1', roles: 'compute' }] },
        'body.nodes[0].roles',
      ],
      ['POST', '/api/v1/environments', { name: 'ok', components: [1] }, 'body.components[0]'],
      ['POST', '/api/v1/pools', { name: 'p', url: 'http://127.0.0.1:1', username: 'root' }, 'body.password'],
      [
        'POST',
        '/api/v1/pools',
        { name: 'p', url: 'http://127.0.0.1:1', username: 'root', password: 5 },
        'body.password',
      ],
      [
        'POST',
        '/api/v1/pools',
        { name: 'p', url: 'x', username: 'u', password: 'p', tls: { verify: 'no' } },
        'body.tls.verify',
      ],
      ['POST', '/api/v1/environments/x/deployments', { dryRun: 'yes' }, 'body.dryRun'],
      ['PUT', '/api/v1/environments/x/settings', {}, 'body.changes'],
      ['PUT', '/api/v1/environments/x/settings', { changes: { nodots: 1 } }, 'body.changes'],
      ['GET', '/api/v1/deployments/abc', undefined, 'params.id'],
      ['GET', '/api/v1/environments/bad%20name/nodes', undefined, 'params.env'],
      ['DELETE', '/api/v1/plugins/BAD NAME/1.0', undefined, 'params.name'],
    ]
    for (const [method, url, body, field] of cases) {
      const res = await req(method, url, body)
      assert.equal(res.statusCode, 400, `${method} ${url} ${JSON.stringify(body)}: ${res.body}`)
      assert.equal(res.json().field, field, res.body)
      assert.ok(res.json().message.includes(field), res.body)
    }
    // Not JSON, not an archive, unknown things.
    const notJson = await req('POST', '/api/v1/environments', '{"name": ', { 'content-type': 'application/json' })
    assert.equal(notJson.statusCode, 400)
    const junk = await req('POST', '/api/v1/plugins', Buffer.from('not a tarball'), {
      'content-type': 'application/gzip',
    })
    assert.equal(junk.statusCode, 400, junk.body)
    const wrongType = await req('POST', '/api/v1/environments', '<name/>', { 'content-type': 'application/xml' })
    assert.equal(wrongType.statusCode, 415)
    assert.equal((await req('GET', '/api/v1/environments/nope')).statusCode, 404)
    assert.equal((await req('GET', '/api/v1/deployments/99')).statusCode, 404)
    assert.equal((await req('GET', '/api/v1/nothing-here')).statusCode, 404)
    // Semantic problems are 400s with every problem listed.
    const badSettings = await req('POST', '/api/v1/environments', {
      name: 'env-bad',
      release: 'srvtest',
      settings: { 'common.workers.value': 'many', 'common.nope.value': 1 },
    })
    assert.equal(badSettings.statusCode, 400, badSettings.body)
    assert.equal(badSettings.json().problems.length, 2, badSettings.body)

    // Seeded random bodies against every route that takes one: no 5xx, and 4xx answers say why.
    const next = rng(20261121)
    const targets: [string, string][] = [
      ['POST', '/api/v1/environments'],
      ['POST', '/api/v1/pools'],
      ['PUT', '/api/v1/environments/env-fz/settings'],
      ['POST', '/api/v1/environments/env-fz/settings/validate'],
      ['POST', '/api/v1/environments/env-fz/nodes'],
      ['PUT', '/api/v1/environments/env-fz/nodes/n1'],
      ['POST', '/api/v1/environments/env-fz/deployments'],
    ]
    assert.equal((await req('POST', '/api/v1/environments', { name: 'env-fz', release: 'srvtest' })).statusCode, 201)
    let fourxx = 0
    for (let i = 0; i < 400; i++) {
      const [method, url] = targets[i % targets.length]
      const body = i % 3 === 0 ? randomValue(next) : { name: `fz${i}`, ...(randomValue(next) as object) }
      if (url.endsWith('/deployments') && body && typeof body === 'object' && !Array.isArray(body))
        delete (body as Record<string, unknown>).dryRun // a valid dry run is not bad input; keep the cases cheap
      const res = await req(method, url, JSON.stringify(body), { 'content-type': 'application/json' })
      assert.ok(
        res.statusCode < 500,
        `case ${i}: ${method} ${url} ${JSON.stringify(body)} → ${res.statusCode} ${res.body}`,
      )
      if (res.statusCode >= 400) {
        fourxx++
        assert.ok(res.json().message, `case ${i}: a 4xx says why: ${res.body}`)
      }
    }
    assert.ok(fourxx > 200, `${fourxx} of 400 random bodies were refused`)
  })

  test(`${backend}: environments — create, settings get/validate/save (passwords redacted), nodes with role conflicts`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'))
    if (!s) return
    recordTestRelease(s.state, 'srvtest', [{ id: 'hello', cmd: 'true' }])
    const req = (method: string, url: string, payload?: unknown) =>
      s.app.inject({ method: method as 'GET', url, payload: payload as string, headers: s.auth })
    const created = await req('POST', '/api/v1/environments', {
      name: 'env1',
      release: 'srvtest',
      settings: { 'common.admin_password.value': SECRET },
      nodes: [{ name: 'c1', roles: ['compute'], data: { local: true } }],
    })
    assert.equal(created.statusCode, 201, created.body)
    assert.equal(created.json().release, 'srvtest')
    assert.deepEqual(
      created.json().nodes.map((n: any) => [n.name, n.roles]),
      [['c1', ['compute']]],
    )
    assert.equal((await req('POST', '/api/v1/environments', { name: 'env1', release: 'srvtest' })).statusCode, 409)
    assert.deepEqual(
      (await req('GET', '/api/v1/environments')).json().map((e: any) => e.name),
      ['env1'],
    )

    const settings = await req('GET', '/api/v1/environments/env1/settings')
    assert.equal(settings.json().common.admin_password.value, '********')
    assert.equal(settings.body.includes(SECRET), false)

    const invalid = await req('POST', '/api/v1/environments/env1/settings/validate', {
      changes: { 'common.workers.value': '0' },
    })
    assert.equal(invalid.statusCode, 200)
    assert.equal(invalid.json().valid, false)
    assert.match(invalid.json().problems.join(' '), /Workers/)
    const valid = await req('POST', '/api/v1/environments/env1/settings/validate', {
      changes: { 'common.workers.value': '8' },
    })
    assert.deepEqual(valid.json(), { valid: true, problems: [] })
    // validate saved nothing
    assert.equal((await req('GET', '/api/v1/environments/env1/settings')).json().common.workers.value, '4')
    const refused = await req('PUT', '/api/v1/environments/env1/settings', { changes: { 'common.workers.value': '0' } })
    assert.equal(refused.statusCode, 400)
    assert.match(refused.json().problems.join(' '), /Workers/)
    const saved = await req('PUT', '/api/v1/environments/env1/settings', {
      changes: { 'common.workers.value': '8', 'common.admin_password.value': 'An0ther-Secret' },
    })
    assert.equal(saved.statusCode, 200, saved.body)
    assert.equal(saved.json().common.workers.value, '8')
    assert.equal(saved.json().common.admin_password.value, '********')
    assert.equal(s.state.environments.settings('env1', { reveal: true }).common.admin_password.value, 'An0ther-Secret')

    // Nodes: add, a conflicting role refused with the reason (nothing saved), change, remove.
    const added = await req('POST', '/api/v1/environments/env1/nodes', { name: 'k1', roles: ['controller'] })
    assert.equal(added.statusCode, 201, added.body)
    const conflict = await req('PUT', '/api/v1/environments/env1/nodes/k1', { roles: ['controller', 'compute'] })
    assert.equal(conflict.statusCode, 400, conflict.body)
    assert.equal(conflict.json().field, 'body.roles')
    assert.match(conflict.json().message, /k1/)
    const unknown = await req('POST', '/api/v1/environments/env1/nodes', { name: 'k2', roles: ['wizard'] })
    assert.equal(unknown.statusCode, 400)
    assert.match(unknown.json().message, /unknown role "wizard"/)
    assert.deepEqual(
      (await req('GET', '/api/v1/environments/env1/nodes')).json().map((n: any) => [n.name, n.roles]),
      [
        ['c1', ['compute']],
        ['k1', ['controller']],
      ],
    )
    assert.equal((await req('POST', '/api/v1/environments/env1/nodes', { name: 'k1' })).statusCode, 409)
    assert.equal((await req('DELETE', '/api/v1/environments/env1/nodes/k1')).statusCode, 204)
    assert.equal((await req('DELETE', '/api/v1/environments/env1/nodes/k1')).statusCode, 404)
    assert.equal((await req('DELETE', '/api/v1/environments/env1')).statusCode, 204)
    assert.equal((await req('GET', '/api/v1/environments/env1')).statusCode, 404)
  })

  test(`${backend}: plugins — install from an uploaded archive, list, remove (refused while enabled); releases`, async (t) => {
    const s = await testServer(t, backend, tmp('xenstack-server-'))
    if (!s) return
    const req = (method: string, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
      s.app.inject({ method: method as 'GET', url, payload: payload as string, headers: { ...s.auth, ...headers } })
    const release = builtinReleases()[0]
    const built = buildPlugin(join(corpusDir(), 'fuel-plugins-examples/fuel_plugin_example_v2'), tmp('xenstack-pkg-'), {
      coreTasks: release.tasks,
      releaseName: release.name,
      releaseComponents: release.components,
    })
    const archive = readFileSync(built.file)
    const gz = { 'content-type': 'application/gzip' }
    const installed = await req('POST', '/api/v1/plugins', archive, gz)
    assert.equal(installed.statusCode, 201, installed.body)
    assert.equal(installed.json().name, 'fuel_plugin_example')
    assert.equal((await req('POST', '/api/v1/plugins', archive, gz)).statusCode, 409)
    // A tampered archive is refused by its checksums (400), nothing installed.
    const tampered = Buffer.from(archive)
    tampered[tampered.length - 20] ^= 0xff
    assert.equal((await req('POST', '/api/v1/plugins', tampered, gz)).statusCode, 400)
    const list = (await req('GET', '/api/v1/plugins')).json()
    assert.deepEqual(
      list.map((p: any) => `${p.name}==${p.version}`),
      ['fuel_plugin_example==2.0.0'],
    )

    const releases = (await req('GET', '/api/v1/releases')).json()
    assert.ok(releases.some((r: any) => r.name === release.name))
    const detail = await req('GET', `/api/v1/releases/${encodeURIComponent(release.name)}`)
    assert.equal(detail.statusCode, 200)
    assert.ok(detail.json().roles.compute)
    assert.equal((await req('GET', '/api/v1/releases/no-such-release')).statusCode, 400)

    const env = await req('POST', '/api/v1/environments', {
      name: 'withplugin',
      plugins: [{ name: 'fuel_plugin_example', version: '2.0.0' }],
    })
    assert.equal(env.statusCode, 201, env.body)
    const refused = await req('DELETE', '/api/v1/plugins/fuel_plugin_example/2.0.0')
    assert.equal(refused.statusCode, 409, refused.body)
    assert.match(refused.json().message, /withplugin/)
    assert.equal((await req('DELETE', '/api/v1/environments/withplugin')).statusCode, 204)
    assert.equal((await req('DELETE', '/api/v1/plugins/fuel_plugin_example/2.0.0')).statusCode, 200)
    assert.equal((await req('DELETE', '/api/v1/plugins/fuel_plugin_example/2.0.0')).statusCode, 404)
    assert.deepEqual((await req('GET', '/api/v1/plugins')).json(), [])
  })
}

test('the built web UI is served from its dist directory (client routes get index.html; nothing outside it)', async (t) => {
  const web = tmp('xenstack-web-')
  mkdirSync(join(web, 'assets'))
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>xenstack UI</title>')
  writeFileSync(join(web, 'assets', 'app.js'), 'console.log(1)')
  const state = StateStore.open({ dataDir: tmp('xenstack-server-'), databaseUrl: '' })
  const { context, tokens } = serverContext(state)
  const app = await buildApp(context, { tokens, webDir: web })
  t.after(async () => {
    await app.close()
    state.close()
  })
  const index = await app.inject({ method: 'GET', url: '/' })
  assert.equal(index.statusCode, 200)
  assert.match(index.body, /xenstack UI/)
  assert.equal(index.headers['x-frame-options'], 'DENY')
  const js = await app.inject({ method: 'GET', url: '/assets/app.js' })
  assert.equal(js.body, 'console.log(1)')
  assert.match(String(js.headers['content-type']), /javascript/)
  assert.match((await app.inject({ method: 'GET', url: '/environments/demo/settings' })).body, /xenstack UI/)
  for (const url of ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2fetc/passwd']) {
    const res = await app.inject({ method: 'GET', url })
    assert.equal(res.body.includes('root:'), false, `${url} served a file outside the UI directory`)
  }
  // The API is not shadowed by the UI.
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/status' })).statusCode, 401)
  assert.equal((await app.inject({ method: 'GET', url: '/api/v1/nope' })).statusCode, 401)
})

for (const backend of BACKENDS) {
  test(`${backend}: tokens — made once at first start, rotated by name (the old one stops working), revoked`, (t) => {
    const state = openStore(t, backend, tmp('xenstack-server-'))
    if (!state) return
    t.after(() => state.close())
    const tokens = new TokenStore(state)
    const first = tokens.ensure()
    assert.ok(first && tokens.verify(first))
    assert.equal(tokens.ensure(), undefined, 'a second start makes none')
    const a = tokens.rotate('npm start')
    const b = tokens.rotate('npm start')
    assert.equal(tokens.verify(a), false, 'the rotated-out token is refused')
    assert.ok(tokens.verify(b) && tokens.verify(first))
    for (const bad of [undefined, '', 'xst_', b + 'x', b.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))])
      assert.equal(tokens.verify(bad), false, String(bad))
    assert.deepEqual(
      tokens.list().map((x) => x.name),
      ['first start', 'npm start'],
    )
    assert.ok(tokens.revoke(tokens.list()[0].id))
    assert.equal(tokens.verify(first), false)
  })
}
