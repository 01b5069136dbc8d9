/** A deployable environment whose nodes are this machine (local executor), for the deploy CLI tests. */
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { builtinReleases, releaseToJSON } from '../../src/releases/release.js'

/**
 * A release with a tiny graph of shell tasks that append their id to `marks` (default `<dir>/marks`), and an
 * environment of two local nodes (or the `nodes` given, by name → node data, e.g. a lab host's `ssh`).
 */
export function seedLocalEnvironment(
  dataDir: string,
  dir: string,
  name = 'd1',
  opts: { marks?: string; nodes?: Record<string, Record<string, unknown>> } = {},
): void {
  const marks = opts.marks ?? join(dir, 'marks')
  const state = StateStore.open({ dataDir })
  const task = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'shell',
    version: '2.0.0',
    groups: ['compute'],
    parameters: { cmd: `echo ${id} >> ${marks}; echo "output of ${id}"`, timeout: 60, retries: 0 },
    ...extra,
  })
  const base = releaseToJSON(builtinReleases()[0])
  state.releases.upsert({
    name: 'cli-test',
    version: 'cli-test-1',
    operatingSystem: 'ubuntu',
    source: 'test',
    data: {
      ...base,
      name: 'cli-test',
      version: 'cli-test-1',
      tasks: [
        { id: 'deploy_start', type: 'stage' },
        { id: 'deploy_end', type: 'stage', requires: ['deploy_start'] },
        {
          id: 'compute',
          type: 'group',
          roles: ['compute'],
          requires: ['deploy_start'],
          required_for: ['deploy_end'],
          parameters: { strategy: { type: 'parallel' } },
        },
        task('one'),
        task('two', { requires: ['one'] }),
        task('breaks', {
          requires: ['two'],
          condition: "settings:common.flavor.value == 'broken'",
          parameters: { cmd: 'echo "about to fail"; exit 3', retries: 0 },
        }),
      ],
    },
  })
  state.environments.create({
    name,
    release: 'cli-test',
    settings: { common: { flavor: { type: 'text', value: 'ok' } } },
  })
  const nodes = opts.nodes ?? { cmp1: { local: true }, cmp2: { local: true } }
  for (const [n, data] of Object.entries(nodes)) state.environments.addNode(name, { name: n, roles: ['compute'], data })
  state.close()
}
