import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { buildProgram } from '../../src/cli/program.js'
import { commandModules } from '../../src/cli/commands/index.js'
import { runCli } from './run.js'

const bin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
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

/** Every command path of the program (`env settings get`, …). */
async function commandPaths(): Promise<{ path: string[]; json: boolean }[]> {
  const out: { path: string[]; json: boolean }[] = []
  const walk = (c: Command, path: string[]) => {
    if (path.length) {
      const json = [c, c.parent].some((x) => x?.options.some((o) => o.long === '--json'))
      out.push({ path, json: c.commands.length === 0 ? json : true })
    }
    for (const s of c.commands) walk(s, [...path, s.name()])
  }
  walk(await buildProgram(), [])
  return out
}

test('--help works on every level (exit 0, a usage line, nothing on stderr)', async () => {
  const paths = await commandPaths()
  assert.ok(paths.length > 40, `only ${paths.length} commands`)
  for (const { path } of paths) {
    const r = await runCli([...path, '--help'])
    assert.equal(r.code, 0, path.join(' '))
    assert.match(r.stdout, new RegExp(`^Usage: xenstack ${path.join(' ')}\\b`), path.join(' '))
    assert.equal(r.stderr, '', path.join(' '))
  }
})

test('every command that prints data has --json (the exceptions print no data or a file)', async () => {
  const without = (await commandPaths()).filter((c) => !c.json).map((c) => c.path.join(' '))
  // lab exec passes a command's own output through; env export writes an environment file (YAML) by design;
  // lab down prints one line of what it removed.
  assert.deepEqual(without.sort(), ['env export', 'lab down', 'lab exec'])
})

test('each command module registers exactly the names the lazy index gives it; one command loads one module', async () => {
  const { Command } = await import('commander')
  for (const entry of commandModules) {
    const p = new Command('xenstack')
    ;(await entry.load()).register(p)
    assert.deepEqual(
      p.commands.map((c) => c.name()),
      entry.names,
    )
  }
  const env = await buildProgram(['env', 'list'])
  assert.deepEqual(
    env.commands.map((c) => c.name()),
    ['env'],
  )
  const all = await buildProgram(['--help'])
  assert.deepEqual(
    all.commands.map((c) => c.name()),
    commandModules.flatMap((m) => m.names),
  )
})
