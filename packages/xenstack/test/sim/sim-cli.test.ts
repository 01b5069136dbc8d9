/**
 * `xenstack sim` as a user runs it: the banner's first line, a generated password, a working pool, SIGTERM
 * flushing the state directory and exiting 0, and the pool still there on the next start.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

// dist/test/sim/sim-cli.test.js → dist/src/cli/main.js
const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js')

interface Started {
  child: ChildProcess
  lines: string[]
  exit: Promise<number | null>
}

async function startCli(args: string[]): Promise<Started> {
  const child = spawn(process.execPath, [MAIN, 'sim', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const rl = createInterface({ input: child.stdout! })
  await new Promise<void>((resolve, reject) => {
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    rl.on('line', (l) => {
      lines.push(l)
      if (l.startsWith('admin: ')) resolve()
    })
    void exit.then((code) => reject(new Error(`xenstack sim exited ${code} before starting: ${stderr}`)))
  })
  return { child, lines, exit }
}

async function rpc(url: string, method: string, params: unknown[]): Promise<any> {
  const r = await fetch(`${url}/jsonrpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return r.json()
}

test('xenstack sim: banner, generated password, SIGTERM flushes state and exits 0, state kept on restart', async () => {
  const state = mkdtempSync(join(tmpdir(), 'xenstack-sim-cli-'))
  let run: Started | undefined
  try {
    run = await startCli(['--listen', '127.0.0.1:0', '--state', state, '--hosts', '3', '--vms', '4'])
    const m = /^xapi-sim listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(run.lines[0])
    assert.ok(m, `first line: ${run.lines[0]}`)
    assert.notEqual(m[2], '0')
    const url = m[1]
    const pw = /^password: (\S+) \(generated/.exec(run.lines.find((l) => l.startsWith('password: '))!)?.[1]
    assert.ok(pw && pw.length >= 12, 'a generated password is printed')
    const sess = (await rpc(url, 'session.login_with_password', ['root', pw])).result
    assert.equal((await rpc(url, 'host.get_all', [sess])).result.length, 3)
    const net = (
      await rpc(url, 'network.create', [sess, { name_label: 'cli', name_description: '', MTU: 1500, other_config: {} }])
    ).result
    run.child.kill('SIGTERM')
    assert.equal(await run.exit, 0)
    assert.ok(existsSync(join(state, 'state.json')))

    // Same state, a new password: the pool (and the network created above) is still there.
    run = await startCli(['--state', state, '--password', 'second'])
    const url2 = /^xapi-sim listening on (\S+)$/.exec(run.lines[0])![1]
    const sess2 = (await rpc(url2, 'session.login_with_password', ['root', 'second'])).result
    assert.equal((await rpc(url2, 'network.get_name_label', [sess2, net])).result, 'cli')
    assert.equal((await rpc(url2, 'host.get_all', [sess2])).result.length, 3)
    run.child.kill('SIGINT')
    assert.equal(await run.exit, 0)
  } finally {
    if (run && run.child.exitCode === null) run.child.kill('SIGKILL')
    rmSync(state, { recursive: true, force: true })
  }
})

test('xenstack sim: bad flags and bad scenarios are one clear line and a usage/input exit code', async () => {
  const bad = spawn(process.execPath, [MAIN, 'sim', '--hosts', 'many'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  bad.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((r) => bad.on('exit', r))
  assert.equal(code, 2)
  assert.match(err, /^xenstack: --hosts: expected an integer ≥ 1, got many$/m)
  const missing = spawn(process.execPath, [MAIN, 'sim', '--scenario', '/nonexistent/lab.yaml'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err2 = ''
  missing.stderr.on('data', (d: Buffer) => (err2 += d.toString()))
  assert.equal(await new Promise<number | null>((r) => missing.on('exit', r)), 5)
  assert.match(err2, /^xenstack: \/nonexistent\/lab\.yaml: \(file\): cannot read the scenario: ENOENT/m)
})
