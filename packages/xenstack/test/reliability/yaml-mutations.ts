// Shared by the plugin YAML and environment file fuzzers: YAML tokens, the corpus plugins, a YAML mutator.
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { mutateStructure, mutateText, randomValue, type Rng } from '@xenstack/testkit'
import { readPluginDir, type PluginFiles } from '../../src/plugins/loader.js'
import { corpusDir } from '../plugins/corpus.js'

export const YAML_TOKENS = [
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
export function corpusPlugins(): { dir: string; files: PluginFiles }[] {
  const root = corpusDir()
  const dirs = [
    ...['6.1', '7.0', '8.0', '9.0', 'master'].map((v) => join(root, 'fuel-plugin-xenserver', v)),
    ...['v1', 'v2', 'v3', 'v4', 'v5'].map((v) => join(root, 'fuel-plugins-examples', `fuel_plugin_example_${v}`)),
  ]
  return dirs.map((dir) => ({ dir, files: readPluginDir(dir) }))
}

export function mutatedYaml(rng: Rng, text: string): string {
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
