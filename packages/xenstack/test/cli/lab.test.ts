/**
 * The CLI against a real node: an environment whose node is a lab host reached over SSH (host key verified).
 * Needs the lab (root, namespaces): skipped locally without it, failing in CI.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { withLab } from '../../src/lab/index.js'
import { labPrerequisite } from '../node/helpers.js'
import { seedLocalEnvironment } from './fixtures.js'
import { runCli } from './run.js'

const scratch = scratchDirs()

test('deploy on a lab host through the CLI: dry run changes nothing, deploy runs each task once, redeploy nothing', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab({ hosts: 1, controllers: 0, storageNode: false, httpProbePort: false }, async (lab) => {
    const dir = scratch('xenstack-cli-lab-')
    const dataDir = join(dir, 'data')
    const marks = '/root/xenstack-cli-marks'
    seedLocalEnvironment(dataDir, dir, 'onlab', { marks, nodes: { 'compute-1': { ssh: lab.host('compute-1').ssh } } })
    const cli = (args: string[]) => runCli([...args, '--data-dir', dataDir])
    const onHost = async () => (await lab.exec('compute-1', ['sh', '-c', `cat ${marks} 2>/dev/null || true`])).stdout

    const dry = await cli(['deploy', 'onlab', '--dry-run', '--json'])
    assert.equal(dry.code, 0, dry.stderr)
    const plan = JSON.parse(dry.stdout)
    assert.equal(plan.dryRun, true)
    assert.deepEqual(
      plan.nodes.map((n: { name: string }) => n.name),
      ['compute-1'],
    )
    assert.equal(await onHost(), '', 'a dry run leaves nothing on the host')

    const first = await cli(['deploy', 'onlab', '--json'])
    assert.equal(first.code, 0, first.stderr)
    const s = JSON.parse(first.stdout)
    assert.equal(s.status, 'ready')
    assert.deepEqual(s.nodes, [{ name: 'compute-1', status: 'ready' }])
    assert.equal(await onHost(), 'one\ntwo\n')

    const again = await cli(['deploy', 'onlab', '--json'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(await onHost(), 'one\ntwo\n', 'a second deploy runs nothing')
    const logs = JSON.parse(
      (await cli(['deploy', 'logs', 'onlab', '--deployment', String(s.deployment), '--json'])).stdout,
    )
    const one = logs.tasks.find((x: { task: string }) => x.task === 'one')
    assert.deepEqual(one.output, ['output of one'])
  })
})
