// Issue 14 item 6, access: over real HTTP against `startServer` (the code `xenstack server` and `npm start` run),
// every route of the OpenAPI document and every event stream refuses a request without a valid token — none, a
// wrong secret, another store's token, a rotated-out ("old") token and a revoked one, both revoked by another
// process on the same store — on both state-store backends; every HTML/static answer forbids framing, and real
// Chromium blocks the UI in an iframe of another origin; the server listens on 127.0.0.1 unless told otherwise,
// and `xenstack server --host 0.0.0.0` listens everywhere only when asked, with a warning.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import { join, relative } from 'node:path'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { startServer, TokenStore, type RunningServer } from '../../src/server/index.js'
import { CACHE_MS } from '../../src/server/auth.js'
import { DEFAULT_WEB_DIR } from '../../src/server/app.js'
import { StateStore } from '../../src/state/store.js'
import { startCliJob } from '../cli/job.js'
import { BACKENDS, databaseUrlFor } from '../state/databases.js'

const tmp = scratchDirs()
const CHROMIUM = '/usr/bin/chromium'

interface Route {
  method: string
  path: string
  url: string
}

/** Every operation of the OpenAPI document, its path parameters filled with plausible values. */
function routesOf(doc: { paths: Record<string, Record<string, unknown>> }): Route[] {
  const fill = (p: string) =>
    p.replace(/\{(\w+)\}/g, (_m, name: string) => (name === 'id' ? '1' : name === 'version' ? '1.0.0' : 'demo'))
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops)
      .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
      .map((m) => ({ method: m.toUpperCase(), path, url: fill(path) })),
  )
}

/** A request over real HTTP; the body is read so the connection is free again. */
async function call(base: string, r: { method: string; url: string }, headers: Record<string, string> = {}) {
  const withBody = ['POST', 'PUT', 'PATCH'].includes(r.method)
  const res = await fetch(base + r.url, {
    method: r.method,
    headers: withBody ? { 'content-type': 'application/json', ...headers } : headers,
    body: withBody ? '{}' : undefined,
    signal: AbortSignal.timeout(30_000),
  })
  // An event stream that was let in never ends: take the status and headers, then drop it.
  const body = res.headers.get('content-type')?.startsWith('text/event-stream')
    ? (await res.body?.cancel(), '')
    : await res.text()
  return { status: res.status, headers: res.headers, body }
}

/** `addr:port` of every TCP socket in LISTEN state (IPv4 and IPv6), from /proc/net/tcp{,6}. */
function listeningSockets(): { address: string; port: number }[] {
  const out: { address: string; port: number }[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 4 || f[3] !== '0A') continue
      const [hex, portHex] = f[1].split(':')
      let address: string
      if (hex.length === 8) address = [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.')
      else address = /^0+$/.test(hex) ? '::' : /^0{20}FFFF0{4}0100007F$/i.test(hex) ? '::ffff:127.0.0.1' : hex
      out.push({ address, port: parseInt(portHex, 16) })
    }
  }
  return out
}

/** An address of this machine other machines could use (none on a machine without a network). */
function externalAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  return undefined
}

/** Every file of the built UI, as the URL path it is served at. */
function uiFiles(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e)
      if (statSync(p).isDirectory()) walk(p)
      else out.push('/' + relative(dir, p).split('\\').join('/'))
    }
  }
  walk(dir)
  return out
}

async function server(t: TestContext, databaseUrl: string, dataDir = tmp('xenstack-access-')): Promise<RunningServer> {
  const warnings: string[] = []
  const s = await startServer({ dataDir, databaseUrl, port: 0, warn: (m) => warnings.push(m) })
  t.after(() => s.close())
  assert.deepEqual(warnings, [], 'no warning on the default (loopback) bind')
  return s
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

for (const backend of BACKENDS) {
  test(`${backend}: every OpenAPI route and event stream refuses missing, wrong, foreign, old and revoked tokens (real HTTP)`, async (t) => {
    const databaseUrl = databaseUrlFor(t, backend)
    if (databaseUrl === undefined) return
    const dataDir = tmp('xenstack-access-')
    const s = await server(t, databaseUrl, dataDir)
    const valid = s.newToken!
    assert.ok(valid, 'a fresh store makes a token at the first start')

    // Another process on the same store (as `xenstack server token` is): it makes tokens, rotates and revokes them.
    const otherState = StateStore.open({ dataDir, databaseUrl })
    t.after(() => otherState.close())
    const other = new TokenStore(otherState)
    const rotated = other.create('ops')
    const revoked = other.create('ci')
    // Both are accepted first (so the server has them in its cache), then taken away by the other process.
    for (const tok of [rotated, revoked]) {
      const ok = await call(s.url, { method: 'GET', url: '/api/v1/status' }, { authorization: `Bearer ${tok}` })
      assert.equal(ok.status, 200, 'a token made by another process works')
    }
    const successor = other.rotate('ops')
    assert.ok(other.revoke(other.list().find((x) => x.name === 'ci')!.id))
    // A token of another installation: the right shape, an id this store never had.
    const foreignState = StateStore.open({ dataDir: tmp('xenstack-access-foreign-'), databaseUrl: '' })
    const foreign = new TokenStore(foreignState).create('elsewhere')
    foreignState.close()
    const wrongSecret = valid.slice(0, -4) + (valid.endsWith('AAAA') ? 'BBBB' : 'AAAA')
    // A revocation elsewhere is seen once the server's short cache entry has expired.
    await sleep(CACHE_MS + 200)

    const docs = await call(s.url, { method: 'GET', url: '/api/docs' })
    assert.equal(docs.status, 200, 'the OpenAPI document is public')
    const routes = routesOf(JSON.parse(docs.body))
    const streams = routes.filter((r) => r.method === 'GET' && /\/events$/.test(r.path))
    assert.ok(routes.length >= 30, `the OpenAPI document lists ${routes.length} operations`)
    assert.ok(
      routes.some((r) => r.path.startsWith('/api/health/')),
      'the health API is in the document (and crawled)',
    )
    assert.ok(streams.length >= 3, `event streams in the document: ${streams.map((r) => r.path).join(', ')}`)

    const refused: Record<string, Record<string, string>> = {
      'no token': {},
      'wrong secret': { authorization: `Bearer ${wrongSecret}` },
      'another store’s token': { authorization: `Bearer ${foreign}` },
      'rotated-out token': { authorization: `Bearer ${rotated}` },
      'revoked token': { authorization: `Bearer ${revoked}` },
      'Basic credentials': { authorization: 'Basic cm9vdDpyb290' },
      'empty Bearer': { authorization: 'Bearer ' },
      'token as a cookie': { cookie: `token=${valid}; access_token=${valid}` },
    }
    let requests = 0
    for (const r of routes) {
      for (const [what, headers] of Object.entries(refused)) {
        const res = await call(s.url, r, headers)
        requests++
        assert.equal(res.status, 401, `${r.method} ${r.url} with ${what}: ${res.status} ${res.body.slice(0, 300)}`)
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/, `${r.method} ${r.url}: WWW-Authenticate`)
        assert.match(JSON.parse(res.body).message, /token/)
      }
      // A query token is for event streams only (elsewhere it would end up in proxy logs and histories).
      const q = await call(s.url, { method: r.method, url: `${r.url}?access_token=${valid}` })
      requests++
      if (!streams.includes(r)) assert.equal(q.status, 401, `${r.method} ${r.url}?access_token=<valid>`)
      // The valid token gets past authentication on every route (whatever the route answers next).
      const ok = await call(s.url, r, { authorization: `Bearer ${valid}` })
      requests++
      assert.notEqual(ok.status, 401, `${r.method} ${r.url} with the valid token: ${ok.body.slice(0, 300)}`)
      assert.ok(ok.status < 500, `${r.method} ${r.url} with the valid token: ${ok.status} ${ok.body.slice(0, 300)}`)
    }
    for (const r of streams) {
      for (const tok of [wrongSecret, foreign, rotated, revoked, '', 'xst_']) {
        const res = await call(s.url, { method: 'GET', url: `${r.url}?access_token=${encodeURIComponent(tok)}` })
        requests++
        assert.equal(res.status, 401, `${r.url}?access_token=${tok.slice(0, 12)}…: ${res.status}`)
      }
    }
    // The rotated-in successor works; the first token still does.
    for (const tok of [successor, valid]) {
      const ok = await call(s.url, { method: 'GET', url: '/api/v1/status' }, { authorization: `Bearer ${tok}` })
      assert.equal(ok.status, 200)
    }
    // An event stream is let in with the query token (EventSource cannot send headers) and streams its snapshot.
    const ac = new AbortController()
    const sse = await fetch(`${s.url}/api/v1/pools/none/events?access_token=${valid}`, { signal: ac.signal })
    assert.notEqual(sse.status, 401)
    ac.abort()
    await sse.body?.cancel().catch(() => {})
    t.diagnostic(
      `${backend}: ${routes.length} operations (${streams.length} event streams) x ${Object.keys(refused).length} refused ` +
        `credentials; ${requests} requests, every refusal a 401`,
    )
  })
}

test('a query token is taken on event streams only — not on a route whose parameter happens to be "events"', async (t) => {
  // The query token exists because EventSource cannot send headers; anywhere else it would be logged by proxies and
  // kept in browser histories. A path ending in /events is not enough: an environment, pool or release may be named
  // "events", and DELETE /environments/events is no event stream.
  const s = await server(t, '')
  const token = s.newToken!
  const q = `?access_token=${encodeURIComponent(token)}`
  for (const [method, url] of [
    ['GET', '/api/v1/environments/events'],
    ['DELETE', '/api/v1/environments/events'],
    ['GET', '/api/v1/environments/events/nodes'],
    ['GET', '/api/v1/pools/events'],
    ['DELETE', '/api/v1/pools/events'],
    ['GET', '/api/v1/releases/events'],
    ['GET', '/api/v1/status/events'],
    ['GET', '/api/v1/environments/demo/events/'],
    ['HEAD', '/api/v1/environments/demo/events'],
  ]) {
    const res = await call(s.url, { method, url: url + q })
    assert.equal(res.status, 401, `${method} ${url}?access_token=<valid>: ${res.status} ${res.body.slice(0, 200)}`)
  }
  // the event streams themselves take it
  for (const url of ['/api/v1/environments/demo/events', '/api/v1/pools/demo/events']) {
    const res = await call(s.url, { method: 'GET', url: url + q })
    assert.notEqual(res.status, 401, `GET ${url}?access_token=<valid>`)
  }
})

test('every HTML and static answer of the UI, and every API answer, forbids framing', async (t) => {
  // CI builds the UI (npm ci runs the web package's prepare); without it only the placeholder page would be checked.
  assert.ok(readdirSync(DEFAULT_WEB_DIR).includes('index.html'), `${DEFAULT_WEB_DIR}/index.html: build the UI`)
  const s = await server(t, '')
  const auth = { authorization: `Bearer ${s.newToken}` }
  const files = uiFiles(DEFAULT_WEB_DIR)
  const answers: { what: string; res: Awaited<ReturnType<typeof call>> }[] = []
  for (const url of [...files, '/', '/environments/demo/settings', '/no/such/file.js'])
    answers.push({ what: url, res: await call(s.url, { method: 'GET', url }) })
  for (const url of ['/api/docs', '/api/v1/status', '/api/v1/environments/nope'])
    answers.push({ what: url, res: await call(s.url, { method: 'GET', url }, auth) })
  answers.push({ what: '401', res: await call(s.url, { method: 'GET', url: '/api/v1/status' }) })
  for (const { what, res } of answers) {
    assert.equal(res.headers.get('x-frame-options'), 'DENY', `${what}: X-Frame-Options`)
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, `${what}: CSP`)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`)
  }
  const html = answers.filter((a) => a.res.headers.get('content-type')?.startsWith('text/html'))
  assert.ok(html.length >= 3, 'index.html, a client route and an unknown path answer HTML')
  t.diagnostic(`${answers.length} answers checked (${files.length} UI files, ${html.length} HTML)`)
})

test('Chromium: a page on another origin that frames the UI gets it blocked (a header-less page frames fine)', async (t) => {
  if (!requirePrerequisite(t, `chromium (${CHROMIUM})`, () => hasExecutable(CHROMIUM))) return
  const s = await server(t, '')
  // The other origin: a different port (and host name) on this machine, serving the attacker's page and, as the
  // control, a page of its own that carries no anti-framing headers.
  const evil: Server = createServer((req, res) => {
    if (req.url === '/plain') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>plain page</title><p>plain</p>')
      return
    }
    const target =
      req.url === '/control' ? `http://127.0.0.1:${(evil.address() as AddressInfo).port}/plain` : s.url + '/'
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(
        `<!doctype html><title>other origin</title><iframe id="f" src="${target}" width="800" height="600"></iframe>`,
      )
  })
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r))
  // Chromium keeps its connections to this server alive: close them, or close() waits for them forever.
  t.after(() => {
    evil.closeAllConnections()
    return new Promise((r) => evil.close(r))
  })
  const evilOrigin = `http://localhost:${(evil.address() as AddressInfo).port}`

  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true })
  t.after(() => Promise.race([browser.close(), sleep(10_000)]))

  const open = async (path: string) => {
    const page = await browser.newPage()
    const console: string[] = []
    page.on('console', (m) => console.push(m.text()))
    await page.goto(evilOrigin + path, { waitUntil: 'load', timeout: 60_000 })
    const frame = page.frames().find((f) => f !== page.mainFrame())
    assert.ok(frame, `${path}: the iframe exists`)
    // What the frame shows: its document's title, or nothing when Chromium put its error page there.
    const deadline = Date.now() + 30_000
    let title = ''
    let url = ''
    while (Date.now() < deadline) {
      url = frame.url()
      // bounded: an evaluation in a frame whose navigation Chromium refused may never settle
      title = await Promise.race([
        frame.evaluate(() => (globalThis as any).document.title as string).catch(() => ''),
        sleep(2_000).then(() => ''),
      ])
      if (title || url.startsWith('chrome-error:')) break
      await sleep(200)
    }
    return { page, frameUrl: url, title, console }
  }

  const control = await open('/control')
  assert.equal(control.title, 'plain page', 'a cross-origin page without the headers is framed (the check can see one)')
  const attack = await open('/attack')
  assert.notEqual(attack.title, 'xenstack', 'the UI rendered inside another origin’s frame')
  // Chromium's error page, a blank frame, or no committed document for 30 s (seen once in CI under load; the UI
  // loads at the top level in well under a second, below): in every case the UI did not render in the frame.
  assert.ok(
    attack.frameUrl.startsWith('chrome-error:') || attack.frameUrl === 'about:blank' || attack.frameUrl === '',
    `the frame shows ${attack.frameUrl}`,
  )
  // The UI itself is fine at the top level (it is the framing that is refused, not the page).
  const top = await browser.newPage()
  await top.goto(s.url + '/', { waitUntil: 'load', timeout: 60_000 })
  assert.equal(await top.title(), 'xenstack')
  t.diagnostic(
    `framed UI: ${attack.frameUrl}; Chromium said: ${attack.console.find((m) => /frame/i.test(m)) ?? '(no console message)'}`,
  )
  // Closed here, before the after-hooks: the UI page keeps connections to the server open, and the server's close
  // (registered first, so run first) would wait for them.
  await Promise.race([browser.close(), sleep(10_000)])
})

test('the server listens on 127.0.0.1 unless told otherwise; --host 0.0.0.0 listens everywhere only when asked, with a warning', async (t) => {
  const s = await server(t, '')
  const port = Number(new URL(s.url).port)
  assert.equal(new URL(s.url).hostname, '127.0.0.1')
  const sockets = listeningSockets().filter((x) => x.port === port)
  assert.deepEqual(sockets, [{ address: '127.0.0.1', port }], 'one listening socket, on loopback')
  const external = externalAddress()
  if (external) {
    await assert.rejects(
      fetch(`http://${external}:${port}/api/docs`, { signal: AbortSignal.timeout(10_000) }),
      (e: Error) => /ECONNREFUSED/.test(String((e.cause as Error)?.message ?? e.message)),
      `${external}:${port} must refuse connections`,
    )
  } else t.diagnostic('no non-loopback IPv4 address on this machine: the refusal from outside is not checked')

  // Asked for: the CLI as an operator runs it.
  const home = tmp('xenstack-access-listen-')
  const { child, exited, ready, stderr } = await startCliJob<{ url: string; token: string }>(
    t,
    ['server', '--host', '0.0.0.0', '--port', '0', '--data-dir', home, '--json'],
    { env: { DATABASE_URL: '', XENSTACK_SHIPPED_PLUGINS: 'none' }, readyMs: 120_000 },
  )
  const wide = Number(new URL(ready.url).port)
  assert.match(stderr(), /warning: the API listens on 0\.0\.0\.0:\d+, reachable from other machines/)
  assert.deepEqual(
    listeningSockets().filter((x) => x.port === wide),
    [{ address: '0.0.0.0', port: wide }],
  )
  if (external) {
    const res = await fetch(`http://${external}:${wide}/api/v1/status`, { signal: AbortSignal.timeout(30_000) })
    assert.equal(res.status, 401, 'reachable from outside, and still behind the token')
    await res.text()
  }
  child.kill('SIGTERM')
  assert.equal(await exited, 0, stderr())
})
