import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { runCli } from './run.js'

const scratch = scratchDirs()
let dataDir: string
let dir: string
const SECRET = 'env-Test-Passw0rd-xyz'
const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
  runCli([...args, '--data-dir', dataDir], env)

function revealed(name: string, dd = dataDir) {
  const s = StateStore.open({ dataDir: dd })
  try {
    return {
      settings: s.environments.settings(name, { reveal: true }),
      nodes: s.environments.nodes(name).map((n) => ({ name: n.name, roles: n.roles, data: n.data })),
      components: s.environments.require(name).components,
    }
  } finally {
    s.close()
  }
}

/** The values of a settings tree (what an environment file carries), without per-store metadata such as plugin ids. */
function values(tree: Record<string, any>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [g, body] of Object.entries(tree))
    for (const [k, v] of Object.entries(body as Record<string, any>)) {
      if (k === 'metadata') out[`${g}.metadata.enabled`] = v?.enabled
      else if (v && typeof v === 'object' && 'value' in v) out[`${g}.${k}`] = v.value
    }
  return out
}

before(() => {
  dataDir = scratch('xenstack-cli-env-')
  dir = scratch('xenstack-cli-envfiles-')
})

test('env create/list/show --json, and the unknown-environment error (exit 3, a hint)', async () => {
  const c = await cli(['env', 'create', 'e1', '--set', 'common.debug=true', '--json'])
  assert.equal(c.code, 0, c.stderr)
  const created = JSON.parse(c.stdout)
  assert.equal(created.name, 'e1')
  assert.equal(created.status, 'new')
  assert.ok(created.components.length > 0)
  const list = JSON.parse((await cli(['env', 'list', '--json'])).stdout) as any[]
  assert.deepEqual(
    list.map((e) => e.name),
    ['e1'],
  )
  const show = JSON.parse((await cli(['env', 'show', 'e1', '--json'])).stdout)
  assert.deepEqual(Object.keys(show), [
    'name',
    'release',
    'status',
    'components',
    'plugins',
    'nodes',
    'createdAt',
    'updatedAt',
  ])
  const missing = await cli(['env', 'show', 'nope'])
  assert.equal(missing.code, 3)
  assert.equal(missing.stderr, 'xenstack: environment "nope" does not exist\nhint: environments: xenstack env list\n')
  const dup = await cli(['env', 'create', 'e1'])
  assert.equal(dup.code, 1)
  assert.match(dup.stderr, /already exists/)
})

test('env settings get/set/validate: typed values, dependency checks, passwords never printed', async () => {
  const get = await cli(['env', 'settings', 'get', 'e1', 'common.debug', '--json'])
  assert.equal(JSON.parse(get.stdout).value, true)
  const set = await cli(
    ['env', 'settings', 'set', 'e1', 'common.debug=false', '--from-env', 'access.password=PW', '--json'],
    {
      PW: SECRET,
    },
  )
  assert.equal(set.code, 0, set.stderr)
  assert.deepEqual(JSON.parse(set.stdout), [
    { path: 'common.debug.value', value: false },
    { path: 'access.password.value', value: '********' },
  ])
  assert.equal(revealed('e1').settings.access.password.value, SECRET)
  for (const args of [
    ['env', 'settings', 'get', 'e1'],
    ['env', 'settings', 'get', 'e1', '--json'],
    ['env', 'settings', 'get', 'e1', 'access'],
  ]) {
    const r = await cli(args)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(!r.stdout.includes(SECRET), args.join(' '))
    assert.match(r.stdout, /\*{8}/)
  }
  const warn = await cli(['env', 'settings', 'set', 'e1', `access.password=${SECRET}`])
  assert.equal(warn.code, 0, warn.stderr)
  assert.match(warn.stderr, /lands in shell history; use --from-env/)
  assert.ok(!warn.stdout.includes(SECRET))
  const bad = await cli(['env', 'settings', 'set', 'e1', 'common.debug=maybe'])
  assert.equal(bad.code, 2)
  assert.match(bad.stderr, /common\.debug\.value: expected true or false, found "maybe"/)
  const none = await cli(['env', 'settings', 'set', 'e1', 'common.nothing=1'])
  assert.equal(none.code, 3)
  const valid = await cli(['env', 'settings', 'validate', 'e1', '--json'])
  assert.equal(valid.code, 0, valid.stderr)
  assert.deepEqual(JSON.parse(valid.stdout), { environment: 'e1', valid: true, errors: [] })
})

test('env nodes assign/list/remove: roles checked against the release', async () => {
  const add = await cli(['env', 'nodes', 'assign', 'e1', 'node-1', '--roles', 'compute', '--add', '--json'])
  assert.equal(add.code, 0, add.stderr)
  assert.deepEqual(JSON.parse(add.stdout), { environment: 'e1', node: 'node-1', roles: ['compute'] })
  await cli(['env', 'nodes', 'assign', 'e1', 'node-2', '--roles', 'controller,cinder', '--add'])
  const list = JSON.parse((await cli(['env', 'nodes', 'list', 'e1', '--json'])).stdout) as any[]
  assert.deepEqual(
    list.map((n) => [n.name, n.roles]),
    [
      ['node-1', ['compute']],
      ['node-2', ['controller', 'cinder']],
    ],
  )
  const badRole = await cli(['env', 'nodes', 'assign', 'e1', 'node-1', '--roles', 'frobnicator'])
  assert.equal(badRole.code, 2)
  assert.match(badRole.stderr, /unknown role frobnicator\nhint: roles: .*compute/)
  const noNode = await cli(['env', 'nodes', 'assign', 'e1', 'node-9', '--roles', 'compute'])
  assert.equal(noNode.code, 3)
  assert.match(noNode.stderr, /hint: add it with --add/)
  // The release's role rules, as on the server's nodes page: conflicting roles, roles whose restriction holds.
  const conflict = await cli(['env', 'nodes', 'assign', 'e1', 'node-1', '--roles', 'controller,compute'])
  assert.equal(conflict.code, 5)
  assert.match(conflict.stderr, /^xenstack: node node-1: .*(Controller|controller).*(Compute|compute)/)
  const disabled = await cli(['env', 'nodes', 'assign', 'e1', 'node-1', '--roles', 'mongo'])
  assert.equal(disabled.code, 5)
  assert.match(disabled.stderr, /MongoDB is only needed with Ceilometer/)
  const kept = JSON.parse((await cli(['env', 'nodes', 'list', 'e1', '--json'])).stdout) as any[]
  assert.deepEqual(kept[0].roles, ['compute'], 'a refused assignment changes nothing')
  const rm = await cli(['env', 'nodes', 'remove', 'e1', 'node-2'])
  assert.equal(rm.code, 0, rm.stderr)
})

test('env export → env apply reproduces the environment exactly; a second apply changes nothing', async () => {
  const exp = await cli(['env', 'export', 'e1'])
  assert.equal(exp.code, 0, exp.stderr)
  assert.ok(!exp.stdout.includes(SECRET), 'the export holds no password in clear')
  assert.match(exp.stdout, /password:\n\s+encrypted: enc:v1:/)
  const file = join(dir, 'e1-copy.yaml')
  writeFileSync(file, exp.stdout.replace(/^name: e1$/m, 'name: e1-copy'))
  const apply = await cli(['env', 'apply', file, '--json'])
  assert.equal(apply.code, 0, apply.stderr)
  assert.deepEqual(JSON.parse(apply.stdout), {
    environment: 'e1-copy',
    created: true,
    dryRun: false,
    changes: ['environment e1-copy created with 1 node'],
  })
  assert.deepEqual(revealed('e1-copy'), revealed('e1'))
  const again = await cli(['env', 'apply', file, '--json'])
  assert.deepEqual(JSON.parse(again.stdout).changes, [])
  // An edit is applied as the difference: one setting, one node.
  const text = readFileSync(file, 'utf8')
    .replace(/^settings:\n/m, 'settings:\n  common:\n    debug: true\n')
    .replace(/^nodes:\n/m, 'nodes:\n  node-3:\n    roles: [cinder]\n')
  writeFileSync(file, text)
  // A dry run reports the same changes and writes nothing.
  const dry = await cli(['env', 'apply', file, '--dry-run', '--json'])
  assert.equal(dry.code, 0, dry.stderr)
  assert.equal(JSON.parse(dry.stdout).dryRun, true)
  assert.deepEqual(JSON.parse(dry.stdout).changes.sort(), [
    'node node-3 added (cinder)',
    'setting common.debug.value changed',
  ])
  assert.deepEqual(revealed('e1-copy'), revealed('e1'))
  const edit = await cli(['env', 'apply', file, '--json'])
  assert.equal(edit.code, 0, edit.stderr)
  assert.deepEqual(JSON.parse(edit.stdout).changes.sort(), [
    'node node-3 added (cinder)',
    'setting common.debug.value changed',
  ])
})

test('env export --secrets env: placeholders, applied into another data directory from the environment', async () => {
  const exp = await cli(['env', 'export', 'e1', '--secrets', 'env'])
  assert.match(exp.stdout, /password:\n\s+env: XENSTACK_SECRET_ACCESS_PASSWORD/)
  const other = scratch('xenstack-cli-env-other-')
  const file = join(dir, 'portable.yaml')
  writeFileSync(file, exp.stdout)
  const missing = await runCli(['env', 'apply', file, '--data-dir', other], {
    XENSTACK_SECRET_ACCESS_PASSWORD: undefined,
  })
  assert.equal(missing.code, 5)
  // The line of the `password:` key holding the placeholder.
  const line = exp.stdout.split('\n').findIndex((l) => l.includes('env: XENSTACK_SECRET_ACCESS_PASSWORD'))
  assert.match(
    missing.stderr,
    new RegExp(
      `portable\\.yaml:${line}:\\d+: settings\\.access\\.password\\.value: environment variable XENSTACK_SECRET_ACCESS_PASSWORD is not set`,
    ),
  )
  const ok = await runCli(['env', 'apply', file, '--data-dir', other], { XENSTACK_SECRET_ACCESS_PASSWORD: SECRET })
  assert.equal(ok.code, 0, ok.stderr)
  const [copy, orig] = [revealed('e1', other), revealed('e1')]
  assert.deepEqual(values(copy.settings), values(orig.settings))
  assert.deepEqual([copy.nodes, copy.components], [orig.nodes, orig.components])
})

test('env apply: bad YAML and bad values are named by file and line (exit 5); nothing is written', async () => {
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'name: broken\nnodes:\n  n1:\n    roles: [compute\n')
  const r = await cli(['env', 'apply', bad])
  assert.equal(r.code, 5)
  assert.match(r.stderr, /^xenstack: .*bad\.yaml:\d+:\d+: /)
  const wrong = join(dir, 'wrong.yaml')
  writeFileSync(
    wrong,
    'name: wrong\nnodes:\n  n1:\n    roles: compute\n    colour: red\nsettings:\n  common:\n    debug: 5\n',
  )
  const w = await cli(['env', 'apply', wrong])
  assert.equal(w.code, 5)
  assert.match(w.stderr, /wrong\.yaml:4:12: nodes\.n1\.roles: expected a list of strings/)
  assert.match(w.stderr, /wrong\.yaml:5:13: nodes\.n1\.colour: unknown key/)
  const v = join(dir, 'value.yaml')
  writeFileSync(v, 'name: value\nsettings:\n  common:\n    debug: 5\n')
  const val = await cli(['env', 'apply', v])
  assert.equal(val.code, 5)
  assert.match(val.stderr, /value\.yaml:4:12: settings\.common\.debug: .*expected true or false, found 5/)
  const list = JSON.parse((await cli(['env', 'list', '--json'])).stdout) as any[]
  assert.ok(!list.some((e) => ['broken', 'wrong', 'value', 'roles'].includes(e.name)))
  const roles = join(dir, 'roles.yaml')
  writeFileSync(roles, 'name: roles\nnodes:\n  n1:\n    roles: [controller, compute]\n')
  const rr = await cli(['env', 'apply', roles])
  assert.equal(rr.code, 5)
  assert.match(rr.stderr, /roles\.yaml:4:5: nodes\.n1\.roles: .*(Compute|compute)/)
  const nofile = await cli(['env', 'apply', join(dir, 'absent.yaml')])
  assert.equal(nofile.code, 3)
  assert.match(nofile.stderr, /absent\.yaml:0:0: cannot read: ENOENT/)
})

test('env apply creates the pools the file declares (password from the environment), nodes name them', async () => {
  const f = join(dir, 'pools.yaml')
  writeFileSync(
    f,
    [
      'name: pooled',
      'pools:',
      '  p1: {url: "https://xs1.example", username: root, password: {env: P1_PW}, tls: {fingerprint: "' +
        'ab'.repeat(32) +
        '"}}',
      'nodes:',
      '  compute-1: {roles: [compute], pool: p1}',
      '  compute-2: {roles: [compute], pool: p9}',
      '',
    ].join('\n'),
  )
  const unknownPool = await cli(['env', 'apply', f], { P1_PW: SECRET })
  assert.equal(unknownPool.code, 5)
  assert.match(unknownPool.stderr, /pools\.yaml:6:39: nodes\.compute-2\.pool: no pool "p9"/)
  writeFileSync(f, readFileSync(f, 'utf8').replace('pool: p9', 'pool: p1'))
  const ok = await cli(['env', 'apply', f, '--json'], { P1_PW: SECRET })
  assert.equal(ok.code, 0, ok.stderr)
  assert.deepEqual(JSON.parse(ok.stdout).changes, ['pool p1 added', 'environment pooled created with 2 nodes'])
  const show = JSON.parse((await cli(['pool', 'show', 'p1', '--json'])).stdout)
  assert.deepEqual(show.nodes, ['pooled/compute-1', 'pooled/compute-2'])
  const again = await cli(['env', 'apply', f, '--json'], { P1_PW: SECRET })
  assert.deepEqual(JSON.parse(again.stdout).changes, [])
  const exp = await cli(['env', 'export', 'pooled'])
  assert.match(
    exp.stdout,
    /pools:\n {2}p1:\n {4}url: https:\/\/xs1\.example\n {4}username: root\n {4}password:\n {6}encrypted: enc:v1:/,
  )
  assert.ok(!exp.stdout.includes(SECRET))
})

test('env delete removes it once; then exit 3', async () => {
  assert.equal((await cli(['env', 'delete', 'e1-copy'])).code, 0)
  assert.equal((await cli(['env', 'delete', 'e1-copy'])).code, 3)
})

test('the environment file shown in docs/cli.md applies as documented, and a second apply changes nothing', async () => {
  const doc = readFileSync(new URL('../../../../../docs/cli.md', import.meta.url), 'utf8')
  const yaml = doc.split('```yaml\n')[1].split('```')[0]
  const file = join(dir, 'from-docs.yaml')
  writeFileSync(file, yaml)
  const dry = await cli(['env', 'apply', file, '--dry-run'], { XS_PASSWORD: SECRET })
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(
    dry.stdout,
    /^would: pool lab1 added\nwould: environment prod created with 1 node\nenvironment prod would be created \(dry run: nothing changed\)\n$/,
  )
  assert.equal((await cli(['env', 'show', 'prod'])).code, 3)
  assert.equal((await cli(['pool', 'show', 'lab1'])).code, 3)
  const first = await cli(['env', 'apply', file, '--json'], { XS_PASSWORD: SECRET })
  assert.equal(first.code, 0, first.stderr)
  assert.deepEqual(JSON.parse(first.stdout).changes, ['pool lab1 added', 'environment prod created with 1 node'])
  const again = await cli(['env', 'apply', file, '--json'], { XS_PASSWORD: SECRET })
  assert.deepEqual(JSON.parse(again.stdout).changes, [])
  const show = JSON.parse((await cli(['env', 'show', 'prod', '--json'])).stdout)
  assert.deepEqual(
    show.plugins.map((p: { name: string }) => p.name),
    ['xenserver'],
  )
  assert.deepEqual(show.nodes, [{ name: 'compute-1', roles: ['compute'], status: 'discover', pool: 'lab1' }])
  assert.equal(revealed('prod').settings.xenserver.password.value, SECRET)
})
