import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { StateStore } from '../../src/state/store.js'
import { builtinReleases, releaseToJSON } from '../../src/releases/release.js'

const cli = join(fileURLToPath(import.meta.url), '..', '..', '..', 'src', 'cli', 'main.js')

function xenstack(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (b) => (stdout += b))
    p.stderr.on('data', (b) => (stderr += b))
    p.on('error', reject)
    p.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/** An environment whose nodes are this machine (local executor); tasks leave marks in `dir`. */
/** With `gate`, every task waits until that file exists (so a test decides when running tasks may finish). */
function seed(dataDir: string, dir: string, gate?: string) {
  const state = StateStore.open({ dataDir })
  const mark = (id: string) =>
    `echo ${id} >> ${join(dir, 'marks')}` + (gate ? `; while [ ! -e ${gate} ]; do sleep 0.05; done` : '')
  const task = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'shell',
    version: '2.0.0',
    groups: ['compute'],
    parameters: { cmd: mark(id), timeout: 60, retries: 0 },
    ...extra,
  })
  // The shipped release with a small graph of our own instead of its core tasks.
  const base = releaseToJSON(builtinReleases()[0])
  state.releases.upsert({
    name: 'engine-test',
    version: 'engine-test-1',
    operatingSystem: 'ubuntu',
    source: 'test',
    data: {
      ...base,
      name: 'engine-test',
      version: 'engine-test-1',
      tasks: [
        { id: 'deploy_start', type: 'stage' },
        { id: 'deploy_end', type: 'stage', requires: ['deploy_start'] },
        {
          id: 'compute',
          type: 'group',
          roles: ['compute'],
          requires: ['deploy_start'],
          required_for: ['deploy_end'],
          parameters: { strategy: { type: 'parallel' } },
        },
        task('one'),
        task('two', { requires: ['one'] }),
        task('three', { requires: ['two'], condition: "settings:common.flavor.value == 'full'" }),
        task('fails', {
          condition: "settings:common.flavor.value == 'broken'",
          parameters: { cmd: 'exit 3', retries: 0 },
        }),
      ],
    },
  })
  state.environments.create({
    name: 'env1',
    release: 'engine-test',
    settings: { common: { flavor: { type: 'text', value: 'full' } } },
  })
  for (const n of ['cmp1', 'cmp2'])
    state.environments.addNode('env1', { name: n, roles: ['compute'], data: { local: true } })
  return state
}

const lastJson = (out: string) => JSON.parse(out.slice(out.lastIndexOf('\n{') + 1))

test('xenstack deploy ENV --json, status, redeploy, dry run and failure exit codes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const dataDir = join(dir, 'data')
  seed(dataDir, dir).close()
  const marks = () => {
    const v = existsSync(join(dir, 'marks')) ? readFileSync(join(dir, 'marks'), 'utf8').split('\n').filter(Boolean) : []
    rmSync(join(dir, 'marks'), { force: true })
    return v.sort().join(',')
  }

  const dry = await xenstack(['deploy', 'env1', '--dry-run', '--data-dir', dataDir])
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stdout, /node cmp1\n/)
  assert.match(dry.stdout, /fails \[shell\] skip: condition "settings:common.flavor.value == 'broken'" is false/)
  assert.equal(marks(), '')

  const r = await xenstack(['deploy', 'env1', '--json', '--data-dir', dataDir])
  assert.equal(r.code, 0, r.stderr)
  const s = lastJson(r.stdout)
  assert.deepEqual(Object.keys(s).slice(0, 6), ['environment', 'deployment', 'status', 'nodes', 'tasks', 'changes'])
  assert.equal(s.environment, 'env1')
  assert.equal(s.status, 'ready')
  assert.deepEqual(s.nodes, [
    { name: 'cmp1', status: 'ready' },
    { name: 'cmp2', status: 'ready' },
  ])
  assert.deepEqual(s.tasks, { total: 8, succeeded: 6, failed: 0, skipped: 2 })
  assert.equal(marks(), 'one,one,three,three,two,two')

  const st = await xenstack(['deploy', 'status', 'env1', '--json', '--data-dir', dataDir])
  assert.equal(st.code, 0)
  assert.equal(lastJson(st.stdout).deployment, s.deployment)
  const state = StateStore.open({ dataDir })
  assert.equal(state.environments.get('env1')?.status, 'operational')

  // Redeploy with nothing changed: nothing runs. Then a setting changes: only the task reading it runs.
  const again = await xenstack(['deploy', 'env1', '--json', '--data-dir', dataDir])
  assert.equal(lastJson(again.stdout).tasks.skipped, 8)
  assert.equal(marks(), '')
  state.environments.saveSettings('env1', { common: { flavor: { type: 'text', value: 'broken' } } })
  state.close()
  const broken = await xenstack(['deploy', 'env1', '--json', '--data-dir', dataDir])
  assert.equal(broken.code, 1, broken.stdout + broken.stderr)
  const b = lastJson(broken.stdout)
  assert.equal(b.status, 'error')
  assert.equal(b.errors[0].task, 'fails')
  assert.equal(b.errors[0].exitCode, 3)
  assert.match(broken.stderr, /deployment \d+ of env1 is error/)
  assert.equal(marks(), '') // "three" is now skipped by its condition, "fails" failed before leaving a mark

  const missing = await xenstack(['deploy', 'nope', '--data-dir', dataDir])
  assert.equal(missing.code, 3)
  assert.match(missing.stderr, /environment "nope" does not exist/)
})

test('xenstack deploy stop is graceful and deploy resume finishes the rest', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-engine-cli-stop-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const dataDir = join(dir, 'data')
  const gate = join(dir, 'gate')
  seed(dataDir, dir, gate).close()
  const running = xenstack(['deploy', 'env1', '--json', '--max-busy-nodes', '1', '--data-dir', dataDir])
  // The first task starts and waits at the gate; the stop is requested while it runs; then the gate opens.
  const until = async (cond: () => boolean) => {
    const t0 = Date.now()
    while (!cond() && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20))
  }
  await until(() => existsSync(join(dir, 'marks')))
  const stopping = xenstack(['deploy', 'stop', 'env1', '--json', '--data-dir', dataDir])
  const state = StateStore.open({ dataDir })
  await until(() => {
    const r = state.db.prepare('SELECT stop_requested AS s FROM engine_deployments ORDER BY id DESC LIMIT 1').get() as
      { s: number } | undefined
    return r?.s === 1
  })
  state.close()
  writeFileSync(gate, '')
  const stop = await stopping
  const deployed = await running
  assert.equal(deployed.code, 1)
  const s = lastJson(deployed.stdout)
  assert.ok(['stopped', 'partially_deployed'].includes(s.status), s.status)
  assert.ok(
    s.nodes.some((n: { status: string }) => n.status === 'stopped'),
    JSON.stringify(s) + stop.stdout + stop.stderr,
  )
  assert.equal(lastJson(stop.stdout).status, s.status)
  // Only the task that was running when the stop came ran.
  assert.deepEqual(readFileSync(join(dir, 'marks'), 'utf8').split('\n').filter(Boolean), ['one'])
  const resumed = await xenstack(['deploy', 'resume', 'env1', '--json', '--data-dir', dataDir])
  assert.equal(resumed.code, 0, resumed.stderr)
  const r = lastJson(resumed.stdout)
  assert.equal(r.status, 'ready')
  assert.equal(r.deployment, s.deployment)
  // Every task ran exactly once across the stop and the resume.
  const all = readFileSync(join(dir, 'marks'), 'utf8').split('\n').filter(Boolean).sort()
  assert.deepEqual(all, ['one', 'one', 'three', 'three', 'two', 'two'])
})
