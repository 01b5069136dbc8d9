import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, readlinkSync } from 'node:fs'
import { Lab, withLab, registerLabServiceKind } from '../../src/lab/index.js'
import { machineSnapshot, compareSnapshots } from '../../src/lab/snapshot.js'
import { run, waitFor } from '../../src/lab/sys.js'
import { labPrerequisite, sshWithLabConfig } from '../node/helpers.js'

test('bring-up and teardown leave the machine unchanged; hosts are isolated and reachable by ssh and exec', async (t) => {
  if (!(await labPrerequisite(t))) return
  const before = await machineSnapshot()
  let lab!: Lab
  const pids: number[] = []
  await withLab(
    {
      hosts: 1,
      simulator: true,
      networks: { management: { cidr: '10.40.0.0/22' }, storage: { cidr: '10.40.8.0/26' } },
    },
    async (l) => {
      lab = l
      assert.deepEqual(
        lab.hosts.map((h) => `${h.name}:${h.role}`),
        ['controller-1:controller', 'storage:storage', 'dom0-1:dom0', 'compute-1:compute'],
      )
      // own UTS namespace and addresses from the environment's CIDRs (not /24s)
      for (const h of lab.hosts) {
        const r = await lab.execOk(h.name, ['hostname'])
        assert.equal(r.stdout.trim(), h.name)
      }
      assert.equal(lab.host('controller-1').addresses.management, '10.40.0.2/22')
      assert.equal(lab.host('compute-1').addresses.management, '10.40.0.3/22')
      assert.equal(lab.host('compute-1').addresses.storage, '10.40.8.3/26')
      const addr = await lab.execOk('compute-1', ['ip', '-o', '-4', 'addr', 'show', 'eth0'])
      assert.match(addr.stdout, /inet 10\.40\.0\.3\/22/)
      // no link-local address in the guest before its HIMN NIC is plugged (HIMN detection looks for one)
      const guest = await lab.execOk('compute-1', ['ip', '-o', '-4', 'addr', 'show'])
      assert.doesNotMatch(guest.stdout, /inet 169\.254\./)
      // dom0: HIMN bridge with 169.254.0.1/16, management and storage bridges without addresses
      const br = await lab.execOk('dom0-1', ['ip', '-o', '-4', 'addr', 'show'])
      assert.match(br.stdout, /xenapi\s+inet 169\.254\.0\.1\/16/)
      assert.doesNotMatch(br.stdout, /xenbr[01]\s+inet /)
      // compute forwards nothing by default
      const fwd = await lab.execOk('compute-1', ['iptables', '-S', 'FORWARD'])
      assert.match(fwd.stdout, /^-P FORWARD DROP$/m)
      // writes to /etc, /root and /var land in the host's backing dir and nowhere else
      await lab.execOk('compute-1', [
        'sh',
        '-c',
        'mkdir -p /etc/nova && echo a > /etc/nova/lab.conf && echo b > /root/lab.txt && echo c > /var/lab.txt && mkdir -p /boot/guest',
      ])
      assert.equal(readFileSync(lab.backingPath('compute-1', '/etc/nova/lab.conf'), 'utf8'), 'a\n')
      assert.equal(readFileSync(lab.backingPath('compute-1', '/root/lab.txt'), 'utf8'), 'b\n')
      assert.equal(readFileSync(lab.backingPath('compute-1', '/var/lab.txt'), 'utf8'), 'c\n')
      assert.equal(existsSync('/etc/nova/lab.conf'), false)
      assert.ok(existsSync(lab.backingPath('compute-1', '/boot/guest')))
      assert.equal(existsSync('/boot/guest'), false)
      assert.equal((await lab.exec('dom0-1', ['test', '-e', '/etc/nova/lab.conf'])).code, 1)
      // each host has a private root: a new top-level path (XenServer's /images), cron's spool and modprobe.d land
      // in its backing dir; /tmp is its own (not the machine's, not another host's); the lab's admin key is hidden
      await lab.execOk('dom0-1', [
        'sh',
        '-c',
        'ln -s /var/run/sr-mount/x/images /images && mkdir -p /etc/modprobe.d && : > /etc/modprobe.d/lab.conf && ' +
          'echo "7 * * * * true" | crontab - && echo t > /tmp/lab-private',
      ])
      assert.equal(readlinkSync(lab.backingPath('dom0-1', '/images')), '/var/run/sr-mount/x/images')
      assert.equal(existsSync('/images'), false)
      assert.ok(existsSync(lab.backingPath('dom0-1', '/etc/modprobe.d/lab.conf')))
      assert.match(
        readFileSync(lab.backingPath('dom0-1', '/var/spool/cron/crontabs/root'), 'utf8'),
        /^7 \* \* \* \* true$/m,
      )
      assert.equal(existsSync('/tmp/lab-private'), false)
      assert.equal((await lab.exec('compute-1', ['test', '-e', '/tmp/lab-private'])).code, 1)
      assert.equal((await lab.exec('dom0-1', ['test', '-e', lab.identityFile])).code, 1)
      assert.throws(() => lab.backingPath('dom0-1', '/tmp/lab-private'), /on the host's own \/tmp/)
      // dom0's local SR is mounted where XenServer mounts it, under the simulator's SR uuid
      const sim = lab.simulator!.sim
      const pool = [...sim.db.all('pool')][0][1]
      const srUuid = String(sim.db.get(String(pool.default_SR))!.uuid)
      const srPath = `/var/run/sr-mount/${srUuid}`
      assert.equal((await lab.exec('dom0-1', ['mountpoint', '-q', srPath])).code, 0, `${srPath} is a mount point`)
      await lab.execOk('dom0-1', ['sh', '-c', `mkdir ${srPath}/images && echo v > ${srPath}/images/disk.vhd`])
      assert.equal(readFileSync(lab.backingPath('dom0-1', `${srPath}/images/disk.vhd`), 'utf8'), 'v\n')
      // ssh by key with xenstack's own known_hosts (StrictHostKeyChecking yes), for every host
      for (const h of lab.hosts) {
        const out = await sshWithLabConfig(lab, h.name, 'hostname; echo x > /root/ssh.txt')
        assert.equal(out.trim(), h.name)
        assert.equal(readFileSync(lab.backingPath(h.name, '/root/ssh.txt'), 'utf8'), 'x\n')
      }
      const known = readFileSync(lab.host('dom0-1').ssh.knownHostsFile, 'utf8')
      assert.match(known, new RegExp(`^${lab.host('dom0-1').ssh.host.replace(/\./g, '\\.')} ssh-ed25519 `, 'm'))
      // a plugin file written over ssh lands in dom0's backing /etc/xapi.d/plugins
      await sshWithLabConfig(
        lab,
        'dom0-1',
        'printf "#!/bin/sh\\n" > /etc/xapi.d/plugins/echo && chmod 755 /etc/xapi.d/plugins/echo',
      )
      assert.ok(existsSync(lab.backingPath('dom0-1', '/etc/xapi.d/plugins/echo')))
      for (const h of lab.hosts) {
        const r = await run(['ip', 'netns', 'pids', h.netns])
        pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number))
      }
      assert.ok(pids.length >= lab.hosts.length * 2, 'holders and sshds are running in the lab namespaces')
    },
  )
  const after = await machineSnapshot()
  assert.deepEqual(compareSnapshots(before, after, lab), [])
  assert.equal(existsSync(lab.dir), false, 'the lab dir is removed')
  const alive = pids.filter(
    (p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z '),
  )
  assert.deepEqual(alive, [], 'no lab process survives teardown')
})

test('up cleans a stale lab of the same name left by a crash', async (t) => {
  if (!(await labPrerequisite(t))) return
  const name = `st${process.pid.toString(36)}`
  const first = await Lab.up({ name, hosts: 1, controllers: 0, storageNode: false, httpProbePort: false })
  // simulate a crash: the process that made it is gone, the lab is still there
  const stale = first.hosts.map((h) => h.holderPid)
  const second = await Lab.up({ name, hosts: 1, controllers: 0, storageNode: false, httpProbePort: false })
  try {
    for (const p of stale) assert.equal(existsSync(`/proc/${p}/ns`), false, `stale holder ${p} was killed`)
    assert.equal((await second.execOk('compute-1', ['hostname'])).stdout.trim(), 'compute-1')
  } finally {
    await second.down()
  }
  assert.equal((await run(['ip', 'netns', 'list'])).stdout.includes(`xsl-${name}-`), false)
})

test('services from the environment description start on their host; an unknown kind is refused by name', async (t) => {
  if (!(await labPrerequisite(t))) return
  registerLabServiceKind('test-echo', async (ctx, spec) => {
    const addr = ctx.host.addresses.management!.split('/')[0]
    const port = Number(spec.options?.port ?? 8123)
    const ready = `${ctx.hostDir}/run/test-echo.ready`
    const pid = ctx.startOnHost(
      [process.execPath, `${ctx.lab.dir}/bin/lab-http-probe.mjs`, addr, String(port), 'test-echo', ready],
      'test-echo.log',
    )
    await waitFor('test-echo', () => existsSync(ready))
    return { kind: 'test-echo', host: ctx.host.name, url: `http://${addr}:${port}/`, pids: [pid] }
  })
  await withLab(
    { hosts: 1, storageNode: false, services: [{ kind: 'test-echo', options: { port: 8124 } }] },
    async (lab) => {
      assert.equal(lab.services.length, 1)
      assert.equal(lab.services[0].host, 'controller-1')
      const r = await lab.execOk('compute-1', ['curl', '-sS', '--max-time', '3', lab.services[0].url!])
      assert.equal(JSON.parse(r.stdout).host, 'test-echo')
    },
  )
  await assert.rejects(
    withLab({ hosts: 1, storageNode: false, services: [{ kind: 'no-such-service' }] }, async () => {}),
    /services\[0\]\.kind: no lab service "no-such-service"/,
  )
})
