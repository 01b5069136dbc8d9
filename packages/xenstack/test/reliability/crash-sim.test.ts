// Issue 14 item 2, the simulator half: XAPI (a real `xapi-sim --state DIR --sync-writes` process) restarted
// mid-deploy — once after SIGKILL, once after SIGTERM — while a real deployment process runs native tasks that read and
// change the pool over XenAPI. The deployment survives (tasks whose calls fail while XAPI is down retry; a deployment
// that still ends in error is resumed), no succeeded task runs twice (the per-task log of state/crash-hook.ts), and the
// pool's end state equals that of a clean run on a simulator never restarted. The engine's state is opened through the
// state store (SQLite, or PostgreSQL in the test runner's second pass).
//
// This file is also the deployment process: run with CRASH_SIM_CHILD=start|resume it deploys and prints its summary.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDirs } from '@xenstack/testkit'
import { connect, type Xapi } from '@xenstack/xenapi'
import { StateStore } from '../../src/state/store.js'
import { EngineStore } from '../../src/engine/store.js'
import { createTaskRunner, type NativeTask, type NativeTaskContext } from '../../src/engine/tasks.js'
import { ARM_PHRASE, CRASH_FILE_ENV } from '../../src/state/crash-hook.js'
import { synthPlan, type SynthTask } from '../engine/synthetic.js'
import { TestLocalExecutor } from '../engine/local-exec.js'
import { deployAndReport } from './deployment-child.js'
import { writeFigures } from './figures.js'

const SELF = fileURLToPath(import.meta.url)
const SIM_BIN = fileURLToPath(new URL('../../../../xapi-sim/bin/xapi-sim.js', import.meta.url))
const ENV = 'crash-sim'
const VMS = 2
const STEPS = 8 // tasks per VM node
const PASSWORD = 'crash-sim-password'

/** One task's idempotent XAPI work on its VM (check before act), then a pause so restarts land mid-deploy. */
async function step(ctx: NativeTaskContext, k: number): Promise<void> {
  const xapi = ctx.xapi as Xapi
  const vm = (await xapi.call('VM.get_by_name_label', ctx.node)) as string[]
  if (vm.length !== 1) throw new Error(`${ctx.node}: expected one VM named ${ctx.node}, found ${vm.length}`)
  const key = `vm-data/crash/${k}`
  const data = (await xapi.call('VM.get_xenstore_data', vm[0])) as Record<string, string>
  if (data[key] !== `step ${k}`) {
    if (key in data) await xapi.call('VM.remove_from_xenstore_data', vm[0], key)
    await xapi.call('VM.add_to_xenstore_data', vm[0], key, `step ${k}`)
  }
  if (k % 3 === 0) {
    // a new object, found again by name rather than made twice
    const name = `crash-${ctx.node}-${k}`
    const nets = (await xapi.call('network.get_by_name_label', name)) as string[]
    if (nets.length === 0)
      await xapi.call('network.create', { name_label: name, name_description: '', MTU: '1500', other_config: {} })
  }
  await new Promise((r) => setTimeout(r, 150))
}

function plan() {
  const tasks: SynthTask[] = [{ key: '_sync/start' }]
  for (let v = 1; v <= VMS; v++)
    for (let k = 0; k < STEPS; k++)
      tasks.push({
        key: `vm${v}/step${k}`, // the generated pool's VMs are vm1, vm2, …
        requires: [k === 0 ? '_sync/start' : `vm${v}/step${k - 1}`],
        retries: 10,
      })
  tasks.push({ key: '_sync/end', requires: tasks.filter((t) => t.key.startsWith('vm')).map((t) => t.key) })
  const p = synthPlan(tasks)
  for (const t of p.tasks) if (t.type === 'native') t.retryIntervalMs = 500
  return p
}

/** The deployment process. */
async function child(mode: string): Promise<void> {
  const [home, url] = [process.env.CRASH_SIM_HOME!, process.env.CRASH_SIM_URL!]
  const xapi = await connect({ url, username: 'root', password: PASSWORD, timeout: 5000 })
  const natives = new Map<string, NativeTask>()
  for (let k = 0; k < STEPS; k++) natives.set(`step${k}`, { run: (ctx) => step(ctx, k).then(() => []) })
  const state = StateStore.open({ dataDir: home })
  const store = new EngineStore(state.db)
  const runner = createTaskRunner({
    access: { executor: (node) => new TestLocalExecutor(node) },
    natives,
    xapi: () => xapi,
  })
  try {
    await deployAndReport(store, ENV, mode, plan, runner)
  } finally {
    state.close()
    await xapi.close().catch(() => {})
  }
}

if (process.env.CRASH_SIM_CHILD) {
  await child(process.env.CRASH_SIM_CHILD)
} else {
  const tmp = scratchDirs()

  const freePort = () =>
    new Promise<number>((resolve, reject) => {
      const s = createServer()
      s.on('error', reject)
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port
        s.close(() => resolve(port))
      })
    })

  /** Starts `xapi-sim --state DIR --sync-writes` on a fixed port; resolves once it listens. */
  const startSim = (dir: string, port: number): Promise<ChildProcess> =>
    new Promise((resolve, reject) => {
      const args = [SIM_BIN, '--listen', `127.0.0.1:${port}`, '--state', dir, '--sync-writes']
      // pool shape and password on the first start only: a restart takes both from the state directory
      if (!existsSync(join(dir, 'state.json'))) args.push('--hosts', '2', '--vms', String(VMS), '--password', PASSWORD)
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      p.stdout!.on('data', (b) => {
        out += b
        if (out.includes('xapi-sim listening on')) resolve(p)
      })
      p.stderr!.on('data', (b) => (out += b))
      p.on('exit', (code) => reject(new Error(`xapi-sim exited ${code} before listening:\n${out}`)))
    })

  test('XAPI restarted (SIGKILL, then SIGTERM) with --state mid-deploy: the deployment survives and ends as a clean one', async (t) => {
    /** Runs one deployment; `during` acts on the simulator while it runs. */
    const deploy = (
      home: string,
      url: string,
      mode: 'start' | 'resume',
      env: Record<string, string>,
    ): { proc: ChildProcess; done: Promise<{ code: number | null; out: string }> } => {
      const proc = spawn(process.execPath, [SELF], {
        env: { ...process.env, CRASH_SIM_CHILD: mode, CRASH_SIM_HOME: home, CRASH_SIM_URL: url, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let out = ''
      proc.stdout!.on('data', (b) => (out += b))
      proc.stderr!.on('data', (b) => (out += b))
      const done = new Promise<{ code: number | null; out: string }>((resolve) =>
        proc.on('close', (code) => resolve({ code, out })),
      )
      return { proc, done }
    }
    const ends = (log: string) =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('end ')).length
        : 0
    const waitFor = async (what: string, cond: () => boolean, ms = 60_000) => {
      const deadline = Date.now() + ms
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    /** Pool state by names (refs differ between simulators): our xenstore keys per VM, our networks. */
    const poolState = async (url: string) => {
      const xapi = await connect({ url, username: 'root', password: PASSWORD })
      try {
        const out: Record<string, unknown> = {}
        for (let v = 1; v <= VMS; v++) {
          const [vm] = (await xapi.call('VM.get_by_name_label', `vm${v}`)) as string[]
          const data = (await xapi.call('VM.get_xenstore_data', vm)) as Record<string, string>
          out[`vm${v}`] = Object.entries(data)
            .filter(([k]) => k.startsWith('vm-data/crash/'))
            .sort()
        }
        const nets = (await xapi.call('network.get_all_records')) as Record<string, { name_label: string }>
        out.networks = Object.values(nets)
          .map((n) => n.name_label)
          .filter((n) => n.startsWith('crash-'))
          .sort()
        return out
      } finally {
        await xapi.close()
      }
    }

    const started = performance.now()
    const runs: Record<string, { port: number; sim: ChildProcess; home: string; log: string; crashFile: string }> = {}
    for (const name of ['clean', 'restarted']) {
      const dir = tmp(`xenstack-crash-sim-${name}-`)
      const port = await freePort()
      const log = join(dir, 'tasks.log')
      const crashFile = join(dir, 'crash.json')
      writeFileSync(crashFile, JSON.stringify({ armed: ARM_PHRASE, log }))
      runs[name] = { port, sim: await startSim(join(dir, 'sim'), port), home: join(dir, 'home'), log, crashFile }
    }
    try {
      // The clean run: nothing restarted.
      const clean = runs.clean
      const cleanUrl = `http://127.0.0.1:${clean.port}`
      const c = await deploy(clean.home, cleanUrl, 'start', { [CRASH_FILE_ENV]: clean.crashFile }).done
      assert.equal(c.code, 0, c.out)

      // The same deployment with XAPI killed, then terminated, while it runs.
      const r = runs.restarted
      const url = `http://127.0.0.1:${r.port}`
      const simDir = join(r.home, '..', 'sim')
      const total = VMS * STEPS
      const d = deploy(r.home, url, 'start', { [CRASH_FILE_ENV]: r.crashFile })
      const restarts: { signal: string; atTask: number; downMs: number }[] = []
      for (const [signal, after] of [
        ['SIGKILL', Math.round(total / 4)],
        ['SIGTERM', Math.round(total / 2)],
      ] as const) {
        await waitFor(`${after} tasks ended`, () => ends(r.log) >= after)
        const exited = new Promise((res) => r.sim.once('exit', res))
        const down = Date.now()
        r.sim.kill(signal)
        await exited
        await new Promise((res) => setTimeout(res, 300)) // calls meet a closed port for a moment
        r.sim = await startSim(simDir, r.port)
        restarts.push({ signal, atTask: ends(r.log), downMs: Date.now() - down })
      }
      let result = await d.done
      let resumes = 0
      while (result.code !== 0 && resumes < 3) {
        resumes++
        result = await deploy(r.home, url, 'resume', { [CRASH_FILE_ENV]: r.crashFile }).done
      }
      assert.equal(result.code, 0, result.out)
      const summary = JSON.parse(result.out.trim().split('\n').pop()!)
      assert.equal(summary.status, 'ready')
      assert.equal(summary.tasks.succeeded, total)

      // No task ran again after it succeeded (a retry follows only a failed attempt).
      const lines = readFileSync(r.log, 'utf8').split('\n').filter(Boolean)
      const succeeded = new Set<string>()
      const again: string[] = []
      let failedAttempts = 0
      for (const l of lines) {
        const [what, key, detail] = l.split(' ')
        if (what === 'start' && succeeded.has(key)) again.push(key)
        if (what === 'end' && detail === 'succeeded') succeeded.add(key)
        if (what === 'end' && detail === 'failed') failedAttempts++
      }
      assert.deepEqual(again, [], 'tasks ran again after they succeeded')
      assert.equal(succeeded.size, total)

      // The pool ends as the clean run's (state survived both restarts: --sync-writes answers after the write).
      const want = await poolState(cleanUrl)
      const got = await poolState(url)
      assert.deepEqual(got, want)
      assert.equal((want.networks as string[]).length, VMS * Math.ceil(STEPS / 3))
      // ... and so does the engine's state
      const state = StateStore.open({ dataDir: r.home })
      try {
        const engine = new EngineStore(state.db)
        const dep = engine.latestDeployment(ENV)!
        assert.ok(engine.tasks(dep.id).every((row) => row.status === 'succeeded'))
      } finally {
        state.close()
      }
      const figures = {
        test: 'packages/xenstack/test/reliability/crash-sim.test.ts',
        tasks: total,
        restarts,
        failedAttemptsRetried: failedAttempts,
        resumes,
        succeededTasksRunAgain: again.length,
        poolStateEqualsCleanRun: true,
        wallMs: Math.round(performance.now() - started),
      }
      writeFigures('crash-sim', figures)
      t.diagnostic(`simulator restart figures: ${JSON.stringify(figures)}`)
    } finally {
      for (const x of Object.values(runs)) {
        const exited = new Promise((res) => x.sim.once('exit', res))
        if (x.sim.exitCode === null && x.sim.signalCode === null) {
          x.sim.kill('SIGTERM')
          await exited
        }
      }
    }
  })
}
