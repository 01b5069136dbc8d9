import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { Lab } from '../../src/lab/index.js'
import { labPrerequisite, sshWithLabConfig } from '../node/helpers.js'

test('two labs run at once without interfering', async (t) => {
  if (!(await labPrerequisite(t))) return
  // same internal addresses on purpose: only the namespaces keep them apart
  const env = { hosts: 1, simulator: true, networks: { management: { cidr: '10.77.0.0/23' } } }
  const [a, b] = await Promise.all([Lab.up(env), Lab.up(env)])
  try {
    assert.notEqual(a.name, b.name)
    assert.notEqual(a.slot, b.slot, 'each lab has its own admin range')
    assert.notEqual(a.simulator!.url, b.simulator!.url)
    assert.equal(a.host('controller-1').addresses.management, b.host('controller-1').addresses.management)

    // each ssh endpoint leads to its own lab's host, with its own host keys
    assert.equal((await sshWithLabConfig(a, 'dom0-1', 'echo a > /etc/xapi.d/plugins/mark; hostname')).trim(), 'dom0-1')
    assert.equal(
      (await sshWithLabConfig(b, 'dom0-1', 'test -e /etc/xapi.d/plugins/mark && echo leaked || echo clean')).trim(),
      'clean',
    )
    assert.equal(existsSync(b.backingPath('dom0-1', '/etc/xapi.d/plugins/mark')), false)
    assert.notEqual(readFileSync(a.knownHostsFile, 'utf8'), readFileSync(b.knownHostsFile, 'utf8'))

    // the same management address answers in each lab with that lab's controller; the probe logs stay apart
    const ra = await a.execOk('compute-1', ['curl', '-sS', '--max-time', '3', a.httpProbeUrl()])
    assert.equal(JSON.parse(ra.stdout).host, 'controller-1')
    assert.ok(readFileSync(`${a.hostDir('controller-1')}/log/http-probe.log`, 'utf8').includes('"client"'))
    assert.equal(readFileSync(`${b.hostDir('controller-1')}/log/http-probe.log`, 'utf8').includes('"client"'), false)

    // a NIC hot-plugged in one lab does not appear in the other
    await a.attachGuestInterface('compute-1', 7, '02:16:3e:77:00:07', 'xenapi')
    assert.equal((await a.exec('compute-1', ['ip', 'link', 'show', 'eth7'])).code, 0)
    assert.equal((await b.exec('compute-1', ['ip', 'link', 'show', 'eth7'])).code, 1)

    // taking one down leaves the other working
    await a.down()
    assert.equal(existsSync(`/run/netns/xsl-${a.name}-dom0-1`), false)
    assert.equal((await sshWithLabConfig(b, 'compute-1', 'hostname')).trim(), 'compute-1')
    const rb = await b.execOk('compute-1', ['curl', '-sS', '--max-time', '3', b.httpProbeUrl()])
    assert.equal(JSON.parse(rb.stdout).host, 'controller-1')
  } finally {
    await Promise.all([a.down(), b.down()])
  }
})
