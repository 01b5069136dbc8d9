// Hostile input: Fuel restriction expressions. Generated (grammar-based, with nasty tokens, deep nesting and long
// chains) and mutated (real expressions from the Fuel corpus) expressions are parsed and evaluated, strict and
// non-strict. The only errors allowed are the language's own, with a column inside the expression; every case
// finishes within its time budget. FUZZ_SEED / FUZZ_CASES / FUZZ_CASE replay or scale (see docs/reliability.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import {
  Expression,
  ExpressionEvaluationError,
  ExpressionSyntaxError,
  parseExpression,
  type Models,
} from '@xenstack/restrictions'
import { fuzz, formatFuzzStats, isFullRun, mutateText, randomString, type Rng } from '@xenstack/testkit'
import { corpusDir } from '../plugins/corpus.js'

const MODELS: Models = {
  settings: {
    common: { debug: { value: false }, libvirt_type: { value: 'xen' }, list: { value: ['a', 'b'] } },
    'fuel-plugin-xenserver': { metadata: { enabled: true }, password: { value: 'x' } },
  },
  cluster: { mode: 'ha', status: 'new', net_provider: 'neutron' },
  version: { feature_groups: ['experimental'] },
  networking_parameters: { segmentation_type: 'vlan' },
  default: { a: 1, b: 'text', c: null, d: [1, 2], e: { k: 'v' } },
}

const PATHS = [
  'settings:common.debug.value',
  'settings:common.libvirt_type.value',
  'settings:common.list.value',
  'settings:fuel-plugin-xenserver.metadata.enabled',
  'cluster:mode',
  'cluster:status',
  'version:feature_groups',
  'networking_parameters:segmentation_type',
  'unknown:x.y',
  'settings:missing.path',
  'a',
  'b',
  'c',
  'd',
  'e',
  'nope',
]
const LITERALS = ['true', 'false', 'null', '0', '-1', '3.5', "'ha'", '"xen"', "'experimental'", "'a'", "''", "'\\''"]
const TOKENS = [
  ...PATHS,
  ...LITERALS,
  ' and ',
  ' or ',
  ' not ',
  ' in ',
  ' == ',
  ' != ',
  '(',
  ')',
  ':',
  '.',
  "'",
  '"',
  '=',
  '!',
  '\\',
]

/** Real expressions: every `condition:` and restriction string in the corpus YAML files. */
function corpusExpressions(): string[] {
  const out = new Set<string>()
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else if (name.endsWith('.yaml')) {
        for (const m of readFileSync(p, 'utf8').matchAll(
          /(?:condition|restrictions?)?:?\s*['"]?((?:settings|cluster|version|networking_parameters):[^'"\n]+)/g,
        ))
          out.add(m[1].trim())
      }
    }
  }
  walk(corpusDir())
  return [...out]
}

function generate(rng: Rng, depth: number): string {
  if (depth <= 0 || rng.chance(0.3)) return rng.chance(0.5) ? rng.pick(PATHS) : rng.pick(LITERALS)
  return rng.weighted<() => string>([
    [3, () => `${generate(rng, depth - 1)} ${rng.pick(['and', 'or', '==', '!=', 'in'])} ${generate(rng, depth - 1)}`],
    [1, () => `not ${generate(rng, depth - 1)}`],
    [2, () => `(${generate(rng, depth - 1)})`],
  ])()
}

function hostile(rng: Rng, corpus: string[]): string {
  return rng.weighted<() => string>([
    [4, () => generate(rng, rng.int(0, 5))],
    [4, () => mutateText(rng, rng.pick(corpus), TOKENS)],
    [2, () => mutateText(rng, generate(rng, 3), TOKENS)],
    [1, () => randomString(rng, 30)],
    // Deep nesting and long chains: recursion depth, not input size, is what breaks a recursive descent parser.
    // (Rare: each costs milliseconds; the seed's 10,000 cases hold a few dozen.)
    [0.05, () => '('.repeat(rng.int(100, 20000)) + 'a' + ')'.repeat(rng.int(0, 20000))],
    [0.05, () => 'not '.repeat(rng.int(100, 20000)) + 'true'],
    [
      0.05,
      () =>
        Array.from({ length: rng.int(100, 5000) }, () => rng.pick(PATHS)).join(
          rng.pick([' and ', ' or ', ' == ', ' in ']),
        ),
    ],
    [0.05, () => "'" + 'x'.repeat(rng.int(1000, 100000))],
  ])()
}

/** An error must be the language's own and point inside the expression (or just past its end). */
function checkError(e: unknown, src: string, what: string): string {
  if (e instanceof ExpressionSyntaxError || e instanceof ExpressionEvaluationError) {
    assert.ok(
      Number.isInteger(e.column) && e.column >= 1 && e.column <= src.length + 1,
      `${what}: column ${e.column} outside 1..${src.length + 1} for ${JSON.stringify(src.slice(0, 200))}`,
    )
    assert.match(e.message, /column \d+/, `${what}: the message names the column`)
    return e instanceof ExpressionSyntaxError ? 'syntax-error' : 'evaluation-error'
  }
  throw new Error(
    `${what} threw ${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? e} for ${JSON.stringify(src.slice(0, 200))}`,
  )
}

test('restriction expressions: 10,000 hostile expressions parse and evaluate or fail with a column', async () => {
  const corpus = corpusExpressions()
  assert.ok(corpus.length >= 10, `found ${corpus.length} corpus expressions`)
  const stats = await fuzz({
    name: 'restriction expressions',
    seed: 14,
    budgetMs: 1000,
    run: (rng) => {
      const src = hostile(rng, corpus)
      let expr: Expression
      try {
        expr = new Expression(src)
      } catch (e) {
        return checkError(e, src, 'parse')
      }
      // Parsing is deterministic: a reparse gives the same tree (compared for small trees only; deepEqual recurses).
      if (src.length < 500) assert.deepEqual(parseExpression(src), expr.ast)
      let outcome = 'evaluated'
      for (const strict of [true, false]) {
        try {
          assert.equal(typeof expr.evaluate(MODELS, { strict }), 'boolean')
          expr.paths()
        } catch (e) {
          outcome = checkError(e, src, strict ? 'strict evaluation' : 'non-strict evaluation')
        }
      }
      return outcome
    },
  })
  console.log(formatFuzzStats(stats))
  if (isFullRun(stats))
    assert.ok((stats.outcomes['evaluated'] ?? 0) > stats.cases / 20, 'a good share of the cases are valid expressions')
  if (isFullRun(stats))
    assert.ok((stats.outcomes['syntax-error'] ?? 0) > stats.cases / 20, 'a good share of the cases are rejected')
})

// Found by this fuzzer (seed 14, case 10 before the generator's weights changed): 20,000 nested "(" overflowed the
// parser's stack with a RangeError instead of a syntax error. Expressions are now bounded at MAX_TOKENS tokens.
test('restriction expressions: deep nesting and long chains are syntax errors with a column, not stack overflows', () => {
  for (const src of [
    '('.repeat(20000) + 'a' + ')'.repeat(20000),
    'not '.repeat(20000) + 'true',
    Array.from({ length: 20000 }, () => 'a').join(' and '),
  ]) {
    assert.throws(
      () => parseExpression(src),
      (e: unknown) =>
        e instanceof ExpressionSyntaxError &&
        /more than \d+ tokens/.test(e.reason) &&
        e.column > 1 &&
        e.column <= src.length,
    )
  }
  // Just under the bound still parses and evaluates.
  assert.equal(new Expression('('.repeat(499) + 'a' + ')'.repeat(499)).evaluate(MODELS), true)
  assert.equal(new Expression('not '.repeat(998) + 'true').evaluate(MODELS), true)
})
