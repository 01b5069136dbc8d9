/**
 * `xenstack devstack install` on the lab: the simulator wired to the lab is the pool, the lab's dom0 host is dom0
 * (real sshd, host key pinned in the lab's known_hosts) and the lab's compute-1 namespace host stands in for the
 * DomU's operating system (`--domu-ssh`; the DomU's VM record is the simulator's, which has no guest to boot).
 *
 * From nothing (the mirror is a local HTTP stub, the test powers the installer VM off as the netinstall would):
 * preseed written on dom0's web root, template, DomU with three interfaces, users stack/domzero on the DomU, domzero's
 * key authorized on dom0 — proven by a real SSH login with it — and dom0's host key pinned for domzero, local.conf
 * rendered with the given options and overrides, run.sh and devstack.service installed. A second run and a dry run
 * change nothing. Waiting and tempest fail clearly (no systemd in a lab host, devstack never ran), and an
 * unreachable devstack source stops the run naming the URL.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { connect } from '@xenstack/xenapi'
import { withLab } from '../../src/lab/index.js'
import { PRESEED_DOM0_PATH, servicePassword } from '../../src/prep/devstack/index.js'
import { runCli } from '../cli/run.js'
import { labPrerequisite } from '../node/helpers.js'
import { playingNetinstall, withUnpinnedKnownHosts } from './helpers.js'

const scratch = scratchDirs()

test('devstack install on the lab: converges from nothing, second run and dry run change nothing, clear failures', async (t) => {
  if (!(await labPrerequisite(t))) return
  const stub = createServer((req, res) => {
    if (['/ubuntu/dists/xenial/Release', '/devstack', '/os-xenapi'].includes(req.url ?? '')) return void res.end('ok\n')
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r))
  const stubUrl = `http://127.0.0.1:${(stub.address() as { port: number }).port}`
  try {
    await withLab({ hosts: 1, storageNode: false, simulator: true }, async (lab) => {
      const s = lab.simulator!
      const dom0 = lab.host('dom0-1')
      const domu = lab.host('compute-1')
      const dataDir = scratch('xenstack-devstack-lab-')
      const overrides = join(dataDir, 'overrides.conf')
      writeFileSync(
        overrides,
        '[[local|localrc]]\nVLAN_INTERFACE=eth3\nEXTRA_FLAG=1\n[[post-config|$NEUTRON_CONF]]\n[DEFAULT]\ndebug = True\n',
      )
      const env = { XENSTACK_XAPI_PASSWORD: s.password, XENSTACK_POOL: undefined, XENSTACK_PROBE_TIMEOUT_MS: '3000' }
      const args = [
        'devstack',
        'install',
        dom0.ssh.host,
        '--url',
        s.url,
        '--username',
        s.username,
        '--data-dir',
        dataDir,
        '--ssh-key',
        dom0.ssh.identityFile,
        '--known-hosts',
        dom0.ssh.knownHostsFile,
        '--dom0-ssh',
        `${dom0.ssh.user}@${dom0.ssh.host}:${dom0.ssh.port}`,
        '--domu-ssh',
        `${domu.ssh.user}@${domu.ssh.host}:${domu.ssh.port}`,
        '--mirror',
        `${stubUrl}/ubuntu`,
        '--devstack-url',
        `${stubUrl}/devstack`,
        '--os-xenapi-url',
        `${stubUrl}/os-xenapi`,
        '--branch',
        'stable/queens',
        '--local-conf',
        overrides,
        '--disk',
        '1',
        '--no-wait',
        '--json',
      ]
      const xapi = await connect({ url: s.url, username: s.username, password: s.password })
      try {
        // dom0's host key not pinned: refused before anything changes (no trust on first use)
        const unpinned = withUnpinnedKnownHosts(args, dom0.ssh.knownHostsFile, scratch('xenstack-devstack-kh-'))
        const refused = await runCli(unpinned.args, env)
        assert.equal(refused.code, 1, refused.stderr)
        assert.match(refused.stderr, /prerequisites: dom0 .* over SSH: .*not pinned/)
        assert.deepEqual(await xapi.call('network.get_by_name_label', 'OpenStack VM Network'), [], 'nothing created')

        // the netinstall: the installer VM runs, then powers itself off
        const { result: first } = await playingNetinstall(xapi, 180_000, () => runCli(args, env))
        assert.equal(first.code, 0, first.stderr + first.stdout)
        assert.ok(!(first.stdout + first.stderr).includes(s.password), 'the XAPI password is never printed')
        assert.ok(
          !(first.stdout + first.stderr).includes(servicePassword(s.password, dom0.ssh.host, {})),
          'nor the service password',
        )
        const out = JSON.parse(first.stdout)
        const state = (o: any, id: string) => o.steps.find((x: { id: string }) => x.id === id)?.state
        for (const id of ['networks', 'template', 'domu', 'dom0-keys', 'devstack-files'])
          assert.equal(state(out, id), 'changed', id)
        assert.match(JSON.stringify(out.steps), /no systemd runs on the DomU/)

        // preseed on dom0's web root; the installer was pointed at it
        const preseed = (await lab.execOk('dom0-1', ['cat', PRESEED_DOM0_PATH])).stdout
        assert.match(preseed, /^d-i mirror\/suite string xenial$/m)

        // local.conf: the sample's settings, the given options, the overrides; owned by stack, 0600
        const conf = (await lab.execOk('compute-1', ['cat', '/opt/stack/local.conf'])).stdout
        const service = servicePassword(s.password, dom0.ssh.host, {})
        for (const line of [
          'VIRT_DRIVER=xenserver',
          `XENAPI_CONNECTION_URL=http://${dom0.ssh.host}`,
          `VNCSERVER_PROXYCLIENT_ADDRESS=${dom0.ssh.host}`,
          `XENAPI_PASSWORD=${s.password}`,
          `ADMIN_PASSWORD=${service}`,
          'Q_ML2_PLUGIN_MECHANISM_DRIVERS=openvswitch',
          'Q_ML2_PLUGIN_TYPE_DRIVERS=vxlan,flat',
          'Q_ML2_TENANT_NETWORK_TYPE=vxlan',
          'VLAN_INTERFACE=eth3',
          'PUBLIC_INTERFACE=eth2',
          'EXTRA_FLAG=1',
          'LOGFILE=/opt/stack/devstack_logs/stack.log',
          'ENABLED_SERVICES+=,neutron,q-domua',
          `enable_plugin os-xenapi ${stubUrl}/os-xenapi stable/queens`,
          '[[post-config|$NEUTRON_CONF]]',
          'debug = True',
        ])
          assert.ok(conf.split('\n').includes(line), `local.conf has ${line}:\n${conf}`)
        assert.ok(!conf.includes('VLAN_INTERFACE=eth1'), 'the override replaced the sample value')
        assert.equal(
          (await lab.execOk('compute-1', ['stat', '-c', '%a %U', '/opt/stack/local.conf'])).stdout.trim(),
          '600 stack',
        )
        const runSh = (await lab.execOk('compute-1', ['cat', '/opt/stack/run.sh'])).stdout
        assert.match(runSh, new RegExp(`git clone --branch stable/queens ${stubUrl}/devstack devstack`))
        assert.equal(
          (await lab.execOk('compute-1', ['stat', '-c', '%a %U', '/opt/stack/run.sh'])).stdout.trim(),
          '755 stack',
        )
        assert.match(
          (await lab.execOk('compute-1', ['cat', '/etc/systemd/system/devstack.service'])).stdout,
          /ExecStart=\/opt\/stack\/run\.sh/,
        )

        // the key exchange: dom0 pinned for domzero; domzero's key really logs in to dom0
        const kh = (await lab.execOk('compute-1', ['cat', '/home/domzero/.ssh/known_hosts'])).stdout
        assert.ok(kh.includes(dom0.ssh.host), kh)
        const key = join(scratch('xenstack-devstack-key-'), 'domzero')
        writeFileSync(key, (await lab.execOk('compute-1', ['cat', '/home/domzero/.ssh/id_rsa'])).stdout, {
          mode: 0o600,
        })
        const login = execFileSync(
          'ssh',
          [
            '-i',
            key,
            '-p',
            String(dom0.ssh.port),
            '-o',
            'BatchMode=yes',
            '-o',
            `UserKnownHostsFile=${dom0.ssh.knownHostsFile}`,
            '-o',
            'StrictHostKeyChecking=yes',
            `root@${dom0.ssh.host}`,
            'echo dom0-ok',
          ],
          { encoding: 'utf8', timeout: 60_000 },
        )
        assert.equal(login.trim(), 'dom0-ok')

        // the DomU in XAPI: three interfaces, running
        const d = (await xapi.call(
          'VM.get_record',
          ((await xapi.call('VM.get_by_name_label', 'DevStackOSDomU')) as string[])[0],
        )) as any
        assert.equal(d.power_state, 'Running')
        assert.equal(d.VIFs.length, 3)

        // second run and dry run: nothing to do
        for (const extra of [[], ['--dry-run']]) {
          const again = await runCli([...args, ...extra], env)
          assert.equal(again.code, 0, again.stderr)
          const o = JSON.parse(again.stdout)
          assert.equal(o.changed, false, JSON.stringify(o.steps.filter((x: any) => x.changes.length)))
        }

        // waiting cannot work where devstack.service cannot run; tempest needs a devstack that ran
        const wait = await runCli(
          args.filter((a) => a !== '--no-wait'),
          env,
        )
        assert.equal(wait.code, 1)
        assert.match(wait.stderr, /wait: cannot wait for devstack on DomU DevStackOSDomU: no systemd runs there/)
        const smoke = await runCli([...args, '--test-type', 'smoke'], env)
        assert.equal(smoke.code, 1)
        assert.match(
          smoke.stderr,
          /tempest \(smoke\) needs a completed devstack on DomU DevStackOSDomU .*it would run: su -s \/bin\/sh stack -c 'cd \/opt\/stack\/tempest && tox -esmoke'/,
        )
        const dead = args.map((a) => (a === `${stubUrl}/devstack` ? 'http://127.0.0.1:9/devstack' : a))
        const unreachable = await runCli([...dead, '--test-type', 'smoke'], env)
        assert.equal(unreachable.code, 4)
        assert.match(
          unreachable.stderr,
          /devstack-source: the devstack source http:\/\/127\.0\.0\.1:9\/devstack is unreachable from this machine/,
        )
      } finally {
        await xapi.close().catch(() => undefined)
      }
    })
  } finally {
    await new Promise((r) => stub.close(r))
  }
})
