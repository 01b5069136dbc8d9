/**
 * HIMN's native tasks on the lab (one 2-host lab with its simulator for the whole file): attach through XAPI by
 * hot-plug and by the consented restart cycle, refusal without consent, idempotence, the guest interface found,
 * persisted with ifupdown and addressed without a default route, the pre-test and its failures, SSH trust to dom0
 * and the dom0 executor with dom0's host key pinned (a changed key refused), and remove.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { connect, type Xapi } from '@xenstack/xenapi'
import { withLab, type Lab } from '../../../src/lab/index.js'
import type { NativeTaskContext } from '../../../src/engine/tasks.js'
import type { PlanTask } from '../../../src/engine/types.js'
import { natives } from '../../../src/integration/himn/index.js'
import { HimnAttacher, HIMN_MAC_KEY } from '../../../src/integration/himn/attach.js'
import { findHimnInterface } from '../../../src/integration/himn/guest.js'
import { Dom0AccessError, dom0Of } from '../../../src/integration/dom0-access.js'
import { FileResource, Secret, apply, type SshExecutor } from '../../../src/node/index.js'
import { labPrerequisite, sshTo } from '../../node/helpers.js'

const NULL_REF = 'OpaqueRef:NULL'

function context(
  node: string,
  exec: SshExecutor,
  xapi: Xapi,
  settings: Record<string, unknown>,
  log: string[],
  nodeData?: Record<string, unknown>,
): NativeTaskContext {
  return {
    node,
    task: { id: 'himn', node } as unknown as PlanTask,
    exec,
    settings,
    models: {},
    facts: {},
    nodeData,
    xapi,
    log: (l) => log.push(l),
    signal: new AbortController().signal,
    dryRun: false,
  }
}

const settingsOf = (password: string, allowRestart: boolean) => ({
  xenserver: {
    username: { value: 'root' },
    password: { type: 'password', value: password },
    allow_vm_restart: { value: allowRestart },
  },
})

async function himnVifs(
  xapi: Xapi,
  vm: string,
): Promise<{ ref: string; device: string; MAC: string; attached: boolean }[]> {
  const nets = (await xapi.call('network.get_all_records')) as Record<string, { other_config: Record<string, string> }>
  const himn = Object.entries(nets).find(([, n]) => n.other_config.is_host_internal_management_network === 'true')![0]
  const out = []
  for (const ref of (await xapi.call('VM.get_VIFs', vm)) as string[]) {
    const r = (await xapi.call('VIF.get_record', ref)) as {
      network: string
      device: string
      MAC: string
      currently_attached: boolean
    }
    if (r.network === himn) out.push({ ref, device: r.device, MAC: r.MAC, attached: r.currently_attached })
  }
  return out
}

const run = async (lab: Lab, host: string, script: string) => (await lab.execOk(host, ['sh', '-c', script])).stdout

/** Polls `cond` until it holds or the deadline passes (lab changes land asynchronously under load). */
async function eventually(what: string, cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`${what}: not true after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Runs `change` in dom0 (it ends with a SIGHUP to sshd), then waits until sshd listens again (its log says so). */
async function reloadSshd(lab: Lab, dom0: string, change: string): Promise<void> {
  const logFile = join(lab.hostDir(dom0), 'log', 'sshd.log')
  const listening = () => (readFileSync(logFile, 'utf8').match(/Server listening on/g) ?? []).length
  const before = listening()
  await run(
    lab,
    dom0,
    'f=$(tr "\\0" " " < /proc/$(cat /run/sshd.pid)/cmdline | sed -n "s/.* -f \\([^ ]*\\) .*/\\1/p"); ' +
      change +
      '; kill -HUP $(cat /run/sshd.pid)',
  )
  await eventually(`sshd on ${dom0} listening again`, async () => listening() > before)
}

/** XenServer's stock sshd accepts root's password (the XAPI password); the lab's dom0 is made to do the same. */
async function allowPasswordLogin(lab: Lab, dom0: string, password: string): Promise<void> {
  await lab.execOk(dom0, ['chpasswd'], { stdin: `root:${password}\n` })
  await reloadSshd(
    lab,
    dom0,
    'sed -i -e "s/^PasswordAuthentication no/PasswordAuthentication yes/" ' +
      '-e "s/^PermitRootLogin prohibit-password/PermitRootLogin yes/" "$f"',
  )
}

test('HIMN: attach, guest interface, pre-test, SSH trust and the dom0 executor on the lab', async (t) => {
  if (!(await labPrerequisite(t))) return
  for (const bin of ['/usr/sbin/dhclient', '/usr/sbin/ifup', '/usr/bin/ssh-keyscan', '/usr/bin/curl'])
    if (!requirePrerequisite(t, `${bin} (./scripts/setup.sh)`, () => hasExecutable(bin))) return
  await withLab(
    { hosts: 2, controllers: 0, storageNode: false, httpProbePort: false, simulator: true },
    async (lab) => {
      const sim = lab.simulator!
      const xapi = await connect({ url: sim.url, username: sim.username, password: sim.password })
      const c1 = sshTo(lab, 'compute-1')
      const c2 = sshTo(lab, 'compute-2')
      const vm1 = sim.refs.get('compute-1')!
      const vm2 = sim.refs.get('compute-2')!
      const log: string[] = []
      // compute-1 as the lab records it (data.vm, dom0); compute-2 without node data: its VM is found by MAC
      const ctx1 = context('compute-1', c1, xapi, settingsOf(sim.password, false), log, {
        vm: vm1,
        xapiHost: 'xs1',
        dom0: { name: 'dom0-1', xapiHost: 'xs1' },
      })
      try {
        await t.test(
          'hot-plug: a running VM with PV drivers gets VIF 9 on the HIMN and its MAC in xenstore',
          async () => {
            const out = await natives['xenserver.himn-attach'].run!(ctx1)
            assert.equal(out?.[0].result, 'changed')
            const [vif] = await himnVifs(xapi, vm1)
            assert.equal(vif.device, '9')
            assert.equal(vif.attached, true)
            assert.equal(
              ((await xapi.call('VM.get_xenstore_data', vm1)) as Record<string, string>)[HIMN_MAC_KEY],
              vif.MAC,
            )
            assert.equal(await xapi.call('VM.get_power_state', vm1), 'Running')
            await sim.settled()
            assert.equal((await run(lab, 'compute-1', 'cat /sys/class/net/eth9/address')).trim(), vif.MAC)
            assert.equal((await run(lab, 'compute-1', 'xenstore-read vm-data/himn_mac')).trim(), vif.MAC)
            assert.ok(!out?.[0].diff?.includes('shut down'), 'no restart for a hot-plug')
          },
        )

        await t.test('attach is idempotent', async () => {
          const out = await natives['xenserver.himn-attach'].run!(ctx1)
          assert.deepEqual(
            out?.map((c) => c.result),
            ['unchanged'],
          )
          assert.equal((await himnVifs(xapi, vm1)).length, 1)
        })

        await t.test('without PV drivers and without consent: refused, nothing changed', async () => {
          sim.sim.db.update(vm2, { guest_metrics: NULL_REF })
          const ctx2 = context('compute-2', c2, xapi, settingsOf(sim.password, false), log)
          const vifsBefore = ((await xapi.call('VM.get_VIFs', vm2)) as string[]).length
          await assert.rejects(natives['xenserver.himn-attach'].run!(ctx2), (e: Error) => {
            assert.match(e.message, /compute-2 is Running without PV drivers/)
            assert.match(e.message, /allow_vm_restart/)
            assert.match(e.message, /Nothing was changed/)
            return true
          })
          assert.equal(((await xapi.call('VM.get_VIFs', vm2)) as string[]).length, vifsBefore)
          assert.equal(await xapi.call('VM.get_power_state', vm2), 'Running')
        })

        await t.test('without PV drivers, with consent: clean shutdown, VIF, start', async () => {
          const ctx2 = context('compute-2', c2, xapi, settingsOf(sim.password, true), log)
          const out = await natives['xenserver.himn-attach'].run!(ctx2)
          assert.equal(out?.[0].result, 'changed')
          assert.match(out?.[0].diff ?? '', /shut down[\s\S]*created VIF 9[\s\S]*started/)
          assert.equal(await xapi.call('VM.get_power_state', vm2), 'Running')
          const [vif] = await himnVifs(xapi, vm2)
          assert.equal(vif.attached, true, 'attached at boot')
          await sim.settled()
          assert.equal((await run(lab, 'compute-2', 'cat /sys/class/net/eth9/address')).trim(), vif.MAC)
          const again = await natives['xenserver.himn-attach'].run!(ctx2)
          assert.equal(again?.[0].result, 'unchanged')
        })

        await t.test('guest: no address and no xenstore MAC → found by a DHCP probe that leaves nothing', async () => {
          lab.xenstore('compute-2').rm(HIMN_MAC_KEY)
          const found = await findHimnInterface(c2, { dhcpProbeSeconds: 15 })
          assert.deepEqual({ name: found.name, how: found.how }, { name: 'eth9', how: 'dhcp' })
          assert.doesNotMatch(await run(lab, 'compute-2', 'ip -o -4 addr show dev eth9'), /inet/, 'probe released')
        })

        await t.test('guest: found by xenstore MAC, persisted for ifupdown, addressed, no default route', async () => {
          const out = (await natives['xenserver.himn-guest'].run!(ctx1)) ?? []
          assert.ok(out.some((c) => c.result === 'changed'))
          assert.ok(
            log.some((l) => /HIMN interface eth9 .* found by xenstore/.test(l)),
            log.join('\n'),
          )
          const file = await run(lab, 'compute-1', 'cat /etc/network/interfaces.d/ifcfg-eth9')
          assert.match(file, /^auto eth9$/m)
          assert.match(file, /^iface eth9 inet dhcp$/m)
          assert.match(file, /post-up ip route del default dev eth9/)
          assert.match(await run(lab, 'compute-1', 'ip -o -4 addr show dev eth9'), /inet 169\.254\.\d+\.\d+\/16/)
          assert.equal((await run(lab, 'compute-1', 'ip -4 route show default dev eth9')).trim(), '')
          assert.match(await run(lab, 'compute-1', 'ip -4 route get 169.254.0.1'), /dev eth9/)
          const again = (await natives['xenserver.himn-guest'].run!(ctx1)) ?? []
          assert.deepEqual(
            again.filter((c) => c.result !== 'unchanged'),
            [],
          )
        })

        await t.test('pre-test passes on 7.1.0 with an ext default SR', async () => {
          await natives['xenserver.pre-test'].run!(ctx1)
          assert.ok(log.some((l) => /XenServer 7\.1\.0, platform 2\.2\.0/.test(l)))
        })

        await t.test('pre-test failures say what was found and what is needed', async () => {
          const db = sim.sim.db
          const host = sim.refs.get('dom0-1')!
          const sv = db.get(host)!.software_version as Record<string, string>
          db.update(host, { software_version: { ...sv, product_version: '6.5.0', platform_version: '1.9.0' } })
          const [pool] = db.refs('pool')
          const sr = db.get(pool)!.default_SR as string
          db.update(sr, { type: 'lvm' })
          const bad = context('compute-1', c1, xapi, settingsOf('not-the-password', false), log)
          try {
            await assert.rejects(natives['xenserver.pre-test'].run!(bad), (e: Error) => {
              assert.match(e.message, /3 problems/)
              assert.match(
                e.message,
                /XenServer 6\.5\.0 \(platform 1\.9\.0\) needs hotfix XS65ESP1013, which has not been installed/,
              )
              assert.match(e.message, /default SR "[^"]+" \([0-9a-f-]+\) is of type lvm; it must be ext or nfs/)
              assert.match(e.message, /refused the login of "root"/)
              assert.doesNotMatch(e.message, /not-the-password/)
              return true
            })
            // with the hotfix applied (a pool_patch applied on the host), 6.5.0 passes
            const patch = db.create('pool_patch', { name_label: 'XS65ESP1013', version: '1.0', pool_applied: false })
            db.create('host_patch', { name_label: 'XS65ESP1013', host, pool_patch: patch, applied: true })
            db.update(sr, { type: 'nfs' })
            await natives['xenserver.pre-test'].run!(ctx1)
          } finally {
            db.update(host, { software_version: sv })
            db.update(sr, { type: 'ext' })
          }
        })

        await t.test(
          'SSH trust: key, dom0 host key pinned, then dom0Of runs on dom0; a second run changes nothing',
          async () => {
            await allowPasswordLogin(lab, 'dom0-1', sim.password)
            const out = await natives['xenserver.ssh-trust'].run!(ctx1)
            assert.deepEqual(
              out?.map((c) => c.result),
              ['changed', 'changed', 'changed'],
            )
            assert.match(await run(lab, 'compute-1', 'cat /root/.ssh/xs_known_hosts'), /^169\.254\.0\.1 ssh-ed25519 /m)
            const dom0 = await dom0Of(ctx1)
            assert.equal((await dom0.run('hostname')).stdout.trim(), 'dom0-1')
            const blob = Buffer.from([0, 1, 2, 255, 10, 13, 0x80])
            await dom0.put('/etc/xenstack-himn-test.bin', blob, { mode: 0o600 })
            assert.deepEqual(await dom0.get('/etc/xenstack-himn-test.bin'), blob)
            assert.equal((await run(lab, 'dom0-1', 'stat -c %a /etc/xenstack-himn-test.bin')).trim(), '600')
            await assert.rejects(
              dom0.run(['false']),
              /dom0-1 \(root@169\.254\.0\.1 via compute-1\): command failed with exit code 1/,
            )
            const again = await natives['xenserver.ssh-trust'].run!(ctx1)
            assert.deepEqual(
              again?.map((c) => c.result),
              ['unchanged', 'unchanged', 'unchanged'],
            )
            const keys = await run(lab, 'dom0-1', 'grep -c xenstack@compute-1 /root/.ssh/authorized_keys')
            assert.equal(keys.trim(), '1')
            assert.ok(!log.join('\n').includes(sim.password), 'the password is in no log line')
          },
        )

        await t.test(
          'the dom0 executor: env, cwd, stdin, secrets, timeouts, and node resources through it',
          async () => {
            const dom0 = await dom0Of(ctx1)
            const r = await dom0.run('printf "%s %s " "$GREETING" "$(pwd)"; cat', {
              env: { GREETING: 'hello dom0' },
              cwd: '/etc',
              stdin: 'from stdin',
            })
            assert.equal(r.stdout, 'hello dom0 /etc from stdin')
            const secret = new Secret('s3cret-on-the-line')
            await assert.rejects(dom0.run(['sh', '-c', 'echo "$0" >&2; exit 3', secret]), (e: Error) => {
              assert.match(e.message, /exit code 3/)
              assert.doesNotMatch(e.message, /s3cret-on-the-line/)
              return true
            })
            await assert.rejects(dom0.run('sleep 31.4159', { timeoutMs: 1_000 }), /did not finish within 1000 ms/)
            assert.equal(
              (await run(lab, 'dom0-1', 'pgrep -fx "sleep 31.4159" || true')).trim(),
              '',
              'the remote command was killed too',
            )
            const file = new FileResource({ path: '/etc/xenstack-himn-resource.conf', content: 'a = 1\n', mode: 0o640 })
            assert.equal((await apply(dom0, [file])).entries[0].status, 'changed')
            assert.equal((await apply(dom0, [file])).entries[0].status, 'unchanged')
            assert.equal(await run(lab, 'dom0-1', 'cat /etc/xenstack-himn-resource.conf'), 'a = 1\n')
          },
        )

        await t.test('a changed dom0 host key is refused by dom0Of and by ssh-trust', async () => {
          await reloadSshd(
            lab,
            'dom0-1',
            'k=$(awk "/^HostKey/{print \\$2}" "$f"); rm -f "$k" "$k.pub"; ssh-keygen -q -t ed25519 -N "" -f "$k"',
          )
          const dom0 = await dom0Of(ctx1)
          // the connection master was verified when it started: a new connection meets the new key
          await dom0.close()
          await assert.rejects(dom0.run('true'), (e: Error) => {
            assert.ok(e instanceof Dom0AccessError, String(e))
            assert.match(
              e.message,
              /dom0-1 .*: dom0's host key does not match the key pinned in \/root\/\.ssh\/xs_known_hosts/,
            )
            return true
          })
          await assert.rejects(natives['xenserver.ssh-trust'].run!(ctx1), /its host key changed: .*Refusing to go on/s)
        })

        await t.test(
          "pool member: pre-test through its XAPI (HOST_IS_SLAVE → slave-local login); SSH trust through the deployer's own access to dom0 (its sshd refuses passwords), pin checked by dom0's self-scan",
          async () => {
            const ctx2 = context('compute-2', c2, xapi, settingsOf(sim.password, false), log, {
              dom0: { name: 'dom0-2', xapiHost: 'xs2', ssh: lab.host('dom0-2').ssh },
            })
            await natives['xenserver.himn-guest'].run!(ctx2)
            await natives['xenserver.pre-test'].run!(ctx2)
            const bad = context('compute-2', c2, xapi, settingsOf('not-the-password', false), log)
            await assert.rejects(
              natives['xenserver.pre-test'].run!(bad),
              /compute-2: XAPI at http:\/\/169\.254\.0\.1\/ refused the login of "root"/,
            )
            const out = await natives['xenserver.ssh-trust'].run!(ctx2)
            assert.deepEqual(
              out?.map((c) => c.result),
              ['changed', 'changed', 'changed'],
            )
            assert.match(out?.[2].diff ?? '', /through dom0-2 \(direct\)/)
            assert.equal((await (await dom0Of(ctx2)).run('hostname')).stdout.trim(), 'dom0-2')
            const again = await natives['xenserver.ssh-trust'].run!(ctx2)
            assert.deepEqual(
              again?.map((c) => c.result),
              ['unchanged', 'unchanged', 'unchanged'],
            )
          },
        )

        await t.test(
          'a link-local address on another NIC does not pass for the HIMN (the xenstore MAC decides)',
          async () => {
            // the HIMN lost its address and another NIC has a zeroconf one; compute-2's guest-side key was removed
            // above, so the MAC comes from XAPI's xenstore_data
            await run(lab, 'compute-2', 'ip addr flush dev eth9; ip addr add 169.254.77.7/16 dev eth1')
            try {
              const ctx2 = context('compute-2', c2, xapi, settingsOf(sim.password, false), log)
              const out = (await natives['xenserver.himn-guest'].run!(ctx2)) ?? []
              assert.deepEqual(
                out.filter((c) => c.result !== 'unchanged').map((c) => c.resource),
                ['interface eth9'],
              )
              assert.ok(log.some((l) => /^HIMN interface eth9 \(.*\), found by xenstore$/.test(l)))
              assert.match(await run(lab, 'compute-2', 'ip -o -4 addr show dev eth9'), /inet 169\.254\.\d+\.\d+\/16/)
            } finally {
              await run(lab, 'compute-2', 'ip addr del 169.254.77.7/16 dev eth1')
            }
          },
        )

        await t.test(
          'remove undoes attach (hot-unplug, xenstore key gone); a second remove changes nothing',
          async () => {
            const attacher = new HimnAttacher(xapi)
            const r = await attacher.remove(vm1)
            assert.ok(r.changed)
            assert.deepEqual(await himnVifs(xapi, vm1), [])
            assert.equal(
              ((await xapi.call('VM.get_xenstore_data', vm1)) as Record<string, string>)[HIMN_MAC_KEY],
              undefined,
            )
            await sim.settled()
            await eventually(
              'eth9 gone from compute-1',
              async () => (await lab.exec('compute-1', ['ip', 'link', 'show', 'eth9'])).code !== 0,
            )
            assert.equal((await attacher.remove(vm1)).changed, false)
            const s = await attacher.status(vm1)
            assert.equal(s.vif, null)
            assert.equal(s.status, 'Ready. No reboot required.')
          },
        )
      } finally {
        await c1.close()
        await c2.close()
        await xapi.close()
      }
    },
  )
})
