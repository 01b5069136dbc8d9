// Hostile input: plugin YAML files, in-process. Each case takes a real plugin from the Fuel corpus and replaces one
// of its YAML files by a mutated one (text edits with YAML indicators, or a structure edit re-serialised). Every case
// either loads or reports issues that name the file, a line and the field; the loader never throws.
// FUZZ_SEED / FUZZ_CASES / FUZZ_CASE replay or scale (docs/reliability.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fuzz, formatFuzzStats, isFullRun } from '@xenstack/testkit'
import { loadPluginFiles, type PluginFiles } from '../../src/plugins/loader.js'
import { XENSERVER_DEFINES } from '../plugins/corpus.js'
import { corpusPlugins, mutatedYaml } from './yaml-mutations.js'

test('plugin YAML: mutated corpus plugins load or name file, line and field', async () => {
  const plugins = corpusPlugins()
  const stats = await fuzz({
    name: 'plugin YAML files',
    seed: 14,
    // The loader takes 4–20 ms per plugin (schemas, graph, restrictions over every file), so CI runs 1,000
    // cases (~10 s of CPU); FUZZ_CASES=10000 runs the full set (docs/reliability.md has its figures).
    cases: 1000,
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
  if (isFullRun(stats)) assert.ok((stats.outcomes['rejected'] ?? 0) > stats.cases / 2)
  if (isFullRun(stats)) assert.ok((stats.outcomes['loaded'] ?? 0) > stats.cases / 50)
})

// Found by this fuzzer (seed 14, case 14) and the environment file fuzzer, kept as regression cases.
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
