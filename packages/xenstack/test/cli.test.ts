import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const bin = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' })

test('--help lists the commands that exist', () => {
  const r = run('--help')
  assert.equal(r.status, 0)
  assert.match(r.stdout, /Usage: xenstack/)
  assert.match(r.stdout, /\bstart\b/)
  assert.match(r.stdout, /\bversion\b/)
})

test('an unknown command gives one clear line, a hint and exit code 2', () => {
  const r = run('frobnicate')
  assert.equal(r.status, 2)
  const lines = r.stderr.trim().split('\n')
  assert.match(lines[0], /^xenstack: unknown command 'frobnicate'/)
  assert.match(lines.at(-1)!, /^hint: /)
  assert.equal(r.stdout, '')
})

test('a bad flag gives one clear line and exit code 2', () => {
  const r = run('version', '--frob')
  assert.equal(r.status, 2)
  assert.match(r.stderr.split('\n')[0], /^xenstack: unknown option '--frob'/)
})

test('version --json prints one JSON object', () => {
  const r = run('version', '--json')
  assert.equal(r.status, 0)
  const data = JSON.parse(r.stdout) as { xenstack: string; node: string }
  assert.match(data.xenstack, /^\d+\.\d+\.\d+/)
  assert.equal(data.node, process.versions.node)
})

test('start runs until SIGINT, then stops cleanly with exit code 0', async () => {
  const { spawn } = await import('node:child_process')
  const child = spawn(process.execPath, [bin, 'start'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`start did not report ready; output: ${out}`)), 60_000)
    child.stdout.on('data', () => {
      if (out.includes('Press Ctrl-C to stop.')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  child.kill('SIGINT')
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
  assert.equal(code, 0)
  assert.match(out, /stopping/)
})
