// The main job (`npm start` = `xenstack start`) as a real process: it starts the pool (the lab when the machine
// allows it, else the simulator alone) and the server, prints the URL and a token, and the server answers real
// HTTP with that token (401 without it) with a demo environment on the pool; Ctrl-C stops everything, exit 0.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'

const tmp = scratchDirs()
const bin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

test('npm start: the main job prints the URL and a token, and the server answers with it', async (t) => {
  const home = tmp('xenstack-mainjob-')
  const child = spawn(process.execPath, [bin, 'start', '--json'], {
    env: {
      ...process.env,
      DATABASE_URL: '',
      XENSTACK_HOME: join(home, 'state'),
      XENSTACK_PORT: '0',
      XENSTACK_SIM_STATE: join(home, 'sim'),
      XENSTACK_LAB_NAME: `mj${process.pid % 100000}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (b) => (out += b))
  child.stderr.on('data', (b) => (err += b))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT')
      await exited
    }
  })
  // The JSON object is printed once everything is up (a lab takes a few seconds; generous under load).
  const deadline = Date.now() + 180_000
  let ready: any
  while (!ready) {
    try {
      ready = JSON.parse(out)
    } catch {
      if (child.exitCode !== null) assert.fail(`xenstack start exited ${child.exitCode}: ${err}${out}`)
      if (Date.now() > deadline) assert.fail(`xenstack start printed no JSON in 180 s: ${err}${out}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  const server = ready.running.server
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'binds to loopback by default')
  assert.match(server.token, /^xst_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
  assert.ok(ready.startupMs.server > 0 && ready.startupMs.total >= ready.startupMs.server)
  const auth = { authorization: `Bearer ${server.token}` }

  const status = await fetch(`${server.url}/api/v1/status`, { headers: auth })
  assert.equal(status.status, 200)
  const st = (await status.json()) as { backend: string; notes: string[] }
  assert.equal(st.backend, 'sqlite')
  if (ready.running.pool.mode !== 'lab') assert.match(st.notes.join(' '), /cannot run/)
  const denied = await fetch(`${server.url}/api/v1/status`)
  assert.equal(denied.status, 401)
  await denied.text()

  const envs = (await (await fetch(`${server.url}/api/v1/environments`, { headers: auth })).json()) as any[]
  const demo = envs.find((e) => e.name === server.environment)
  assert.ok(demo, `the demo environment ${server.environment} exists: ${JSON.stringify(envs.map((e) => e.name))}`)
  if (ready.running.pool.mode === 'lab') {
    assert.ok(
      demo.nodes.some((n: any) => n.roles.includes('compute')),
      'lab hosts are nodes with roles',
    )
    const dry = await fetch(`${server.url}/api/v1/environments/${demo.name}/deployments`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ dryRun: true }),
    })
    assert.equal(dry.status, 200, await dry.clone().text())
    assert.ok(((await dry.json()) as any).nodes.length >= 2)
  }
  const pools = (await (await fetch(`${server.url}/api/v1/pools`, { headers: auth })).json()) as any[]
  assert.equal(pools.length, 1)
  assert.equal(pools[0].password, '********')
  // The web UI when it is built, else the placeholder naming the API document; never framable.
  const page = await fetch(`${server.url}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  assert.equal(page.headers.get('x-frame-options'), 'DENY')
  assert.match(await page.text(), /<html/)

  child.kill('SIGINT')
  assert.equal(await exited, 0, err)
})

test('xenstack server: listens on loopback, prints the token at the first start only, stops on SIGTERM', async (t) => {
  const home = tmp('xenstack-servercmd-')
  const run = async () => {
    const child = spawn(process.execPath, [bin, 'server', '--port', '0', '--data-dir', home, '--json'], {
      env: { ...process.env, DATABASE_URL: '', XENSTACK_SHIPPED_PLUGINS: 'none' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (b) => (out += b))
    child.stderr.on('data', (b) => (err += b))
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    const deadline = Date.now() + 120_000
    let ready: { url: string; token: string | null; docs: string } | undefined
    while (!ready) {
      try {
        ready = JSON.parse(out)
      } catch {
        if (child.exitCode !== null) assert.fail(`xenstack server exited ${child.exitCode}: ${err}`)
        if (Date.now() > deadline) assert.fail(`xenstack server printed nothing in 120 s: ${err}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    return { child, exited, ready: ready!, err: () => err }
  }
  const first = await run()
  assert.match(first.ready.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  assert.ok(first.ready.token, 'the first start prints a token')
  const res = await fetch(`${first.ready.url}/api/v1/status`, {
    headers: { authorization: `Bearer ${first.ready.token}` },
  })
  assert.equal(res.status, 200)
  await res.text()
  const docs = await fetch(first.ready.docs)
  assert.equal(((await docs.json()) as { openapi: string }).openapi, '3.0.3')
  first.child.kill('SIGTERM')
  assert.equal(await first.exited, 0, first.err())

  // Second start on the same data dir: no new token printed, the first one still works.
  const second = await run()
  assert.equal(second.ready.token, null)
  const again = await fetch(`${second.ready.url}/api/v1/status`, {
    headers: { authorization: `Bearer ${first.ready.token}` },
  })
  assert.equal(again.status, 200)
  await again.text()
  second.child.kill('SIGTERM')
  assert.equal(await second.exited, 0, second.err())
})
