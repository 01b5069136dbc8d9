// Hostile input: environment files (`xenstack env apply`'s YAML), in-process. A complete file is mutated as text or
// structure, or replaced by a random document. Every case parses or throws EnvFileError whose issues are
// `file:line:column: field: message`. FUZZ_SEED / FUZZ_CASES / FUZZ_CASE replay or scale (docs/reliability.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { stringify } from 'yaml'
import { fuzz, formatFuzzStats, isFullRun, mutateStructure, mutateText, randomString } from '@xenstack/testkit'
import { EnvFileError, parseEnvFile } from '../../src/envfile/envfile.js'
import { mutatedYaml, YAML_TOKENS } from './yaml-mutations.js'

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
    budgetMs: 1000, // CPU time per case (the hang limit is the runner's 30 s on the clock)
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
  if (isFullRun(stats)) assert.ok((stats.outcomes['rejected'] ?? 0) > stats.cases / 10)
  if (isFullRun(stats)) assert.ok((stats.outcomes['parsed'] ?? 0) > stats.cases / 20)
})

// Found by this fuzzer (seed 14, cases 516 and 1250), kept as regression cases.
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
