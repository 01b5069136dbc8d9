/**
 * Dom0 preparation on the lab's dom0s (given XenServer's os-release, a bridge blacklist, a shipped conntrackd
 * configuration and a root crontab of their own): the dry run changes nothing; one run removes the blacklist,
 * builds the neutron chain (jumped to once, saved in /etc/sysconfig/iptables), merges the rotation entry into root's
 * crontab keeping what was there, links /boot/guest and /images into the SR mount and switches conntrackd to its statistics
 * configuration (the shipped one kept as .back); a second run changes nothing. The pool's dom0s then ssh to each
 * other with pinned host keys and no password.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { withLab } from '../../../src/lab/index.js'
import {
  NEUTRON_CHAIN,
  ROTATE_CRON_COMMAND,
  ROTATE_SCRIPT_PATH,
  converge,
  dom0PrepareResources,
  dom0SshMesh,
  srLinks,
} from '../../../src/integration/dom0/index.js'
import { labPrerequisite, onHost, sshTo } from '../../node/helpers.js'

const SR_UUID = '7d2c5c1e-3f7a-4a55-9a7e-0c6b1f0e9a11'
const STATS_GLOB = '/etc/xenstack-test/conntrack-tools-*/doc/stats/conntrackd.conf'
const OTHERS = '# site jobs\nMAILTO=""\n17 4 * * * /usr/local/bin/site-backup\n'

test('dom0 preparation: dry run, one run, second run unchanged; pool dom0s trust each other', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab(
    {
      hosts: 2,
      controllers: 0,
      storageNode: false,
      httpProbePort: false,
      networks: { management: { cidr: '10.71.0.0/23' } },
      seed: (h, paths) => {
        if (h.role !== 'dom0') return
        writeFileSync(
          join(paths.etc, 'os-release'),
          'NAME="XenServer"\nID="xenserver"\nID_LIKE="centos rhel fedora"\nVERSION_ID="7.1.0"\n',
        )
        mkdirSync(join(paths.etc, 'modprobe.d'), { recursive: true })
        writeFileSync(join(paths.etc, 'modprobe.d', 'blacklist-bridge.conf'), 'install bridge /bin/true\n')
        writeFileSync(join(paths.etc, 'modprobe.d', 'blacklist-bridge-extra.conf'), 'blacklist bridge\n')
        mkdirSync(join(paths.etc, 'conntrackd'), { recursive: true })
        writeFileSync(join(paths.etc, 'conntrackd', 'conntrackd.conf'), '# shipped: sync mode\nSync {\n}\n')
        const stats = join(paths.etc, 'xenstack-test', 'conntrack-tools-1.4.2', 'doc', 'stats')
        mkdirSync(stats, { recursive: true })
        writeFileSync(join(stats, 'conntrackd.conf'), '# statistics mode\nStats {\n\tLogFile on\n}\n')
      },
    },
    async (lab) => {
      const dom0 = sshTo(lab, 'dom0-1')
      const dom0b = sshTo(lab, 'dom0-2')
      try {
        await onHost(lab, 'dom0-1', `printf '%s' '${OTHERS}' | crontab -u root -`)
        await onHost(lab, 'dom0-1', `mkdir -p /var/run/sr-mount/${SR_UUID}`)
        const opts = { srUuid: SR_UUID, conntrackStatsGlob: STATS_GLOB }
        const resources = await dom0PrepareResources(dom0, opts)
        const state = () =>
          onHost(
            lab,
            'dom0-1',
            'ls /etc/modprobe.d; iptables -S; crontab -l -u root; ls -l /boot; cat /etc/conntrackd/conntrackd.conf; true',
          )

        await t.test('dry run: every change planned, nothing changed', async () => {
          const before = await state()
          const planned = await converge(dom0, resources, { dryRun: true })
          const ids = planned.filter((c) => c.result === 'changed').map((c) => c.resource)
          for (const want of [
            'file /etc/modprobe.d/blacklist-bridge.conf',
            'file /etc/modprobe.d/blacklist-bridge-extra.conf',
            `iptables chain filter/${NEUTRON_CHAIN}`,
            'cron root: rotate xen guest console logs',
            'symlink /boot/guest',
            'symlink /images',
            'file /etc/conntrackd/conntrackd.conf',
          ])
            assert.ok(
              ids.some((i) => i.endsWith(want)),
              `${want} planned: ${ids.join(', ')}`,
            )
          assert.equal(await state(), before)
        })

        await t.test(
          'one run: blacklist gone, chain once, crontab merged, /boot/guest linked, conntrackd',
          async () => {
            const changes = await converge(dom0, resources)
            assert.ok(changes.some((c) => c.result === 'changed'))
            assert.equal(await onHost(lab, 'dom0-1', 'ls /etc/modprobe.d/ | grep -c blacklist-bridge || true'), '0\n')
            const rules = (await onHost(lab, 'dom0-1', 'iptables -S')).split('\n')
            assert.deepEqual(
              rules.filter((l) => l.includes(NEUTRON_CHAIN)),
              [
                `-N ${NEUTRON_CHAIN}`,
                `-A INPUT -j ${NEUTRON_CHAIN}`,
                `-A ${NEUTRON_CHAIN} -p tcp -m tcp --dport 6640 -j ACCEPT`,
                `-A ${NEUTRON_CHAIN} -p udp -m multiport --dports 4789 -j ACCEPT`,
              ],
            )
            const saved = await onHost(lab, 'dom0-1', 'cat /etc/sysconfig/iptables')
            assert.match(saved, new RegExp(`^-A ${NEUTRON_CHAIN} -p tcp -m tcp --dport 6640 -j ACCEPT$`, 'm'))
            const tab = await onHost(lab, 'dom0-1', 'crontab -l -u root')
            assert.ok(tab.startsWith(OTHERS), `pre-existing entries kept first:\n${tab}`)
            assert.match(
              tab,
              new RegExp(`^\\* \\* \\* \\* \\* ${ROTATE_CRON_COMMAND.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'),
            )
            assert.equal(await onHost(lab, 'dom0-1', `stat -c %a ${ROTATE_SCRIPT_PATH}`), '755\n')
            assert.equal(
              await onHost(lab, 'dom0-1', 'readlink /boot/guest'),
              `/var/run/sr-mount/${SR_UUID}/os-guest-kernels\n`,
            )
            assert.equal(await onHost(lab, 'dom0-1', 'test -d /boot/guest/ && echo dir'), 'dir\n')
            assert.equal(await onHost(lab, 'dom0-1', 'readlink /images'), `/var/run/sr-mount/${SR_UUID}/os-images\n`)
            assert.equal(await onHost(lab, 'dom0-2', 'test -e /images || echo absent'), 'absent\n', "dom0-1's only")
            assert.match(await onHost(lab, 'dom0-1', 'cat /etc/conntrackd/conntrackd.conf'), /statistics mode/)
            assert.match(await onHost(lab, 'dom0-1', 'cat /etc/conntrackd/conntrackd.conf.back'), /shipped: sync mode/)
            assert.match(await onHost(lab, 'dom0-1', 'cat /etc/logrotate.d/conntrackd'), /maxsize 50M/)
          },
        )

        await t.test('second run changes nothing', async () => {
          const again = await converge(dom0, await dom0PrepareResources(dom0, opts))
          assert.deepEqual(
            again.filter((c) => c.result !== 'unchanged'),
            [],
          )
          assert.equal((await onHost(lab, 'dom0-1', 'crontab -l -u root')).split(ROTATE_CRON_COMMAND).length, 2)
        })

        await t.test('an SR that is not mounted is an error naming it', async () => {
          await assert.rejects(
            srLinks(dom0, { srUuid: '00000000-0000-4000-8000-000000000000' }),
            /the SR 00000000-0000-4000-8000-000000000000 is not mounted at \/var\/run\/sr-mount\//,
          )
        })

        await t.test(
          "pool dom0s: passwordless ssh with each other's host keys pinned; second run unchanged",
          async () => {
            // dom0's management address lives on xenbr0, as on XenServer
            const addrs = ['10.71.1.201', '10.71.1.202']
            await onHost(lab, 'dom0-1', `ip addr replace ${addrs[0]}/23 dev xenbr0`)
            await onHost(lab, 'dom0-2', `ip addr replace ${addrs[1]}/23 dev xenbr0`)
            // the lab's sshd serves a host key of its own (not /etc/ssh's): point at it
            const hostKeyGlob = (h: string) => `${lab.hostDir(h)}/ssh/ssh_host_*_key.pub`
            const members = [
              { name: 'xs1', address: addrs[0], exec: dom0, hostKeyGlob: hostKeyGlob('dom0-1') },
              { name: 'xs2', address: addrs[1], exec: dom0b, hostKeyGlob: hostKeyGlob('dom0-2') },
            ]
            const dry = await dom0SshMesh(members, { dryRun: true })
            assert.ok(dry.some((c) => c.result === 'changed'))
            assert.equal((await lab.exec('dom0-1', ['test', '-e', '/root/.ssh/id_rsa'])).code, 1, 'dry run made no key')
            await dom0SshMesh(members)
            const sshOpts = ['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10']
            const ab = await lab.exec('dom0-1', ['ssh', ...sshOpts, `root@${addrs[1]}`, 'hostname'])
            assert.equal(ab.stdout.trim(), 'dom0-2', ab.stderr)
            const ba = await lab.exec('dom0-2', ['ssh', ...sshOpts, `root@${addrs[0]}`, 'hostname'])
            assert.equal(ba.stdout.trim(), 'dom0-1', ba.stderr)
            const again = await dom0SshMesh(members)
            assert.deepEqual(
              again.filter((c) => c.result !== 'unchanged'),
              [],
            )
          },
        )
      } finally {
        await dom0.close()
        await dom0b.close()
      }
    },
  )
})
