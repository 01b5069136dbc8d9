/** A deployable environment whose nodes are this machine (local executor), for the deploy CLI tests. */
import { join } from 'node:path'
import { StateStore } from '../../src/state/store.js'
import { builtinReleases, releaseToJSON } from '../../src/releases/release.js'

/** A release with a tiny graph of shell tasks that leave marks, and an environment of two local nodes. */
export function seedLocalEnvironment(dataDir: string, dir: string, name = 'd1'): void {
  const state = StateStore.open({ dataDir })
  const task = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'shell',
    version: '2.0.0',
    groups: ['compute'],
    parameters: { cmd: `echo ${id} >> ${join(dir, 'marks')}; echo "output of ${id}"`, timeout: 60, retries: 0 },
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
  for (const n of ['cmp1', 'cmp2'])
    state.environments.addNode(name, { name: n, roles: ['compute'], data: { local: true } })
  state.close()
}
