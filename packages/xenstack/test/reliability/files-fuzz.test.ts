// Hostile input: plugin YAML files and environment files, in-process. Plugin cases take a real plugin from the
// Fuel corpus and replace one of its YAML files by a mutated one (text edits with YAML indicators, or a structure
// edit re-serialised); environment files are mutated or generated documents. Every case either loads or reports
// errors that name the file, a line and the field; nothing else may be thrown. FUZZ_SEED / FUZZ_CASES / FUZZ_CASE
// replay or scale (docs/reliability.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import {
  fuzz,
  formatFuzzStats,
  mutateStructure,
  mutateText,
  randomString,
  randomValue,
  type Rng,
} from '@xenstack/testkit'
import { loadPluginFiles, readPluginDir, type PluginFiles } from '../../src/plugins/loader.js'
import { EnvFileError, parseEnvFile } from '../../src/envfile/envfile.js'
import { corpusDir, XENSERVER_DEFINES } from '../plugins/corpus.js'

const YAML_TOKENS = [
  '\n',
  '\n  ',
  ': ',
  '- ',
  '{',
  '}',
  '[',
  ']',
  ',',
  '#',
  '&a ',
  '*a',
  '!!binary ',
  '!!python/object ',
  '<<: *a\n',
  '|\n',
  '>-\n',
  '---\n',
  '...\n',
  '? ',
  '"',
  "'",
  '\t',
  'null',
  '~',
  '0x1F',
  '.inf',
  '2001-12-14',
  '@PLUGIN_NAME@',
  '@UNDEFINED_TOKEN@',
  'condition: "settings:common.debug.value == true"\n',
  'type: puppet\n',
  'requires: [',
]

/** The corpus plugins the loader accepts as they are: the cases mutate these. */
function corpusPlugins(): { dir: string; files: PluginFiles }[] {
  const root = corpusDir()
  const dirs = [
    ...['6.1', '7.0', '8.0', '9.0', 'master'].map((v) => join(root, 'fuel-plugin-xenserver', v)),
    ...['v1', 'v2', 'v3', 'v4', 'v5'].map((v) => join(root, 'fuel-plugins-examples', `fuel_plugin_example_${v}`)),
  ]
  return dirs.map((dir) => ({ dir, files: readPluginDir(dir) }))
}

function mutatedYaml(rng: Rng, text: string): string {
  return rng.weighted<() => string>([
    [5, () => mutateText(rng, text, YAML_TOKENS)],
    [
      3,
      () => {
        let data: unknown
        try {
          data = parse(text)
        } catch {
          return mutateText(rng, text, YAML_TOKENS)
        }
        return stringify(mutateStructure(rng, data))
      },
    ],
    [1, () => stringify(randomValue(rng, 4))],
    // An alias bomb: a billion laughs must be refused, not expanded.
    [
      0.1,
      () =>
        'a: &a [x, x, x, x, x, x, x, x, x]\n' +
        Array.from(
          { length: 9 },
          (_, i) =>
            `${'b'.repeat(i + 1)}: &${'b'.repeat(i + 1)} [${Array(9)
              .fill(i ? '*' + 'b'.repeat(i) : '*a')
              .join(', ')}]`,
        ).join('\n'),
    ],
  ])()
}

test('plugin YAML: mutated corpus plugins load or name file, line and field', async () => {
  const plugins = corpusPlugins()
  const stats = await fuzz({
    name: 'plugin YAML files',
    seed: 14,
    // The loader takes 4–20 ms per plugin (schemas, graph, restrictions over every file), so CI runs 2,000
    // cases (~20 s of CPU); FUZZ_CASES=10000 runs the full set (docs/reliability.md has its figures).
    cases: 2000,
    budgetMs: 5000,
    run: (rng) => {
      const base = rng.pick(plugins)
      const files: PluginFiles = new Map(base.files)
      const yamlNames = [...files.keys()].filter((n) => n.endsWith('.yaml'))
      const name = rng.pick(yamlNames)
      files.set(name, Buffer.from(mutatedYaml(rng, files.get(name)!.toString('utf8'))))
      if (rng.chance(0.1)) files.delete(rng.pick(yamlNames))
      const r = loadPluginFiles(files, base.dir, { defines: XENSERVER_DEFINES })
      for (const i of r.issues) {
        assert.ok(typeof i.file === 'string' && i.file.length > 0, `an issue names its file: ${JSON.stringify(i)}`)
        assert.ok(Number.isInteger(i.line) && i.line >= 0, `an issue has a line: ${JSON.stringify(i)}`)
        assert.ok(typeof i.path === 'string' && i.path.length > 0, `an issue names the field: ${JSON.stringify(i)}`)
        assert.ok(typeof i.message === 'string' && i.message.length > 0, `an issue says what is wrong`)
      }
      // (With errors the loader still returns what it could read; requireValidPlugin refuses it.)
      if (r.errors.length) return 'rejected'
      assert.ok(r.plugin, 'without errors the plugin is loaded')
      return 'loaded'
    },
  })
  console.log(formatFuzzStats(stats))
  assert.ok((stats.outcomes['rejected'] ?? 0) > stats.cases / 2)
  assert.ok((stats.outcomes['loaded'] ?? 0) > stats.cases / 50)
})

/** A valid environment file (the shape `xenstack env apply` reads). */
const ENV_FILE = {
  name: 'demo',
  release: 'mitaka-9.0',
  components: ['hypervisor:xen', 'network:neutron:core:ml2'],
  plugins: ['fuel-plugin-xenserver', { name: 'other', version: '1.0.0' }],
  pools: {
    pool1: {
      url: 'https://10.0.0.1',
      username: 'root',
      password: { env: 'XS_PASSWORD' },
      tls: { verify: true, fingerprint: 'AB:CD' },
    },
  },
  nodes: {
    'controller-1': { roles: ['controller'], data: { ip: '10.0.0.2' } },
    'compute-1': { roles: ['compute'], pool: 'pool1' },
  },
  settings: {
    common: { debug: true },
    'fuel-plugin-xenserver.password': { env: 'XS_PASSWORD' },
  },
}
const ENV_TEXT = stringify(ENV_FILE)

test('environment files: 10,000 hostile files parse or fail with file:line:column: field', async () => {
  assert.equal(parseEnvFile(ENV_TEXT, 'env.yaml').name, 'demo', 'the seed document is valid')
  const stats = await fuzz({
    name: 'environment files',
    seed: 14,
    budgetMs: 1000,
    run: (rng) => {
      const text = rng.weighted<() => string>([
        [
          5,
          () =>
            mutateText(rng, ENV_TEXT, [...YAML_TOKENS, 'password: ', 'env: ', 'roles: ', 'nodes:\n  ', '__proto__: ']),
        ],
        [4, () => stringify(mutateStructure(rng, ENV_FILE, rng.int(1, 4)))],
        [1, () => mutatedYaml(rng, randomString(rng, 40))],
      ])()
      try {
        parseEnvFile(text, 'env.yaml')
        return 'parsed'
      } catch (e) {
        if (!(e instanceof EnvFileError))
          throw new Error(
            `threw ${(e as Error)?.name}: ${(e as Error)?.message} for ${JSON.stringify(text.slice(0, 300))}`,
          )
        assert.ok(e.issues.length > 0)
        for (const i of e.issues) {
          assert.equal(i.file, 'env.yaml')
          assert.ok(Number.isInteger(i.line) && i.line >= 1, `an issue has a line: ${JSON.stringify(i)}`)
          assert.ok(i.message.length > 0)
          assert.ok(e.message.includes(`env.yaml:${i.line}:`), 'the message names file and line')
        }
        return 'rejected'
      }
    },
  })
  console.log(formatFuzzStats(stats))
  assert.ok((stats.outcomes['rejected'] ?? 0) > 1000)
  assert.ok((stats.outcomes['parsed'] ?? 0) > 500)
})

// Found by these fuzzers (seed 14: plugin case 14, environment cases 516 and 1250), kept as regression cases.
test('plugin YAML regressions: a non-list task file and an alias before its anchor are issues, not exceptions', () => {
  const base = corpusPlugins().find((p) => p.dir.endsWith('master'))!
  const cases: [string, string, RegExp][] = [
    ['deployment_tasks.yaml', 'id: x\ntype: shell\n', /./],
    ['components.yaml', 'name: x\n', /./],
    ['environment_config.yaml', 'a: *later\nb: &later 1\n', /Unresolved alias/],
  ]
  for (const [file, text, message] of cases) {
    const files: PluginFiles = new Map(base.files)
    files.set(file, Buffer.from(text))
    const r = loadPluginFiles(files, base.dir, { defines: XENSERVER_DEFINES })
    const mine = r.errors.filter((i) => i.file === file)
    assert.ok(mine.length > 0, `${file}: an error names the file`)
    assert.ok(
      mine.some((i) => message.test(i.message)),
      `${file}: ${mine.map((i) => i.message).join('; ')}`,
    )
  }
})

test('environment file regressions: an alias before its anchor and a non-scalar release are EnvFileErrors', () => {
  for (const [text, where] of [
    ['name: demo\nrelease: *r\nx: &r 1\n', /env\.yaml:1:1: YAML error: Unresolved alias/],
    ['name: demo\nrelease:\n  - toString: true\n', /env\.yaml:[23]:\d+: release: expected a non-empty string/],
    [
      'name: demo\nplugins:\n  - name: p\n    version: [1]\n',
      /env\.yaml:[34]:\d+: plugins\.0\.version: expected a non-empty string/,
    ],
  ] as const) {
    assert.throws(
      () => parseEnvFile(text, 'env.yaml'),
      (e: unknown) => e instanceof EnvFileError && where.test(e.message),
    )
  }
})
