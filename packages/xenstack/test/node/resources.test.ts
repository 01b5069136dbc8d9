/**
 * Every resource type on real lab hosts (real sshd, iptables, ip route, crontab, dpkg and files in each host's own
 * mounts): converges from absent, from a wrong value and from already-correct; plan changes nothing; the plan of a
 * converged host is empty; secrets never appear in logs, diffs, reports or errors.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Lab, withLab } from '../../src/lab/index.js'
import {
  AuthorizedKey,
  CommandResource,
  CronEntry,
  DirectoryResource,
  FileResource,
  IniSetting,
  IptablesChain,
  IptablesPersist,
  IptablesRule,
  KnownHost,
  LineInFile,
  ModprobeBlacklistRemoval,
  Package,
  Route,
  Secret,
  Service,
  SymlinkResource,
  Sysctl,
  apply,
  firewall,
  gatherFacts,
  iniSettings,
  pendingChanges,
  plan,
  type ApplyReport,
  type Executor,
  type Resource,
} from '../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from './helpers.js'

const PASSWORD = new Secret('Xen-s3cret-Passw0rd!')
const SECRET_PLAN_KEY = new Secret('plan-secret-value-42')
const logs: string[] = []
const log = (m: string): void => {
  logs.push(m)
}
const reports: unknown[] = []

function statuses(r: ApplyReport): string[] {
  return r.entries.map((e) => `${e.id}: ${e.status}${e.error ? ` (${e.error})` : ''}`)
}

interface Case {
  /** Shell run on the host (through the lab, not the executor) to make the absent state. */
  absent?: string
  /** Shell that prints the state; it must be the same before and after `plan`. */
  probe: string
  /** Shell that breaks the converged state (a wrong value). */
  wrong: string
  verify: () => Promise<void>
}

async function converges(lab: Lab, host: string, exec: Executor, resources: Resource[], c: Case): Promise<void> {
  if (c.absent) await onHost(lab, host, c.absent)
  // from absent: plan shows changes and changes nothing
  const probe = async (): Promise<string> => (await lab.exec(host, ['sh', '-c', c.probe])).stdout
  const before = await probe()
  const p1 = await plan(exec, resources, { log })
  reports.push(p1)
  assert.ok(pendingChanges(p1).length > 0, 'the plan from absent shows changes')
  assert.ok(
    p1.every((e) => e.error === undefined),
    JSON.stringify(p1),
  )
  assert.equal(await probe(), before, 'plan changed nothing')
  const a1 = await apply(exec, resources, { log })
  reports.push(a1)
  assert.ok(a1.ok, statuses(a1).join('\n'))
  assert.ok(a1.changed > 0, statuses(a1).join('\n'))
  await c.verify()
  // already correct: unchanged
  const a2 = await apply(exec, resources, { log })
  reports.push(a2)
  assert.deepEqual(
    a2.entries.map((e) => e.status),
    resources.map(() => 'unchanged'),
    statuses(a2).join('\n'),
  )
  // from a wrong value
  await onHost(lab, host, c.wrong)
  const a3 = await apply(exec, resources, { log })
  reports.push(a3)
  assert.ok(a3.ok && a3.changed > 0, statuses(a3).join('\n'))
  await c.verify()
  const p2 = await plan(exec, resources, { log })
  assert.deepEqual(pendingChanges(p2), [], 'the plan of a converged host is empty')
}

const NOVA = `# nova-compute.conf (distribution default)
[DEFAULT]
# The compute driver
compute_driver = libvirt.LibvirtDriver
debug=True

[vnc]
# keep me
enabled = True

[xenserver]
#connection_url = <None>
#connection_password = <None>
cache_images = all
`

function buildDeb(dir: string): string {
  const root = join(dir, 'pkg')
  mkdirSync(join(root, 'DEBIAN'), { recursive: true })
  mkdirSync(join(root, 'etc', 'xenstack-testpkg'), { recursive: true })
  writeFileSync(
    join(root, 'DEBIAN', 'control'),
    'Package: xenstack-testpkg\nVersion: 1.0\nArchitecture: all\nMaintainer: xenstack tests <tests@xenstack.invalid>\nDescription: xenstack node-access test package\n',
  )
  writeFileSync(join(root, 'etc', 'xenstack-testpkg', 'marker'), 'installed\n')
  const deb = join(dir, 'xenstack-testpkg.deb')
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, deb], { stdio: 'ignore' })
  return deb
}

const DUMMY_INIT = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          xenstack-dummy
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: xenstack test service
### END INIT INFO
P=/run/xenstack-dummy.pid
case "$1" in
  start) mkdir -p /var/lib/xenstack-dummy; echo start >> /var/lib/xenstack-dummy/starts
         setsid sleep 100000 </dev/null >/dev/null 2>&1 & echo $! > $P ;;
  stop) [ -f $P ] && kill $(cat $P) 2>/dev/null; rm -f $P ;;
  restart) $0 stop; $0 start ;;
  status) [ -f $P ] && kill -0 $(cat $P) 2>/dev/null ;;
  *) exit 2 ;;
esac
`

test('resources converge on lab hosts; plan is a dry run; converged plan is empty; secrets stay secret', async (t) => {
  if (!(await labPrerequisite(t))) return
  const work = mkdtempSync(join(tmpdir(), 'xenstack-res-'))
  try {
    await withLab(
      {
        hosts: 1,
        controllers: 0,
        storageNode: false,
        httpProbePort: false,
        // dom0 is CentOS-based: give the lab's dom0 XenServer's os-release so the RHEL-family paths are exercised.
        seed: (h, paths) => {
          if (h.name !== 'dom0-1') return
          writeFileSync(
            join(paths.etc, 'os-release'),
            'NAME="XenServer"\nID="xenserver"\nID_LIKE="centos rhel fedora"\nVERSION_ID="8.2.1"\n',
          )
          writeFileSync(join(paths.etc, 'redhat-release'), 'XenServer release 8.2.1 (xenenterprise)\n')
          mkdirSync(join(paths.etc, 'modprobe.d'), { recursive: true })
          writeFileSync(join(paths.etc, 'modprobe.d', 'blacklist-bridge.conf'), '# XenServer\nblacklist bridge\n')
          writeFileSync(
            join(paths.etc, 'modprobe.d', 'local.conf'),
            '# site policy\nblacklist floppy\nblacklist bridge\noptions loop max_loop=64\n',
          )
        },
      },
      async (lab) => {
        const compute = sshTo(lab, 'compute-1')
        const dom0 = sshTo(lab, 'dom0-1')
        const allCompute: Resource[] = []
        const allDom0: Resource[] = []
        try {
          await t.test('facts: OS family, hostname and interfaces, gathered once', async () => {
            const f = await gatherFacts(dom0)
            assert.equal(f.osFamily, 'redhat')
            assert.equal(f.osId, 'xenserver')
            assert.equal(f.hostname, 'dom0-1')
            assert.ok(
              f.interfaces.some((i) => i.name === 'xenapi' && i.ipv4.includes('169.254.0.1/16')),
              JSON.stringify(f.interfaces),
            )
            assert.equal(await gatherFacts(dom0), f, 'cached per executor')
            const c = await gatherFacts(compute)
            assert.equal(c.osFamily, 'debian')
            assert.equal(c.hostname, 'compute-1')
          })

          await t.test('file and directory: content, mode, owner; atomic write', async () => {
            const rs = [
              new DirectoryResource({ path: '/etc/xenstack-t', mode: 0o750 }),
              new FileResource({
                path: '/etc/xenstack-t/app.conf',
                content: 'a = 1\nb = 2\n',
                mode: 0o640,
                owner: 'root',
                group: 'daemon',
              }),
              new FileResource({
                path: '/etc/xenstack-t/secret.conf',
                content: new Secret(`password=${PASSWORD.reveal()}\n`),
                mode: 0o600,
              }),
            ]
            allCompute.push(...rs)
            await converges(lab, 'compute-1', compute, rs, {
              absent: 'rm -rf /etc/xenstack-t',
              probe: 'ls -la /etc/xenstack-t 2>&1; cat /etc/xenstack-t/* 2>&1',
              wrong:
                'echo "a = 9" > /etc/xenstack-t/app.conf; chmod 666 /etc/xenstack-t/app.conf; chgrp root /etc/xenstack-t/app.conf; chmod 755 /etc/xenstack-t; echo x > /etc/xenstack-t/secret.conf',
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', 'cat /etc/xenstack-t/app.conf'), 'a = 1\nb = 2\n')
                assert.equal(
                  await onHost(lab, 'compute-1', "stat -c '%a %U %G' /etc/xenstack-t/app.conf /etc/xenstack-t"),
                  '640 root daemon\n750 root root\n',
                )
                assert.equal(
                  await onHost(lab, 'compute-1', 'cat /etc/xenstack-t/secret.conf'),
                  `password=${PASSWORD.reveal()}\n`,
                )
                assert.equal(
                  await onHost(lab, 'compute-1', 'ls -a /etc/xenstack-t | grep -c xenstack- || true'),
                  '0\n',
                  'no temporary files',
                )
              },
            })
            // it landed in compute-1's own /etc only
            assert.equal(
              readFileSync(lab.backingPath('compute-1', '/etc/xenstack-t/app.conf'), 'utf8'),
              'a = 1\nb = 2\n',
            )
          })

          await t.test('symlink and line in file', async () => {
            const rs = [
              new SymlinkResource({ path: '/root/xs-link', target: '/etc/xenstack-t' }),
              new LineInFile({
                path: '/etc/xenstack-t/hosts',
                line: '10.0.0.1 controller',
                match: '^\\S+\\s+controller$',
              }),
            ]
            allCompute.push(...rs)
            await converges(lab, 'compute-1', compute, rs, {
              absent: 'rm -f /root/xs-link; printf "127.0.0.1 localhost\\n# keep\\n" > /etc/xenstack-t/hosts',
              probe: 'readlink /root/xs-link; cat /etc/xenstack-t/hosts',
              wrong: 'ln -sfn /tmp /root/xs-link; echo "10.0.0.9 controller" >> /etc/xenstack-t/hosts',
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', 'readlink /root/xs-link'), '/etc/xenstack-t\n')
                assert.equal(
                  await onHost(lab, 'compute-1', 'cat /etc/xenstack-t/hosts'),
                  '127.0.0.1 localhost\n# keep\n10.0.0.1 controller\n',
                )
              },
            })
          })

          await t.test(
            'ini settings keep comments, order and unrelated keys; secrets written, never shown',
            async () => {
              const path = '/etc/nova/nova-compute.conf'
              const rs = [
                new IniSetting({ path, section: 'DEFAULT', key: 'compute_driver', value: 'xenapi.XenAPIDriver' }),
                new IniSetting({ path, section: 'xenserver', key: 'connection_url', value: 'http://169.254.0.1' }),
                new IniSetting({ path, section: 'xenserver', key: 'connection_password', value: PASSWORD }),
                new IniSetting({ path, section: 'vnc', key: 'enabled', ensure: 'absent' }),
                new IniSetting({ path, section: 'cache', key: 'enable', value: 'true' }),
              ]
              allCompute.push(...rs)
              await converges(lab, 'compute-1', compute, rs, {
                absent: `mkdir -p /etc/nova && printf '%s' '${NOVA}' > ${path}`,
                probe: `cat ${path}`,
                wrong: `sed -i 's/xenapi.XenAPIDriver/libvirt.LibvirtDriver/' ${path}; printf '[xenserver]\\nconnection_password = wrong\\n[vnc]\\nenabled = True\\n' >> ${path}`,
                verify: async () => {
                  const text = await onHost(lab, 'compute-1', `cat ${path}`)
                  const want = `# nova-compute.conf (distribution default)
[DEFAULT]
# The compute driver
compute_driver = xenapi.XenAPIDriver
debug=True

[vnc]
# keep me

[xenserver]
#connection_url = <None>
connection_url = http://169.254.0.1
#connection_password = <None>
connection_password = ${PASSWORD.reveal()}
cache_images = all

[cache]
enable = true
`
                  // after the wrong state (a duplicate [xenserver] with another password): the last occurrence
                  // holds the value (oslo reads the last one) and the earlier duplicate line is gone
                  const expected = text.includes('[xenserver]\nconnection_password')
                    ? want.replace(`connection_password = ${PASSWORD.reveal()}\n`, '') +
                      `[xenserver]\nconnection_password = ${PASSWORD.reveal()}\n[vnc]\n`
                    : want
                  assert.equal(text, expected)
                },
              })
            },
          )

          await t.test('iptables chain, rules (never duplicated) and persistence', async () => {
            const chain = 'XenServer-Neutron-INPUT'
            const rs: Resource[] = [
              new IptablesChain({ chain }),
              new IptablesRule({ chain, rule: ['-p', 'tcp', '--dport', '6640', '-j', 'ACCEPT'] }),
              new IptablesRule({ chain, rule: ['-p', 'udp', '-m', 'multiport', '--dports', '4789', '-j', 'ACCEPT'] }),
              new IptablesRule({ chain: 'INPUT', rule: ['-j', chain], position: 'insert' }),
              new IptablesRule({ table: 'nat', chain: 'POSTROUTING', rule: ['-o', 'xs-nat0', '-j', 'MASQUERADE'] }),
              new IptablesPersist(),
            ]
            allCompute.push(...rs)
            // a plan from scratch shows the save too, although the running rules are still the saved ones
            await onHost(lab, 'compute-1', 'mkdir -p /etc/iptables && iptables-save > /etc/iptables/rules.v4')
            const pre = await plan(compute, rs)
            assert.match(
              pre[pre.length - 1].diff.join('\n'),
              /save running rules to \/etc\/iptables\/rules.v4 \(after the changes above\)/,
            )
            const count =
              "iptables -S | grep -c -- '-j XenServer-Neutron-INPUT\\|--dport 6640\\|--dports 4789' ; iptables -t nat -S | grep -c xs-nat0"
            await converges(lab, 'compute-1', compute, rs, {
              probe: 'iptables-save | grep -v "^#"; cat /etc/iptables/rules.v4 2>&1',
              wrong: `iptables -D INPUT -j ${chain}; iptables -F ${chain}; iptables -t nat -F POSTROUTING`,
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', count), '3\n1\n', 'each rule exactly once')
                assert.match(
                  await onHost(lab, 'compute-1', 'iptables -S INPUT | sed -n 2p'),
                  /^-A INPUT -j XenServer-Neutron-INPUT$/m,
                  'jump inserted first',
                )
                const saved = await onHost(lab, 'compute-1', 'cat /etc/iptables/rules.v4')
                assert.match(saved, /-A XenServer-Neutron-INPUT -p tcp -m tcp --dport 6640 -j ACCEPT/)
                assert.match(saved, /-A POSTROUTING -o xs-nat0 -j MASQUERADE/)
              },
            })
            // dom0 (RHEL family): saved to /etc/sysconfig/iptables
            const d: Resource[] = [
              new IptablesChain({ chain }),
              new IptablesRule({ chain, rule: ['-p', 'tcp', '--dport', '6640', '-j', 'ACCEPT'] }),
              new IptablesPersist(),
            ]
            allDom0.push(...d)
            await converges(lab, 'dom0-1', dom0, d, {
              probe: 'iptables-save | grep -v "^#"; cat /etc/sysconfig/iptables 2>&1',
              wrong: `iptables -F ${chain}`,
              verify: async () => {
                assert.match(
                  await onHost(lab, 'dom0-1', 'cat /etc/sysconfig/iptables'),
                  /-A XenServer-Neutron-INPUT -p tcp -m tcp --dport 6640 -j ACCEPT/,
                )
              },
            })
          })

          await t.test(
            'routes: real prefixes, persisted by a udev rule on dom0 and an if-up hook on Debian',
            async () => {
              const rs = [
                new Route({ to: '192.168.77.5/24', via: '169.254.0.2', dev: 'xenapi' }),
                new Route({ to: '10.20.1.0/22', via: '169.254.0.2', dev: 'xenapi' }),
                new Route({ to: '10.30.0.0/16', via: '169.254.0.2', dev: 'xenapi', persist: 'ifcfg' }),
              ]
              allDom0.push(...rs)
              const script = '/etc/udev/scripts/xenstack-routes-xenapi.sh'
              await converges(lab, 'dom0-1', dom0, rs, {
                probe: `ip route; cat ${script} 2>&1; ls /etc/udev/rules.d 2>&1`,
                wrong: `ip route replace 192.168.77.0/24 via 169.254.0.3 dev xenapi; ip route del 10.20.0.0/22; sed -i '/10.20.0.0/d' ${script}; rm /etc/sysconfig/network-scripts/route-xenapi`,
                verify: async () => {
                  assert.equal(
                    await onHost(
                      lab,
                      'dom0-1',
                      'ip -4 route show exact 192.168.77.0/24; ip -4 route show exact 10.20.0.0/22',
                    ),
                    '192.168.77.0/24 via 169.254.0.2 dev xenapi \n10.20.0.0/22 via 169.254.0.2 dev xenapi \n',
                  )
                  const text = await onHost(lab, 'dom0-1', `cat ${script}`)
                  assert.match(text, /^#!\/bin\/sh\n/)
                  assert.equal(
                    text.match(/^ip route replace .*$/gm)?.join('\n'),
                    'ip route replace 192.168.77.0/24 via 169.254.0.2 dev xenapi\nip route replace 10.20.0.0/22 via 169.254.0.2 dev xenapi',
                  )
                  assert.equal(
                    await onHost(lab, 'dom0-1', 'cat /etc/udev/rules.d/90-xenstack-routes-xenapi.rules'),
                    `SUBSYSTEM=="net", ACTION=="add", KERNEL=="xenapi", RUN+="${script}"\n`,
                  )
                  assert.equal(
                    await onHost(lab, 'dom0-1', 'cat /etc/sysconfig/network-scripts/route-xenapi'),
                    '10.30.0.0/16 via 169.254.0.2 dev xenapi\n',
                  )
                  // the persisted script really restores the routes
                  await onHost(lab, 'dom0-1', `ip route del 192.168.77.0/24; sh ${script}`)
                  assert.match(
                    await onHost(lab, 'dom0-1', 'ip -4 route show exact 192.168.77.0/24'),
                    /via 169\.254\.0\.2 dev xenapi/,
                  )
                },
              })
              const c = await gatherFacts(compute)
              const dev = c.interfaces.find((i) => i.name !== 'lo' && i.ipv4.length > 0)
              assert.ok(dev, JSON.stringify(c.interfaces))
              const cr = [new Route({ to: '10.99.0.0/16', dev: dev.name })]
              allCompute.push(...cr)
              await converges(lab, 'compute-1', compute, cr, {
                probe: 'ip route; ls /etc/network/if-up.d 2>&1',
                wrong: 'ip route del 10.99.0.0/16',
                verify: async () => {
                  assert.equal(
                    await onHost(lab, 'compute-1', 'ip -4 route show exact 10.99.0.0/16'),
                    `10.99.0.0/16 dev ${dev.name} scope link \n`,
                  )
                  assert.match(
                    await onHost(lab, 'compute-1', `cat /etc/network/if-up.d/xenstack-routes-${dev.name}`),
                    new RegExp(
                      `IFACE" = "${dev.name}" \\] \\|\\| exit 0\nip route replace 10.99.0.0/16 dev ${dev.name}\n$`,
                    ),
                  )
                },
              })
            },
          )

          await t.test('sysctl: runtime and persisted', async () => {
            const rs = [new Sysctl({ key: 'net.ipv4.ip_forward', value: 1 })]
            allCompute.push(...rs)
            await converges(lab, 'compute-1', compute, rs, {
              absent: 'sysctl -qw net.ipv4.ip_forward=0; sed -i "/ip_forward/d" /etc/sysctl.conf',
              probe: 'sysctl -n net.ipv4.ip_forward; grep ip_forward /etc/sysctl.conf || true',
              wrong: 'sysctl -qw net.ipv4.ip_forward=0; echo "net.ipv4.ip_forward=0" >> /etc/sysctl.conf',
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', 'sysctl -n net.ipv4.ip_forward'), '1\n')
                assert.equal(
                  await onHost(lab, 'compute-1', "grep -E '^[^#]*ip_forward' /etc/sysctl.conf"),
                  'net.ipv4.ip_forward = 1\n',
                )
              },
            })
          })

          await t.test('kernel-module blacklist entries removed, other policy kept', async () => {
            const rs = [new ModprobeBlacklistRemoval({ module: 'bridge' })]
            allDom0.push(...rs)
            await converges(lab, 'dom0-1', dom0, rs, {
              probe: 'ls /etc/modprobe.d; cat /etc/modprobe.d/*',
              wrong: 'echo "blacklist bridge" > /etc/modprobe.d/blacklist-bridge.conf',
              verify: async () => {
                assert.equal(
                  await onHost(
                    lab,
                    'dom0-1',
                    'test -e /etc/modprobe.d/blacklist-bridge.conf && echo present || echo gone',
                  ),
                  'gone\n',
                )
                assert.equal(
                  await onHost(lab, 'dom0-1', 'cat /etc/modprobe.d/local.conf'),
                  '# site policy\nblacklist floppy\noptions loop max_loop=64\n',
                )
              },
            })
          })

          await t.test("cron entry merged into root's crontab, others' entries kept", async () => {
            const others =
              'MAILTO=ops@example.com\n# backup, owned by the site\n30 2 * * * /usr/local/bin/backup >/dev/null 2>&1\n*/5 * * * * /usr/bin/other-job\n'
            const rs = [
              new CronEntry({
                name: 'rotate guest console logs',
                schedule: '* * * * *',
                command: '/root/rotate_xen_guest_logs.sh >/dev/null 2>&1',
              }),
            ]
            allDom0.push(...rs)
            await converges(lab, 'dom0-1', dom0, rs, {
              absent: `printf '%s' '${others}' | crontab -u root -`,
              probe: 'crontab -l -u root',
              wrong:
                "crontab -l -u root | sed 's#^\\* \\* \\* \\* \\* /root/rotate#*/10 * * * * /root/rotate#' | crontab -u root -",
              verify: async () => {
                const tab = await onHost(lab, 'dom0-1', 'crontab -l -u root')
                assert.ok(tab.startsWith(others), tab)
                assert.equal(
                  tab.slice(others.length),
                  '# xenstack: rotate guest console logs\n* * * * * /root/rotate_xen_guest_logs.sh >/dev/null 2>&1\n',
                )
              },
            })
          })

          await t.test(
            'service: started, enabled, restarted only when its config changed; missing one reported',
            async () => {
              await compute.put('/etc/init.d/xenstack-dummy', DUMMY_INIT, { mode: 0o755 })
              const config = new FileResource({ path: '/etc/xenstack-dummy.conf', content: 'level = 1\n' })
              const rs: Resource[] = [
                config,
                new Service({ name: 'xenstack-dummy', ensure: 'running', enable: true, restartOn: [config] }),
              ]
              allCompute.push(...rs)
              const starts = 'cat /var/lib/xenstack-dummy/starts 2>/dev/null | wc -l'
              await converges(lab, 'compute-1', compute, rs, {
                probe: `/etc/init.d/xenstack-dummy status && echo running || echo stopped; ls /etc/rc2.d 2>&1; ${starts}`,
                wrong: '/etc/init.d/xenstack-dummy stop; echo "level = 2" > /etc/xenstack-dummy.conf',
                verify: async () => {
                  assert.equal(
                    await onHost(lab, 'compute-1', '/etc/init.d/xenstack-dummy status && echo running'),
                    'running\n',
                  )
                  assert.match(await onHost(lab, 'compute-1', 'ls /etc/rc2.d'), /S\d\dxenstack-dummy/)
                },
              })
              // one start from absent, one from the wrong state (start, not start+restart); none when unchanged
              assert.equal(await onHost(lab, 'compute-1', starts), '2\n')
              // a config change on a running service restarts it
              await onHost(lab, 'compute-1', 'echo "level = 3" > /etc/xenstack-dummy.conf')
              const r = await apply(compute, rs, { log })
              assert.deepEqual(
                r.entries.map((e) => e.status),
                ['changed', 'changed'],
              )
              assert.match(r.entries[1].diff.join('\n'), /restart \(file \/etc\/xenstack-dummy.conf changed\)/)
              assert.equal(await onHost(lab, 'compute-1', starts), '3\n')
              // not installed: nothing done, reported
              const missing = await apply(
                compute,
                [new Service({ name: 'no-such-service', ensure: 'running', enable: true })],
                { log },
              )
              assert.deepEqual(
                missing.entries.map((e) => [e.status, e.note]),
                [['unchanged', 'not installed']],
              )
            },
          )

          await t.test('package installed with apt only when missing', async () => {
            const deb = buildDeb(work)
            await compute.put('/var/tmp/xenstack-testpkg.deb', readFileSync(deb))
            const rs = [new Package({ name: 'xenstack-testpkg', source: '/var/tmp/xenstack-testpkg.deb' })]
            allCompute.push(...rs)
            await converges(lab, 'compute-1', compute, rs, {
              probe: "dpkg-query -W -f='${Status}' xenstack-testpkg 2>&1 || true",
              wrong: 'dpkg -r xenstack-testpkg >/dev/null',
              verify: async () => {
                assert.equal(
                  await onHost(lab, 'compute-1', "dpkg-query -W -f='${Status}' xenstack-testpkg"),
                  'install ok installed',
                )
                assert.equal(await onHost(lab, 'compute-1', 'cat /etc/xenstack-testpkg/marker'), 'installed\n')
              },
            })
            const present = await plan(compute, [new Package({ name: 'iproute2' })])
            assert.equal(present[0].inSync, true)
          })

          await t.test('authorized key added beside the existing ones', async () => {
            const pub = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmYpI2cbpWkZ7t0rBf5oL1bN3y0iFeaTu7x6QvY8JqT xenstack-test'
            const rs = [new AuthorizedKey({ key: pub })]
            allCompute.push(...rs)
            const before = await onHost(lab, 'compute-1', 'cat /root/.ssh/authorized_keys')
            await converges(lab, 'compute-1', compute, rs, {
              probe: 'cat /root/.ssh/authorized_keys',
              wrong: "sed -i '/xenstack-test/d' /root/.ssh/authorized_keys",
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', 'cat /root/.ssh/authorized_keys'), before + pub + '\n')
                assert.equal(await onHost(lab, 'compute-1', "stat -c '%a %U' /root/.ssh/authorized_keys"), '600 root\n')
              },
            })
          })

          await t.test("known host: dom0's key pinned in compute's known_hosts, other lines kept", async () => {
            const dom0Pub = await onHost(
              lab,
              'dom0-1',
              `cat ${join(lab.hostDir('dom0-1'), 'ssh', 'ssh_host_ed25519_key.pub')}`,
            )
            const rs = [new KnownHost({ host: '169.254.0.1', key: dom0Pub })]
            allCompute.push(...rs)
            const other =
              'other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmYpI2cbpWkZ7t0rBf5oL1bN3y0iFeaTu7x6QvY8JqT'
            await converges(lab, 'compute-1', compute, rs, {
              absent: `mkdir -p /root/.ssh && echo '${other}' > /root/.ssh/known_hosts`,
              probe: 'cat /root/.ssh/known_hosts',
              wrong: `echo '169.254.0.1 ${other.split(' ').slice(1).join(' ')}' > /root/.ssh/known_hosts`,
              verify: async () => {
                // OpenSSH's own parser finds exactly the pinned key
                const found = await onHost(
                  lab,
                  'compute-1',
                  'ssh-keygen -F 169.254.0.1 -f /root/.ssh/known_hosts | grep -v "^#"',
                )
                assert.equal(found, `169.254.0.1 ${dom0Pub.split(' ').slice(0, 2).join(' ')}\n`)
              },
            })
            assert.match(await onHost(lab, 'compute-1', 'cat /root/.ssh/known_hosts'), /^169\.254\.0\.1 ssh-ed25519 /)
          })

          await t.test('command guarded by creates and unless', async () => {
            const rs = [
              new CommandResource({
                name: 'prepare marker',
                command: 'mkdir -p /var/lib/xs-cmd && echo ran >> /var/lib/xs-cmd/log && touch /var/lib/xs-cmd/done',
                creates: '/var/lib/xs-cmd/done',
              }),
              new CommandResource({
                name: 'login with password',
                command: ['sh', '-c', 'echo "$0" > /var/lib/xs-cmd/pw', PASSWORD],
                unless: ['test', '-s', '/var/lib/xs-cmd/pw'],
              }),
            ]
            allCompute.push(...rs)
            await converges(lab, 'compute-1', compute, rs, {
              probe: 'cat /var/lib/xs-cmd/log 2>&1',
              wrong: 'rm /var/lib/xs-cmd/done /var/lib/xs-cmd/pw',
              verify: async () => {
                assert.equal(await onHost(lab, 'compute-1', 'test -e /var/lib/xs-cmd/done && echo yes'), 'yes\n')
                assert.equal(await onHost(lab, 'compute-1', 'cat /var/lib/xs-cmd/pw'), PASSWORD.reveal() + '\n')
              },
            })
            assert.equal(
              await onHost(lab, 'compute-1', 'wc -l < /var/lib/xs-cmd/log'),
              '2\n',
              'ran once from absent, once after the wrong state',
            )
          })

          await t.test(
            'a failure names host, resource and command; the rest is skipped; secrets redacted',
            async () => {
              const rs = [
                new CommandResource({
                  name: 'fails',
                  command: ['sh', '-c', 'echo "cannot log in with $0" >&2; exit 7', SECRET_PLAN_KEY],
                }),
                new FileResource({ path: '/etc/xenstack-t/never', content: 'x' }),
              ]
              const r = await apply(compute, rs, { log })
              reports.push(r)
              assert.deepEqual(
                r.entries.map((e) => e.status),
                ['failed', 'skipped'],
              )
              const err = r.entries[0].error ?? ''
              assert.match(
                err,
                /^compute-1: command fails: compute-1: command failed with exit code 7: sh -c .* \*\*\*\n/,
              )
              assert.match(err, /cannot log in with \*\*\*/)
              assert.ok(!err.includes(SECRET_PLAN_KEY.reveal()))
            },
          )

          await t.test('builders; a file rendered from a revealed secret is still redacted in diffs', async () => {
            const rs = [
              ...iniSettings('/etc/neutron/rootwrap.conf', {
                xenapi: {
                  xenapi_connection_url: 'http://169.254.0.1',
                  xenapi_connection_username: 'root',
                  xenapi_connection_password: PASSWORD,
                },
              }),
              new FileResource({
                path: '/etc/xenstack-t/rendered.conf',
                content: `[xenserver]\nconnection_password = ${PASSWORD.reveal()}\n`,
                mode: 0o600,
              }),
              ...firewall({
                chain: 'xs-test',
                jumpFrom: 'INPUT',
                rules: [{ chain: 'xs-test', rule: ['-p', 'tcp', '--dport', '6641', '-j', 'ACCEPT'] }],
              }),
            ]
            allCompute.push(...rs)
            const p = await plan(compute, rs)
            assert.match(JSON.stringify(p), /connection_password = \*\*\*/)
            await converges(lab, 'compute-1', compute, rs, {
              probe: 'cat /etc/neutron/rootwrap.conf /etc/xenstack-t/rendered.conf 2>&1; iptables -S',
              wrong:
                "rm /etc/xenstack-t/rendered.conf; sed -i 's/= .*Passw0rd!/= x/' /etc/neutron/rootwrap.conf; iptables -F xs-test",
              verify: async () => {
                assert.equal(
                  await onHost(lab, 'compute-1', 'cat /etc/neutron/rootwrap.conf'),
                  `[xenapi]\nxenapi_connection_url = http://169.254.0.1\nxenapi_connection_username = root\nxenapi_connection_password = ${PASSWORD.reveal()}\n`,
                )
                assert.equal(
                  await onHost(lab, 'compute-1', "stat -c '%a' /etc/neutron/rootwrap.conf"),
                  '640\n',
                  'new config files are not world-readable',
                )
                assert.match(await onHost(lab, 'compute-1', 'cat /etc/xenstack-t/rendered.conf'), /Passw0rd!/)
                assert.match(await onHost(lab, 'compute-1', 'iptables -S INPUT'), /-A INPUT -j xs-test/)
              },
            })
          })

          await t.test('the plan of a converged host is empty', async () => {
            assert.deepEqual(pendingChanges(await plan(compute, allCompute, { log })), [])
            assert.deepEqual(pendingChanges(await plan(dom0, allDom0, { log })), [])
            const second = await apply(compute, allCompute, { log })
            assert.equal(second.changed, 0, statuses(second).join('\n'))
            assert.equal(second.unchanged, allCompute.length)
          })

          await t.test('secrets never appear in logs, diffs, plans, reports or errors', async () => {
            assert.ok(logs.length > 20, 'apply logged its diffs')
            const all = JSON.stringify({ logs, reports })
            for (const s of [PASSWORD, SECRET_PLAN_KEY]) assert.ok(!all.includes(s.reveal()), `secret found in output`)
            assert.match(all, /connection_password = \*\*\*/)
            assert.equal(String(PASSWORD), '***')
            assert.equal(JSON.stringify({ p: PASSWORD }), '{"p":"***"}')
          })
        } finally {
          await compute.close()
          await dom0.close()
        }
      },
    )
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
})
