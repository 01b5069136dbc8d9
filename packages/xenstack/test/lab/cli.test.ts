import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { requirePrerequisite } from '@xenstack/testkit'
import { StateStore } from '../../src/state/store.js'
import { isAlive } from '../../src/lab/sys.js'
import { storedStateText } from '../state/databases.js'
import { labPrerequisite } from '../node/helpers.js'

const execFileP = promisify(execFile)
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
const HOME = mkdtempSync('/tmp/xenstack-lab-cli-home-')
after(() => rmSync(HOME, { recursive: true, force: true }))
const xenstack = (...args: string[]) =>
  execFileP(process.execPath, [CLI, ...args], { timeout: 120000, env: { ...process.env, XENSTACK_HOME: HOME } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  )

test('xenstack lab up --json / status / exec / down', async (t) => {
  if (!(await labPrerequisite(t))) return
  const name = `c${process.pid.toString(36)}`
  try {
    const up = await xenstack('lab', 'up', '--name', name, '--hosts', '2', '--json')
    assert.equal(up.code, 0, up.stderr)
    const lines = up.stdout.trim().split('\n')
    assert.equal(lines.length, 1, 'exactly one JSON object')
    const out = JSON.parse(lines[0])
    assert.deepEqual(Object.keys(out).sort(), ['environment', 'hosts', 'name', 'simulator'])
    assert.equal(out.name, name)
    assert.deepEqual(Object.keys(out.simulator).sort(), ['password', 'url', 'username'])
    assert.deepEqual(
      out.hosts.map((h: any) => `${h.name}/${h.role}/${h.xapiHost}`),
      [
        'controller-1/controller/null',
        'storage/storage/null',
        'dom0-1/dom0/xs1',
        'compute-1/compute/xs1',
        'dom0-2/dom0/xs2',
        'compute-2/compute/xs2',
      ],
    )
    // the password is not in any file of the lab
    const grep = await execFileP('grep', ['-rl', out.simulator.password, `/tmp/xenstack-labs/${name}`]).catch(
      (e: { code: number }) => ({ stdout: '', code: e.code }),
    )
    assert.equal(grep.stdout, '', 'simulator password written to a lab file')

    // registered as an environment: nodes with roles, the pool's password encrypted at rest
    assert.equal(out.environment, name)
    const store = StateStore.open({ dataDir: HOME })
    try {
      const nodes = store.environments.nodes(name).map((n) => `${n.name}:${n.roles.join(',')}`)
      assert.deepEqual(nodes, [
        'compute-1:compute',
        'compute-2:compute',
        'controller-1:primary-controller',
        'storage:cinder',
      ])
      assert.equal(store.pools.get(name)!.url, out.simulator.url)
      assert.equal(store.pools.get(name, { reveal: true })!.password, out.simulator.password)
      assert.ok(store.environments.nodes(name).every((n) => n.data.pool === name))
    } finally {
      store.close()
    }
    assert.equal(storedStateText(HOME).includes(out.simulator.password), false, 'password in clear in the state')

    // the simulator answers with the printed credentials
    const login = await fetch(`${out.simulator.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.login_with_password',
        params: [out.simulator.username, out.simulator.password, '1.0', 'cli-test'],
      }),
    }).then((r) => r.json() as Promise<{ result?: string }>)
    assert.match(String(login.result), /^OpaqueRef:/)

    // ssh with exactly what was printed: key, known_hosts, strict host key checking
    const c2 = out.hosts.find((h: any) => h.name === 'compute-2')
    const ssh = await execFileP('ssh', [
      '-F',
      '/dev/null',
      '-i',
      c2.ssh.identityFile,
      '-o',
      `UserKnownHostsFile=${c2.ssh.knownHostsFile}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-p',
      String(c2.ssh.port),
      `${c2.ssh.user}@${c2.ssh.host}`,
      'hostname; ip -o -4 addr show eth0',
    ])
    assert.match(ssh.stdout, /^compute-2\n/)
    assert.ok(ssh.stdout.includes(c2.addresses.management))

    const status = await xenstack('lab', 'status', '--name', name, '--json')
    assert.equal(status.code, 0, status.stderr)
    const st = JSON.parse(status.stdout)
    assert.equal(st.supervisor.running, true)
    assert.equal(st.simulator.url, out.simulator.url)
    assert.ok(st.hosts.every((h: any) => h.running))

    const ex = await xenstack('lab', 'exec', '--name', name, 'dom0-2', '--', 'sh', '-c', 'hostname; exit 3')
    assert.equal(ex.code, 3)
    assert.equal(ex.stdout.trim(), 'dom0-2')

    // xenstore in the guest is served by the supervisor
    const xs = await xenstack('lab', 'exec', '--name', name, 'compute-1', '--', 'xenstore-read', 'name')
    assert.equal(xs.stdout.trim(), 'compute-1')

    const down = await xenstack('lab', 'down', '--name', name)
    assert.equal(down.code, 0, down.stderr)
    assert.equal(existsSync(`/tmp/xenstack-labs/${name}`), false)
    assert.equal(existsSync(`/run/netns/xsl-${name}-dom0-1`), false)
    assert.equal(isAlive(st.supervisor.pid), false, 'the supervisor survived lab down')
    const store2 = StateStore.open({ dataDir: HOME })
    try {
      assert.equal(store2.environments.get(name), undefined, 'lab down removes its environment')
    } finally {
      store2.close()
    }
    const again = await xenstack('lab', 'status', '--name', name)
    assert.equal(again.code, 3)
  } finally {
    await xenstack('lab', 'down', '--name', name)
  }
})

test('xenstack lab up rejects a bad environment file with the file and field', async () => {
  const { writeFileSync, mkdtempSync, rmSync } = await import('node:fs')
  const dir = mkdtempSync('/tmp/lab-env-')
  try {
    writeFileSync(`${dir}/env.yaml`, 'lab:\n  networks:\n    management: { cidr: 10.0.0.1/22 }\n')
    const r = await xenstack('lab', 'up', '--name', 'never', '--env', `${dir}/env.yaml`)
    assert.equal(r.code, 5)
    assert.match(r.stderr, /env\.yaml: .*10\.0\.0\.1\/22.*host bits/)
    writeFileSync(`${dir}/env.yaml`, 'hosts: two\n')
    const r2 = await xenstack('lab', 'up', '--name', 'never', '--env', `${dir}/env.yaml`)
    assert.equal(r2.code, 5)
    assert.match(r2.stderr, /env\.yaml: hosts: expected a whole number/)
    assert.equal(existsSync('/tmp/xenstack-labs/never'), false)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('without root, lab up stops with one line naming what is missing', async (t) => {
  if (!requirePrerequisite(t, 'root (to drop to an unprivileged user)', () => process.getuid?.() === 0)) return
  if (!requirePrerequisite(t, 'setpriv (util-linux)', () => existsSync('/usr/bin/setpriv'))) return
  const r = await execFileP(
    '/usr/bin/setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'lab', 'up', '--name', 'nonroot'],
    { env: { ...process.env, XENSTACK_HOME: HOME }, timeout: 60000 },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  )
  assert.equal(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0], /^xenstack: the lab needs root/)
})
