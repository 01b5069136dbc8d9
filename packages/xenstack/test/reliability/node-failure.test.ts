// Issue 14 item 3: a node whose SSH goes away mid-deploy. The lab-deploy test's two-host lab is deployed with
// `xenstack deploy --json`; when compute-1 starts a task that works through its SSH, the test stops compute-1's sshd
// and drops its connections (the sshd process and every session it forked, by pid). The task on compute-1 must fail
// after its attempts with an error naming the node, the task, the SSH target and what was tried; the graph's fault
// tolerance must decide what the other nodes do (the release's compute group tolerates 2 % of its 2 nodes, i.e. none:
// the deployment brakes — running tasks finish, nothing new starts); and once sshd is back,
// `xenstack deploy resume` completes the deployment without running again what had succeeded.
//
// Also here, without the lab: the SSH executor's connection attempts against a port nobody listens on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createServer, connect as tcpConnect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import type { Lab } from '../../src/lab/index.js'
import { StateStore } from '../../src/state/store.js'
import { FileKnownHostsStore, Secret, SshExecutor } from '../../src/node/index.js'
import { tail, xenstack } from '../lab-fixture/cli.js'
import { assertDeployed, captureEndState, requireDeployLab, upDeployLab } from '../lab-fixture/deploy-lab.js'

const tmp = scratchDirs()
const FAILED_NODE = 'compute-1'
/** A deploy's hang guard. */
const DEPLOY_TIMEOUT_MS = 900_000

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until<T>(what: string, deadlineMs: number, probe: () => T | undefined | Promise<T | undefined>) {
  const end = Date.now() + deadlineMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)
    await sleep(200)
  }
}

/** The pids of `pid`'s descendants (from /proc). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)])
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = []
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c)
      walk(c)
    }
  }
  walk(pid)
  return out
}

const tcpOpen = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = tcpConnect({ host, port })
    s.once('connect', () => (s.destroy(), resolve(true)))
    s.once('error', () => resolve(false))
  })

/** Stops the host's sshd and drops its connections: the listening daemon and every session process it forked. */
async function stopSshd(lab: Lab, host: string): Promise<number> {
  // the daemon listening on port 22 in the host's network namespace (ss names it with its pid)
  const ss = await lab.execOk(host, ['ss', '-Htlnp', 'sport = :22'])
  const pids = [...new Set([...ss.stdout.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))]
  assert.ok(pids.length > 0, `${host}: no process listens on port 22: ${ss.stdout}`)
  const all = [...new Set(pids.flatMap((p) => [p, ...descendants(p)]))]
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  return all.length
}

function startSshd(lab: Lab, host: string): void {
  const d = lab.hostDir(host)
  lab.startOnHost(
    host,
    ['/usr/sbin/sshd', '-D', '-f', join(d, 'ssh', 'sshd_config'), '-E', join(d, 'log', 'sshd.log')],
    'sshd.out',
  )
}

test('the SSH executor tries a host that does not answer several times, then says what it tried', async () => {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as AddressInfo).port
  await new Promise<void>((r) => srv.close(() => r()))
  const dir = tmp('xenstack-ssh-retry-')
  writeFileSync(join(dir, 'known_hosts'), '')
  const e = new SshExecutor({
    host: '127.0.0.1',
    port,
    password: new Secret('not-used-here'),
    knownHosts: new FileKnownHostsStore(join(dir, 'known_hosts')),
    name: 'node-x',
    connectAttempts: 3,
    connectRetryDelayMs: 100,
  })
  const t0 = performance.now()
  await assert.rejects(e.run(['true']), (err: Error) => {
    assert.match(
      err.message,
      new RegExp(
        `^node-x: cannot connect over SSH: 3 attempts over [0-9.]+ s to 127\\.0\\.0\\.1:${port} as root, the last: .*ECONNREFUSED`,
      ),
    )
    assert.ok(!err.message.includes('not-used-here'))
    return true
  })
  assert.ok(performance.now() - t0 >= 280, 'waited 100 + 200 ms between the attempts')
  await e.close()
})

test('node failure: sshd of a compute VM stopped mid-deploy; the task fails after its attempts, the compute group brakes, resume completes', async (t) => {
  if (!(await requireDeployLab(t))) return

  const home = tmp('xenstack-node-failure-')
  const { lab, env } = await upDeployLab(home)
  let state: StateStore | undefined
  try {
    const ssh = lab.host(FAILED_NODE).ssh

    const deploying = xenstack(home, ['deploy', env, '--json'], { timeoutMs: DEPLOY_TIMEOUT_MS })
    state = StateStore.open({ dataDir: home })
    const db = state.db
    // a task of the compute VM that works through its SSH (dom0 is reached through the compute VM too)
    const hit = await until(`a xenserver-dom0-* task running on ${FAILED_NODE}`, 600_000, () => {
      const row = db
        .prepare(
          "SELECT t.task AS task, t.deployment_id AS deployment FROM engine_tasks t WHERE t.node = ? AND t.status = 'running' AND t.task LIKE 'xenserver-dom0-%' ORDER BY t.deployment_id DESC LIMIT 1",
        )
        .get(FAILED_NODE) as { task: string; deployment: number } | undefined
      return row
    })
    const killed = await stopSshd(lab, FAILED_NODE)
    t.diagnostic(`stopped ${FAILED_NODE}'s sshd (${killed} processes) while ${hit.task} was running`)
    await until(`${FAILED_NODE}'s sshd to stop answering`, 10_000, async () =>
      (await tcpOpen(ssh.host, ssh.port)) ? undefined : true,
    )

    const first = await deploying
    t.diagnostic(`deploy with the node failing: ${first.ms} ms`)

    await t.test('the task fails after its attempts, naming node, task, SSH target and what was tried', () => {
      assert.notEqual(first.code, 0, 'the deployment did not succeed')
      assert.ok(first.json, `no JSON summary:\n${tail(first, 3000)}`)
      const errors = (first.json.errors ?? []) as { node: string; task: string; message: string; attempts?: number }[]
      const mine = errors.filter((e) => e.node === FAILED_NODE)
      assert.equal(mine.length, 1, `one failed task on ${FAILED_NODE}: ${JSON.stringify(errors)}`)
      const err = mine[0]
      t.diagnostic(`the task error: ${JSON.stringify(err)}`)
      assert.match(err.task, /^xenserver-/)
      assert.equal(err.attempts, 3, `the task and its 2 retries: ${JSON.stringify(err)}`)
      // the last attempt could not reach the node: the executor's own attempts, with where it tried
      assert.match(err.message, /cannot connect over SSH: \d+ attempts over [0-9.]+ s to /)
      assert.ok(err.message.includes(`${ssh.host}:${ssh.port}`), err.message)
      assert.match(err.message, /ECONNREFUSED/)
      assert.deepEqual(
        errors.filter((e) => e.node !== FAILED_NODE),
        [],
        'no task of another node failed',
      )
    })

    await t.test("the graph decides for the other nodes: dependents fail, the compute group's tolerance brakes", () => {
      // the release's compute group tolerates 2 % of its 2 nodes, i.e. none
      assert.match(String(first.json.reason), /fault tolerance of group compute exceeded/)
      const rows = db
        .prepare('SELECT node, task, status, reason FROM engine_tasks WHERE deployment_id = ? ORDER BY idx')
        .all(first.json.deployment) as { node: string; task: string; status: string; reason: string | null }[]
      const failed = rows.find((r) => r.node === FAILED_NODE && r.status === 'failed')!
      const other = rows.filter((r) => r.node === 'compute-2')
      // compute-2 ran what does not depend on the failed task; nothing of it failed or was left running
      assert.ok(
        other.some((r) => r.task === 'xenserver-dom0-prepare' && r.status === 'succeeded'),
        JSON.stringify(other),
      )
      for (const r of other)
        assert.ok(['succeeded', 'skipped', 'dep_failed'].includes(r.status), `${r.task}: ${r.status}`)
      // what needs every compute's dom0 prepared (dom0-plugins cross-depends on it) fails with the reason named
      const plugins = other.find((r) => r.task === 'xenserver-dom0-plugins')!
      if (failed.task === 'xenserver-dom0-prepare') {
        assert.equal(plugins.status, 'dep_failed')
        assert.match(String(plugins.reason), new RegExp(`requires ${FAILED_NODE}/xenserver-dom0-prepare failed`))
      }
      const controller = rows.filter((r) => r.node === 'controller-1')
      assert.ok(controller.length > 0)
      for (const r of controller) assert.ok(['succeeded', 'skipped'].includes(r.status), `${r.task}: ${r.status}`)
    })

    await t.test('with sshd back, xenstack deploy resume completes without repeating what succeeded', async () => {
      const succeeded = () =>
        new Map(
          (
            db
              .prepare(
                "SELECT key, attempt, started_at FROM engine_tasks WHERE deployment_id = ? AND status = 'succeeded'",
              )
              .all(first.json.deployment) as { key: string; attempt: number; started_at: string }[]
          ).map((r) => [r.key, `${r.attempt} ${r.started_at}`]),
        )
      const before = succeeded()
      startSshd(lab, FAILED_NODE)
      await until(`${FAILED_NODE}'s sshd`, 30_000, async () => ((await tcpOpen(ssh.host, ssh.port)) ? true : undefined))
      const resumed = await xenstack(home, ['deploy', 'resume', env, '--json'], { timeoutMs: DEPLOY_TIMEOUT_MS })
      t.diagnostic(`resume: ${resumed.ms} ms`)
      assert.equal(resumed.code, 0, tail(resumed))
      assert.equal(resumed.json?.status, 'ready')
      assert.equal(resumed.json.deployment, first.json.deployment, 'the same deployment, resumed')
      assert.equal(resumed.json.tasks.failed, 0)
      // every task that had succeeded kept its attempt and start: it did not run again
      const after = succeeded()
      for (const [key, run] of before) assert.equal(after.get(key), run, `${key} ran again`)
      assert.ok(after.size > before.size, 'the resume ran what was left')
      // what the failed node was for is there now: the lab is what a clean deployment makes
      assertDeployed(await captureEndState(lab))
    })
  } finally {
    state?.close()
    await lab.down()
  }
})
