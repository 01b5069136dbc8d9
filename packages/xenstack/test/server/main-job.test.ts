// The main job (`npm start` = `xenstack start`) as a real process: it starts the pool (the lab when the machine
// allows it, else the simulator alone) and the server, prints the URL and a token, and the server answers real
// HTTP with that token (401 without it) with a demo environment on the pool. With the lab, the demo environment
// deploys through the REST API to `ready` and every applicable XenServer health check passes on it (fuel-ostf API);
// Ctrl-C stops everything, exit 0, and the lab leaves nothing behind (namespaces, links, mounts, processes, dir).
// Without the lab (XENSTACK_LAB=off, or not root), the status notes name the node-level steps that cannot run.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import { glanceInstalled } from '../../src/glance/server-config.js'
import { labRoot } from '../../src/lab/index.js'
import { spawnCliJob, startCliJob } from '../cli/job.js'
import { labPrerequisite } from '../node/helpers.js'

const tmp = scratchDirs()

interface MainJob {
  ready: any
  url: string
  auth: { authorization: string }
  /** Sends the signal and resolves with the exit code. */
  stop(signal: NodeJS.Signals): Promise<number | null>
  output(): string
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; text: string }>
}

/** Starts `xenstack start --json` and waits for its JSON (everything up); SIGINT after the test if still running. */
async function startMainJob(t: import('node:test').TestContext, env: NodeJS.ProcessEnv): Promise<MainJob> {
  const home = tmp('xenstack-mainjob-')
  // The JSON object is printed once everything is up (a lab with Glance takes a minute under load).
  const { child, exited, ready, output } = await startCliJob<any>(t, ['start', '--json'], {
    env: {
      DATABASE_URL: '',
      XENSTACK_HOME: join(home, 'state'),
      XENSTACK_PORT: '0',
      XENSTACK_SIM_STATE: join(home, 'sim'),
      ...env,
    },
    afterSignal: 'SIGINT',
    readyMs: 300_000,
  })
  const url = ready.running.server.url as string
  const auth = { authorization: `Bearer ${ready.running.server.token}` }
  return {
    ready,
    url,
    auth,
    async stop(signal) {
      child.kill(signal)
      return exited
    },
    output,
    async api(method, path, body) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      const text = await res.text()
      let json: any
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: res.status, json, text }
    },
  }
}

/** Polls `probe` every `everyMs` until it returns a value, failing with `what` and the last answer at the deadline. */
async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms / 1000} s`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

test('npm start without the lab: the simulator alone; the URL, a token, and notes naming the node-level steps', async (t) => {
  const job = await startMainJob(t, { XENSTACK_LAB: 'off' })
  const { ready, url } = job
  const server = ready.running.server
  assert.equal(ready.running.pool.mode, 'simulator only')
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'binds to loopback by default')
  assert.match(server.token, /^xst_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/)
  assert.ok(ready.startupMs.server > 0 && ready.startupMs.total >= ready.startupMs.server)

  const status = await job.api('GET', '/api/v1/status')
  assert.equal(status.status, 200)
  assert.equal(status.json.backend, 'sqlite')
  // what the UI shows on every page (App.tsx's notes): why there is no lab, and which steps cannot run, by task id
  const notes = (status.json.notes as string[]).join('\n')
  assert.match(notes, /the lab cannot start \(XENSTACK_LAB=off\)/)
  assert.match(notes, /environment demo cannot be deployed without the lab/)
  for (const step of ['xenserver-himn-guest', 'xenserver-ssh-trust', 'xenserver-dom0-routes', 'xenserver-test-image'])
    assert.ok(notes.includes(step), `the notes name ${step}: ${notes}`)
  const denied = await fetch(`${url}/api/v1/status`)
  assert.equal(denied.status, 401)
  await denied.text()

  const envs = await job.api('GET', '/api/v1/environments')
  assert.ok(
    (envs.json as any[]).some((e) => e.name === server.environment && e.name === 'demo'),
    `the demo environment exists: ${envs.text}`,
  )
  const pools = await job.api('GET', '/api/v1/pools')
  assert.equal(pools.json.length, 1)
  assert.equal(pools.json[0].password, '********')
  // The web UI when it is built, else the placeholder naming the API document; never framable.
  const page = await fetch(`${url}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  assert.equal(page.headers.get('x-frame-options'), 'DENY')
  assert.match(await page.text(), /<html/)

  assert.equal(await job.stop('SIGINT'), 0, job.output())
})

test('npm start with the lab: the demo environment deploys through the REST API to ready, its health checks pass, SIGTERM leaves nothing behind', async (t) => {
  if (!(await labPrerequisite(t))) return
  if (!requirePrerequisite(t, 'python3-glance (Glance on the lab controller)', () => glanceInstalled())) return
  const name = `mj${(process.pid % 100000).toString(36)}${Date.now().toString(36).slice(-3)}`
  const job = await startMainJob(t, { XENSTACK_LAB_NAME: name })
  const { ready } = job
  const pool = ready.running.pool
  assert.equal(pool.mode, 'lab', JSON.stringify(pool))
  assert.ok(pool.glance, `the lab runs Glance: ${JSON.stringify(pool)}`)
  assert.equal(pool.note, undefined)
  const env = ready.running.server.environment as string
  assert.equal(env, name, "the demo environment is the lab's")
  const slot = Number(String(Object.values(pool.hosts)[0]).split('.')[2])

  const demo = (await job.api('GET', `/api/v1/environments/${env}`)).json
  assert.deepEqual(demo.nodes.map((n: any) => `${n.name}:${n.roles.join('+')}`).sort(), [
    'compute-1:compute',
    'compute-2:compute',
    'controller-1:primary-controller',
    'storage:cinder',
  ])
  const status = await job.api('GET', '/api/v1/status')
  assert.deepEqual(status.json.notes, [], 'nothing is missing with the lab')

  await t.test('the demo environment deploys through the REST API to ready', async () => {
    const t0 = performance.now()
    const started = await job.api('POST', `/api/v1/environments/${env}/deployments`, {})
    assert.equal(started.status, 202, started.text)
    const id = started.json.deployment as number
    const done = await until(
      `deployment ${id} of ${env} to finish`,
      900_000,
      async () => {
        const d = await job.api('GET', `/api/v1/deployments/${id}`)
        assert.equal(d.status, 200, d.text)
        return ['pending', 'running'].includes(d.json.status) ? undefined : d.json
      },
      2000,
    )
    t.diagnostic(`deploy through the API: ${Math.round(performance.now() - t0)} ms, ${done.changes} changes`)
    assert.equal(
      done.status,
      'ready',
      `deployment ${id} ended ${done.status}: ${JSON.stringify(done.errors, null, 1).slice(0, 6000)}`,
    )
    assert.ok(done.changes > 0)
    const tasks = done.tasks as { node: string; task: string; status: string }[]
    assert.deepEqual(
      tasks.filter((x) => x.status === 'failed' || x.status === 'dep_failed'),
      [],
    )
    // the plugin's tasks ran on the lab's nodes, the controller's included (nova.conf and Glance on the lab)
    const ran = new Set(tasks.filter((x) => x.status === 'succeeded').map((x) => `${x.node}/${x.task}`))
    for (const k of [
      'compute-2/xenserver-ssh-trust',
      'controller-1/xenserver-controller-vnc-cache',
      'controller-1/xenserver-test-image',
    ])
      assert.ok(ran.has(k), `${k} succeeded`)
  })

  await t.test('every applicable XenServer health check passes (fuel-ostf API)', async () => {
    const t0 = performance.now()
    const sets = await job.api('GET', `/api/health/v1/testsets/${env}`)
    assert.equal(sets.status, 200, sets.text)
    const ids = (sets.json as { id: string }[]).map((s) => s.id)
    assert.ok(ids.length >= 3, `test sets: ${ids.join(', ')}`)
    const runs = await job.api(
      'POST',
      '/api/health/v1/testruns',
      ids.map((testset) => ({ testset, metadata: { cluster_id: env } })),
    )
    assert.equal(runs.status, 200, runs.text)
    const results = await Promise.all(
      (runs.json as { id: string }[]).map((r) =>
        until(`health run ${r.id}`, 300_000, async () => {
          const x = await job.api('GET', `/api/health/v1/testruns/${r.id}`)
          return x.json.status === 'finished' ? x.json : undefined
        }),
      ),
    )
    const tests = results.flatMap((r) => r.tests as { id: string; status: string; message: string }[])
    t.diagnostic(`health, every set: ${Math.round(performance.now() - t0)} ms, ${tests.length} tests`)
    const bad = tests.filter((x) => x.status !== 'success' && x.status !== 'disabled')
    assert.deepEqual(
      bad.map((x) => `${x.id}: ${x.status}: ${x.message}`),
      [],
    )
    assert.ok(tests.filter((x) => x.status === 'success').length >= 15, 'the checks ran')
  })

  const pids = labProcesses(name)
  assert.ok(pids.length >= 12, 'holders, sshd, dnsmasq and Glance run in the lab')
  const t0 = performance.now()
  assert.equal(await job.stop('SIGTERM'), 0, job.output().slice(-4000))
  t.diagnostic(`stop on SIGTERM: ${Math.round(performance.now() - t0)} ms`)
  assertLabGone(name, slot, pids)
})

test('npm start: SIGINT while the lab is coming up stops it once up, exit 0, and nothing of the lab is left', async (t) => {
  if (!(await labPrerequisite(t))) return
  const name = `mi${(process.pid % 100000).toString(36)}${Date.now().toString(36).slice(-3)}`
  const labDir = join(labRoot(), name)
  const home = tmp('xenstack-mainjob-int-')
  const job = spawnCliJob(t, ['start', '--json'], {
    env: { DATABASE_URL: '', XENSTACK_HOME: join(home, 'state'), XENSTACK_PORT: '0', XENSTACK_LAB_NAME: name },
  })
  const { child, exited, output } = job
  // mid-build: the lab has recorded itself and made its namespaces, and the job has printed nothing yet
  const state = await until(
    `lab ${name} to be under way`,
    180_000,
    async () => {
      if (child.exitCode !== null) assert.fail(`xenstack start exited ${child.exitCode}: ${output()}`)
      if (!readdirSync('/run/netns').some((n) => n.startsWith(`xsl-${name}-`))) return undefined
      try {
        return JSON.parse(readFileSync(join(labDir, 'state.json'), 'utf8')) as { slot: number }
      } catch {
        return undefined
      }
    },
    20,
  )
  assert.equal(output().includes('"running"'), false, 'interrupted before the job was up')
  const pids = labProcesses(name)
  child.kill('SIGINT')
  // an impatient second Ctrl-C is acknowledged, not obeyed: the lab still comes down
  await until('the job to start stopping', 30_000, async () => (output().includes('stopping') ? true : undefined), 20)
  child.kill('SIGINT')
  assert.equal(await exited, 0, output().slice(-4000))
  assert.match(output(), /SIGINT received, still stopping/)
  assertLabGone(name, state.slot, [...pids, ...labProcesses(name)])
})

/** Processes of a lab: in its network namespaces, or with its directory in their command line (its holders). */
function labProcesses(name: string): number[] {
  const prefix = `xsl-${name}-`
  const dir = join(labRoot(), name)
  const inodes = new Set<number>()
  for (const n of readdirSync('/run/netns').filter((x) => x.startsWith(prefix)))
    try {
      inodes.add(readlinkInode(`/run/netns/${n}`))
    } catch {
      // deleted meanwhile
    }
  const fromCmdline = readdirSync('/proc').filter((e) => {
    try {
      return /^\d+$/.test(e) && readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir + '/')
    } catch {
      return false
    }
  })
  return [...new Set([...processesIn(inodes), ...fromCmdline.map(Number)])].filter((p) => p !== process.pid)
}

/** Nothing of the lab is left on the machine: namespaces, dir, admin links, mounts, processes. */
function assertLabGone(name: string, slot: number, pids: number[]): void {
  const dir = join(labRoot(), name)
  assert.deepEqual(
    readdirSync('/run/netns').filter((n) => n.startsWith(`xsl-${name}-`)),
    [],
    'no lab namespace is left',
  )
  assert.equal(existsSync(dir), false, `${dir} is removed`)
  assert.equal(existsSync(`/sys/class/net/xl${slot}h0`), false, 'the admin links are removed')
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir))
  assert.deepEqual(mounts, [], 'no mount of the lab is left')
  const alive = [...pids, ...labProcesses(name)].filter(
    (p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '),
  )
  assert.deepEqual(alive, [], 'no lab process survives')
}

/** The inode of a network namespace (its /run/netns bind mount), as /proc/<pid>/ns/net names it. */
function readlinkInode(path: string): number {
  return statSync(path).ino
}

/** Processes whose network namespace is one of `inodes`. */
function processesIn(inodes: Set<number>): number[] {
  const out: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const m = /^net:\[(\d+)\]$/.exec(readlinkSync(`/proc/${e}/ns/net`))
      if (m && inodes.has(Number(m[1]))) out.push(Number(e))
    } catch {
      // gone
    }
  }
  return out
}

test('xenstack server: listens on loopback, prints the token at the first start only, stops on SIGTERM', async (t) => {
  const home = tmp('xenstack-servercmd-')
  const run = () =>
    startCliJob<{ url: string; token: string | null; docs: string }>(
      t,
      ['server', '--port', '0', '--data-dir', home, '--json'],
      { env: { DATABASE_URL: '', XENSTACK_SHIPPED_PLUGINS: 'none' }, readyMs: 120_000 },
    )
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
  assert.equal(await first.exited, 0, first.stderr())

  // Second start on the same data dir: no new token printed, the first one still works.
  const second = await run()
  assert.equal(second.ready.token, null)
  const again = await fetch(`${second.ready.url}/api/v1/status`, {
    headers: { authorization: `Bearer ${first.ready.token}` },
  })
  assert.equal(again.status, 200)
  await again.text()
  second.child.kill('SIGTERM')
  assert.equal(await second.exited, 0, second.stderr())
})
