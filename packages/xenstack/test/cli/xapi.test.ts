import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { scratchDirs } from '@xenstack/testkit'
import { runCli, spawnCli } from './run.js'

const PASSWORD = 'cli-xapi-Secr3t!'
const scratch = scratchDirs()
let sim: SimServer
let conn: string[]
const env = { XENSTACK_XAPI_PASSWORD: PASSWORD, XENSTACK_POOL: undefined }

before(async () => {
  const plugins = join(scratch('xenstack-cli-xapi-'), 'plugins')
  mkdirSync(plugins)
  // A dom0 plugin answering "called <function>" (XAPI runs it with the XML-RPC methodCall as its argument).
  writeFileSync(
    join(plugins, 'echo'),
    '#!/bin/sh\nfn=$(printf %s "$1" | sed -n "s/.*<methodName>\\(.*\\)<\\/methodName>.*/\\1/p")\n' +
      'printf \'<?xml version="1.0"?><methodResponse><params><param><value><string>called %s</string></value></param></params></methodResponse>\' "$fn"\n',
  )
  chmodSync(join(plugins, 'echo'), 0o755)
  sim = await startSimServer({ hosts: 2, vms: 6, password: PASSWORD, pluginsDir: plugins })
  conn = ['--url', sim.url, '--username', 'root']
})
after(() => sim?.close())

test('xapi vm-list --json: every non-template VM with its ref and typed fields', async () => {
  const r = await runCli(['xapi', 'vm-list', ...conn, '--json'], env)
  assert.equal(r.code, 0, r.stderr)
  const vms = JSON.parse(r.stdout) as Record<string, unknown>[]
  assert.equal(vms.filter((v) => !v.is_control_domain).length, 6)
  for (const v of vms) {
    assert.match(String(v.ref), /^OpaqueRef:/)
    assert.equal(v.is_a_template, false)
    assert.equal(typeof v.memory_static_max, 'number')
  }
})

test('xapi vm-list --where power_state=running --where memory_static_max>=1: typed filters', async () => {
  const all = JSON.parse((await runCli(['xapi', 'vm-list', ...conn, '--json'], env)).stdout) as any[]
  const r = await runCli(
    ['xapi', 'vm-list', ...conn, '--where', 'power_state=running', '--where', 'is_control_domain=false', '--json'],
    env,
  )
  assert.equal(r.code, 0, r.stderr)
  const running = JSON.parse(r.stdout) as any[]
  assert.ok(running.length > 0)
  assert.deepEqual(
    running.map((v) => v.uuid).sort(),
    all
      .filter((v) => v.power_state === 'Running' && !v.is_control_domain)
      .map((v) => v.uuid)
      .sort(),
  )
  const big = Math.max(...all.map((v) => v.memory_static_max))
  const r2 = await runCli(['xapi', 'vm-list', ...conn, '--where', `memory_static_max>=${big}`, '--json'], env)
  assert.ok((JSON.parse(r2.stdout) as any[]).every((v) => v.memory_static_max === big))
})

test('xapi vm-list: a reference filter matches the target by name, columns show names', async () => {
  const hosts = JSON.parse((await runCli(['xapi', 'host-list', ...conn, '--json'], env)).stdout) as any[]
  assert.equal(hosts.length, 2)
  const h = hosts[0]
  const r = await runCli(
    ['xapi', 'vm-list', ...conn, '--where', `resident_on=${h.name_label}`, '--params', 'name_label,resident_on'],
    env,
  )
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  assert.match(lines[0], /^NAME_LABEL\s+RESIDENT_ON$/)
  assert.ok(lines.length > 1)
  for (const l of lines.slice(1)) assert.ok(l.endsWith(h.name_label), l)
  const byUuid = await runCli(['xapi', 'vm-list', ...conn, '--where', `resident_on=${h.uuid}`, '--json'], env)
  assert.equal((JSON.parse(byUuid.stdout) as any[]).length, lines.length - 1)
})

test('xapi lists: every class answers with its default columns', async () => {
  for (const cmd of [
    'host-list',
    'network-list',
    'pif-list',
    'vif-list',
    'sr-list',
    'vdi-list',
    'patch-list',
    'update-list',
  ]) {
    const r = await runCli(['xapi', cmd, ...conn], env)
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`)
    assert.match(r.stdout, /^(UUID|no )/, cmd)
  }
  const pifs = await runCli(['xapi', 'pif-list', ...conn, '--params', 'device,host:x,MAC'], env)
  assert.equal(pifs.code, 2)
  assert.match(pifs.stderr, /host is a host ref, not a map/)
  const maps = await runCli(
    ['xapi', 'host-list', ...conn, '--params', 'name_label,software_version:product_version', '--json'],
    env,
  )
  assert.deepEqual(Object.keys((JSON.parse(maps.stdout) as any[])[0]), [
    'name_label',
    'software_version:product_version',
  ])
})

test('xapi --where errors name the field, its type and what was expected (exit 2, nothing fetched)', async () => {
  const cases: [string, RegExp][] = [
    ['power_state=Sleeping', /power_state is one of Halted, Paused, Running, Suspended; found "Sleeping"/],
    ['memory_static_max>lots', /memory_static_max is a int; "lots" is not a number/],
    ['is_a_template<true', /is_a_template is a bool; use = or !=/],
    ['colour=blue', /VM has no field "colour"/],
    ['other_config=x', /other_config is a map; name an entry as other_config:KEY=VALUE/],
    ['name_label', /expected FIELD=VALUE/],
  ]
  for (const [w, re] of cases) {
    // A URL nobody listens on: the error must come before any connection.
    const r = await runCli(['xapi', 'vm-list', '--url', 'http://127.0.0.1:9', '--where', w], env)
    assert.equal(r.code, 2, w)
    assert.match(r.stderr.split('\n')[0], re)
    assert.match(r.stderr, /^hint: /m)
  }
})

test('xapi plugin-call runs a dom0 plugin on the named host; unknown hosts and plugins are one line', async () => {
  const hosts = JSON.parse((await runCli(['xapi', 'host-list', ...conn, '--json'], env)).stdout) as any[]
  const name = hosts[0].name_label as string
  const ok = await runCli(['xapi', 'plugin-call', ...conn, name, 'echo', 'ping', 'a=1', '--json'], env)
  assert.equal(ok.code, 0, ok.stderr)
  const out = JSON.parse(ok.stdout) as { host: string; result: string }
  assert.equal(out.host, name)
  assert.equal(out.result, 'called ping')
  const unknown = await runCli(['xapi', 'plugin-call', ...conn, 'no-such-host', 'echo', 'ping'], env)
  assert.equal(unknown.code, 3)
  assert.match(unknown.stderr, /no host "no-such-host" in the pool/)
  const missing = await runCli(['xapi', 'plugin-call', ...conn, name, 'nope', 'f'], env)
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /XENAPI_MISSING_PLUGIN/)
  const badArg = await runCli(['xapi', 'plugin-call', ...conn, name, 'echo', 'ping', 'novalue'], env)
  assert.equal(badArg.code, 2)
  assert.match(badArg.stderr, /plugin argument "novalue": expected key=value/)
})

test('unreachable pool: one line, exit 4, a hint', async () => {
  const r = await runCli(['xapi', 'host-list', '--url', 'http://127.0.0.1:9', '--timeout', '5000'], env)
  assert.equal(r.code, 4)
  assert.match(r.stderr.split('\n')[0], /^xenstack: http:\/\/127\.0\.0\.1:9 is unreachable/)
  assert.match(r.stderr, /^hint: check the URL/m)
})

test('wrong password (as a child process): exit 4, the password in neither stdout nor stderr', async () => {
  const wrong = 'not-the-Passw0rd-' + process.pid
  const r = await spawnCli(['xapi', 'vm-list', ...conn], {
    env: { XENSTACK_XAPI_PASSWORD: wrong, XENSTACK_POOL: undefined },
  })
  assert.equal(r.code, 4, r.stderr)
  assert.match(r.stderr, /login as root refused \(SESSION_AUTHENTICATION_FAILED\)/)
  assert.ok(!r.stdout.includes(wrong) && !r.stderr.includes(wrong))
  // --password-stdin reads it from a pipe instead of the environment.
  const ok = await spawnCli(['xapi', 'host-list', ...conn, '--password-stdin', '--json'], {
    env: { XENSTACK_XAPI_PASSWORD: undefined, XENSTACK_POOL: undefined },
    input: PASSWORD + '\n',
  })
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal((JSON.parse(ok.stdout) as unknown[]).length, 2)
  assert.ok(!ok.stdout.includes(PASSWORD) && !ok.stderr.includes(PASSWORD))
})

test('no password and no terminal: a usage error naming the ways to give one', async () => {
  const r = await spawnCli(['xapi', 'host-list', ...conn], {
    env: { XENSTACK_XAPI_PASSWORD: undefined, XENSTACK_POOL: undefined },
  })
  assert.equal(r.code, 2)
  assert.match(r.stderr, /no password: stdin is not a terminal/)
  assert.match(r.stderr, /hint: set XENSTACK_XAPI_PASSWORD or pipe it with --password-stdin/)
})

test('xapi list CLASS: any listable class with the same filters; unknown classes name the known ones', async () => {
  const pbds = await runCli(
    ['xapi', 'list', 'PBD', ...conn, '--where', 'currently_attached=true', '--params', 'host,SR', '--json'],
    env,
  )
  assert.equal(pbds.code, 0, pbds.stderr)
  const rows = JSON.parse(pbds.stdout) as Record<string, unknown>[]
  assert.ok(rows.length > 0, 'the hosts have plugged SRs')
  for (const r of rows) assert.deepEqual(Object.keys(r), ['host', 'SR'])
  const pool = await runCli(['xapi', 'list', 'pool', ...conn], env)
  assert.equal(pool.code, 0, pool.stderr)
  assert.match(pool.stdout, /^UUID\s+NAME_LABEL\n\S+/)
  const bad = await runCli(['xapi', 'list', 'Frobnicator', ...conn], env)
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /no XAPI class "Frobnicator"\nhint: classes: .*\bPBD\b/)
})
