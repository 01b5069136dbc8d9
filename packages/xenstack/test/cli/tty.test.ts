/**
 * The CLI on a terminal: runs it under a pseudo-terminal (util-linux `script`, always on Debian) as a user would —
 * the password prompt must not echo, and a deployment shows progress bars per node.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { scratchDirs } from '@xenstack/testkit'
import { cliBin } from './run.js'
import { seedLocalEnvironment } from './fixtures.js'

const PASSWORD = 'tty-Passw0rd-' + process.pid
const scratch = scratchDirs()
let sim: SimServer

before(async () => {
  sim = await startSimServer({ hosts: 1, vms: 1, password: PASSWORD })
})
after(() => sim?.close())

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** Runs `xenstack ARGS` on a pty; `answer(output)` may return text to type once output shows something. */
function onTerminal(
  args: string[],
  answer?: (output: string) => string | undefined,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm', COLUMNS: '120' }
    delete env.CI
    delete env.XENSTACK_XAPI_PASSWORD
    delete env.XENSTACK_POOL
    const cmd = [process.execPath, cliBin, ...args].map(quote).join(' ')
    const p = spawn('script', ['-qefc', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    let answered = false
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000)
    p.stdout.on('data', (b: Buffer) => {
      output += b.toString()
      if (!answered && answer) {
        const text = answer(output)
        if (text !== undefined) {
          answered = true
          p.stdin.write(text)
        }
      }
    })
    p.stderr.on('data', (b: Buffer) => (output += b.toString()))
    p.on('error', reject)
    p.on('exit', (code) => {
      clearTimeout(timer)
      p.stdin.destroy()
      resolve({ code, output })
    })
  })
}

test('on a terminal the password is prompted for without echo, and is in no output', async () => {
  const r = await onTerminal(['xapi', 'host-list', '--url', sim.url, '--json'], (out) =>
    out.includes(`password for root at ${sim.url}: `) ? PASSWORD + '\r' : undefined,
  )
  assert.equal(r.code, 0, r.output)
  assert.ok(!r.output.includes(PASSWORD), 'the typed password is not echoed')
  const json = r.output.slice(r.output.indexOf('['))
  assert.equal((JSON.parse(json.replace(/\r/g, '')) as unknown[]).length, 1)
})

test('a wrong password typed at the prompt: exit 4, one line, not echoed', async () => {
  const wrong = 'typed-wrong-' + process.pid
  const r = await onTerminal(['xapi', 'vm-list', '--url', sim.url], (out) =>
    out.includes('password for root') ? wrong + '\r' : undefined,
  )
  assert.equal(r.code, 4, r.output)
  assert.match(r.output, /login as root refused/)
  assert.ok(!r.output.includes(wrong))
})

test('deploy on a terminal draws a progress bar per node and an overall bar', async () => {
  const dir = scratch('xenstack-cli-tty-')
  const dataDir = join(dir, 'data')
  seedLocalEnvironment(dataDir, dir, 'bars')
  const r = await onTerminal(['deploy', 'bars', '--data-dir', dataDir])
  assert.equal(r.code, 0, r.output)
  assert.match(r.output, /overall\s+[█░]+ 100%/)
  for (const node of ['cmp1', 'cmp2']) assert.match(r.output, new RegExp(`${node}\\s+[█░]+ \\d+%`))
  assert.match(r.output, /deployment \d+ of bars: ready/)
  // Bars, not the plain per-task lines of a pipe.
  assert.doesNotMatch(r.output, /^\[cmp1\] one: succeeded/m)
})
