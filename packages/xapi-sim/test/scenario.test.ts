import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseScenario, defaultScenario, generatedScenario, ScenarioError, parseSize } from '../src/scenario.js'

const GOOD = `
name: lab
pools:
  - name: old
    version: 6.5.0
    hosts:
      - name: a
        address: 127.0.0.1
      - b
    srs:
      - { name: Local storage, type: ext, size: 100GiB }
      - { name: ISOs, type: iso, size: 1GiB }
    networks:
      - name: Management
        bridge: xenbr0
        pifs:
          - { host: a, device: eth0, ip: 10.0.0.1, netmask: 255.255.255.0, management: true }
          - { host: b, device: eth0, ip: 10.0.0.2, netmask: 255.255.255.0, management: true }
    vms:
      - { name: web, host: a, power_state: Running, memory: 2GiB, disks: [20GiB], networks: [Management] }
    patches:
      - { name: XS65ESP1013, applied: [a] }
    plugins:
      - { name: dom0_plugin_version.py, source: "print(1)" }
faults:
  - { kind: SESSION_INVALID, method: VM.start, every: 2 }
`

test('parses a scenario and fills the defaults', () => {
  const s = parseScenario(GOOD, 'lab.yaml')
  const p = s.pools[0]
  assert.equal(p.version, '6.5.0')
  assert.equal(p.platform_version, '1.9.0')
  assert.deepEqual(
    p.hosts.map((h) => h.name),
    ['a', 'b'],
  )
  assert.equal(p.srs[0].size, 100 * 1024 ** 3)
  assert.equal(p.srs[0].default, true)
  assert.equal(p.vms[0].memory, 2 * 1024 ** 3)
  assert.equal(p.vms[0].disks[0].size, 20 * 1024 ** 3)
  assert.deepEqual(p.patches[0], { name: 'XS65ESP1013', version: '1.0', applied: ['a'] })
  assert.equal(p.compute_vm_per_host, true)
  assert.equal(s.faults[0].every, 2)
})

test('errors name the file, the line and the field, and say what was expected', () => {
  const bad = GOOD.replace('power_state: Running', 'power_state: Exploded')
  assert.throws(
    () => parseScenario(bad, 'lab.yaml'),
    (e: unknown) => {
      assert.ok(e instanceof ScenarioError)
      assert.equal(
        e.message,
        'lab.yaml:20: pools[0].vms[0].power_state: expected one of Halted, Running, Paused, Suspended, got "Exploded"',
      )
      return true
    },
  )
  assert.throws(
    () => parseScenario(GOOD.replace('host: a, power_state', 'host: z, power_state'), 'lab.yaml'),
    /^ScenarioError: lab\.yaml:20: pools\[0\]\.vms\[0\]\.host: expected one of this pool's hosts \(a, b\), got z$/,
  )
  assert.throws(
    () => parseScenario(GOOD.replace('size: 100GiB', 'size: lots'), 'lab.yaml'),
    /lab\.yaml:11: pools\[0\]\.srs\[0\]\.size: expected a size such as 20GiB/,
  )
  assert.throws(
    () => parseScenario(GOOD.replace('    version: 6.5.0', '    versoin: 6.5.0'), 'lab.yaml'),
    /lab\.yaml:5: pools\[0\]\.versoin: unknown field/,
  )
  assert.throws(
    () => parseScenario(GOOD.replace('every: 2', 'every: 0'), 'lab.yaml'),
    /lab\.yaml:26: faults\[0\]\.every: expected an integer ≥ 1, got 0/,
  )
  assert.throws(() => parseScenario('pools: [\n', 'broken.yaml'), /^ScenarioError: broken\.yaml:\d+: \(yaml\): /)
  assert.throws(
    () => parseScenario('pools:\n  - version: 9.9.9\n    hosts: [x]\n', 'v.yaml'),
    /v\.yaml:2: pools\[0\]\.platform_version: required for version 9\.9\.9/,
  )
})

test('built-ins: default is a 2-host 7.1 pool with compute VMs; generated spreads VMs over hosts', () => {
  const d = defaultScenario()
  assert.equal(d.pools[0].hosts.length, 2)
  assert.equal(d.pools[0].version, '7.1.0')
  assert.equal(d.pools[0].platform_version, '2.2.0')
  assert.equal(d.pools[0].compute_vm_per_host, true)
  const g = generatedScenario(3, 7)
  assert.deepEqual(
    g.pools[0].vms.map((v) => v.host),
    ['host1', 'host2', 'host3', 'host1', 'host2', 'host3', 'host1'],
  )
  assert.throws(() => generatedScenario(0, 1), /--hosts: hosts: expected an integer ≥ 1/)
  assert.equal(parseSize('1.5GiB'), 1.5 * 1024 ** 3)
  assert.equal(parseSize('12 parsecs'), undefined)
})
