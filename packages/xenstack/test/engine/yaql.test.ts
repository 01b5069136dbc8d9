// The YAQL subset (src/engine/yaql.ts): the corpus release's expressions, the redeploy functions Fuel's graphs
// use in conditions, and unsupported constructs refused at graph construction with the task and its file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { YaqlError, YaqlExpression } from '../../src/engine/yaql.js'
import { buildExecutionPlan, GraphBuildError } from '../../src/engine/graph.js'

const CORPUS_TASKS = '/work/shared/corpus/fuel/fuel-web-release/deployment_tasks.yaml'

test('the corpus release: every yaql_exp in its tasks parses, and upload_nodes_info gives the nodes as YAML', () => {
  let text: string
  try {
    text = readFileSync(CORPUS_TASKS, 'utf8')
  } catch {
    text = `- id: upload_nodes_info\n  parameters:\n    data:\n      yaql_exp: '$.network_metadata.nodes.values().toYaml()'\n`
  }
  const found: string[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'yaql_exp' && typeof x === 'string') found.push(x)
        else walk(x)
      }
  }
  walk(parseYaml(text))
  assert.ok(found.includes('$.network_metadata.nodes.values().toYaml()'))
  for (const src of found) new YaqlExpression(src) // does not throw

  const data = {
    network_metadata: {
      nodes: {
        'node-1': { uid: '1', name: 'node-1', node_roles: ['controller'] },
        'node-2': { uid: '2', name: 'node-2', node_roles: ['compute'] },
      },
    },
  }
  const out = new YaqlExpression('$.network_metadata.nodes.values().toYaml()').evaluate({ data })
  assert.equal(typeof out, 'string')
  assert.deepEqual(parseYaml(out as string), Object.values(data.network_metadata.nodes))
  assert.deepEqual(parseYaml(new YaqlExpression(' $.toYaml() ').evaluate({ data }) as string), data)
})

test('conditions: paths, comparisons, and/or/not, in, len, keys, isUndef', () => {
  const data = { a: { b: 2, s: 'kvm', list: [1, 2, 3] }, flag: true, empty: [] }
  const ev = (src: string) => new YaqlExpression(src).evaluate({ data })
  assert.equal(ev('$.a.b = 2'), true)
  assert.equal(ev('$.a.b != 2'), false)
  assert.equal(ev('$.a.b >= 2 and $.a.s = "kvm"'), true)
  assert.equal(ev("$.a.s = 'qemu' or not $.flag"), false)
  assert.equal(ev('not ($.a.b < 1)'), true)
  assert.equal(ev('2 in $.a.list'), true)
  assert.equal(ev("'s' in $.a"), true)
  assert.equal(ev('$.a.list.len() = 3 and len($.a) = 3'), true)
  assert.deepEqual(ev('$.a.keys()'), ['b', 's', 'list'])
  assert.equal(ev('$.a.list[1]'), 2)
  assert.equal(ev("$['a']['s']"), 'kvm')
  assert.equal(ev('isUndef($.missing.deeper)'), true)
  assert.equal(ev('isUndef($.a)'), false)
  assert.deepEqual(new YaqlExpression('$.a.b = $x').paths(), ['a.b'])
  assert.equal(new YaqlExpression('$.a.b = $x').evaluate({ data, vars: { x: 2 } }), true)
  assert.throws(() => ev('$.a.s < 3'), /compares numbers or strings, found string and number/)
})

test('changed(), changedAny(), changedAll(), new(), old(): against the last deployment, all changed without one', () => {
  const old = { settings: { a: 1, b: 'x' }, nodes: 3 }
  const data = { settings: { a: 2, b: 'x' }, nodes: 3 }
  const ev = (src: string, o: unknown = old) => new YaqlExpression(src).evaluate({ data, old: o })
  assert.equal(ev('changed($.settings.a)'), true)
  assert.equal(ev('changed($.settings.b)'), false)
  assert.equal(ev('changed($.settings)'), true)
  assert.equal(ev('changed()'), true)
  assert.equal(ev('changed()', data), false)
  assert.equal(ev('changedAny($.nodes, $.settings.a)'), true)
  assert.equal(ev('changedAll($.nodes, $.settings.a)'), false)
  assert.equal(ev('new($.settings.a) = 2 and old($.settings.a) = 1'), true)
  // No previous deployment: everything counts as changed, old() is undefined.
  const first = (src: string) => new YaqlExpression(src).evaluate({ data })
  assert.equal(first('changed($.settings.b)'), true)
  assert.equal(first('isUndef(old($.settings.a))'), true)
})

test('unsupported constructs are refused when parsed, with their column', () => {
  const refuse = (src: string, re: RegExp) =>
    assert.throws(
      () => new YaqlExpression(src),
      (e: unknown) => e instanceof YaqlError && re.test((e as Error).message),
    )
  refuse('$.nodes.where($.role = "compute")', /unsupported method where\(\).*column 9/)
  refuse('selectMany($.x)', /unsupported function selectMany\(\).*column 1/)
  refuse('$.a -> $.b', /unsupported character "-".*column 5/)
  refuse('$.a = ', /unexpected end of expression.*column 7/)
  refuse('nodes.x', /unexpected name nodes \(data is reached from \$/)
  refuse('$.a.keys(1)', /keys\(\) takes no arguments/)
  refuse("'open", /unterminated string/)
  refuse('  ', /non-empty string/)
})

const graph = (condition: unknown, extra: Record<string, unknown> = {}) =>
  buildExecutionPlan({
    tasks: [
      {
        task: { id: 'yaql-task', type: 'shell', roles: ['compute'], parameters: { cmd: 'true' }, condition, ...extra },
        source: 'plugin demo',
        location: 'plugins/demo/deployment_tasks.yaml:12',
      },
    ],
    nodes: [{ name: 'n1', roles: ['compute'] }],
    models: { settings: { demo: { enabled: true, mode: 'a' } } },
  })

test('graph construction: a yaql condition is evaluated (false is a skip with its reason); unsupported fails naming the task and file', () => {
  const on = graph({ yaql_exp: '$.settings.demo.enabled and $.settings.demo.mode = "a"' })
  assert.equal(on.plan.tasks.find((t) => t.id === 'yaql-task')?.skipReason, undefined)
  const off = graph({ yaql_exp: '$.settings.demo.mode = "b"' })
  assert.equal(
    off.plan.tasks.find((t) => t.id === 'yaql-task')?.skipReason,
    'condition "yaql: $.settings.demo.mode = "b"" is false',
  )
  assert.throws(
    () => graph({ yaql_exp: '$.settings.demo.select($.mode)' }),
    (e: unknown) =>
      e instanceof GraphBuildError &&
      /task yaql-task \(plugins\/demo\/deployment_tasks\.yaml:12\): condition .*unsupported method select\(\)/.test(
        (e as Error).message,
      ),
  )
  assert.throws(
    () => graph({ yaql_exp: 42 }),
    (e: unknown) =>
      e instanceof GraphBuildError && /task yaql-task .*\{yaql_exp: <string>\}/.test((e as Error).message),
  )
  assert.throws(
    () =>
      buildExecutionPlan({
        tasks: [
          {
            task: {
              id: 'upload-it',
              type: 'upload_file',
              roles: ['compute'],
              parameters: { path: '/etc/x.yaml', data: { yaql_exp: '$.nodes.orderBy($.uid).toYaml()' } },
            },
            source: 'plugin demo',
            location: 'plugins/demo/deployment_tasks.yaml:30',
          },
        ],
        nodes: [{ name: 'n1', roles: ['compute'] }],
      }),
    (e: unknown) =>
      e instanceof GraphBuildError &&
      /task upload-it \(plugins\/demo\/deployment_tasks\.yaml:30\): parameters\.data .*unsupported method orderBy\(\)/.test(
        (e as Error).message,
      ),
  )
})

test('redeploy: changed() in a yaql condition compares with the previous deployment models', () => {
  const models = { settings: { demo: { enabled: true, mode: 'a' } } }
  const build = (previousModels: typeof models) =>
    buildExecutionPlan({
      tasks: [
        {
          task: {
            id: 'on-change',
            type: 'shell',
            roles: ['compute'],
            parameters: { cmd: 'true' },
            condition: { yaql_exp: 'changed($.settings.demo.mode)' },
          },
          source: 'plugin demo',
        },
      ],
      nodes: [{ name: 'n1', roles: ['compute'] }],
      models,
      previous: { digests: new Map(), models: previousModels },
    }).plan.tasks.find((t) => t.id === 'on-change')
  assert.equal(build({ settings: { demo: { enabled: true, mode: 'b' } } })?.skipReason, undefined)
  assert.match(build(models)?.skipReason ?? '', /condition "yaql: changed\(\$\.settings\.demo\.mode\)" is false/)
})
