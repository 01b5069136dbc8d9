/**
 * NET's native tasks as the engine runs them, on a 2-host lab wired to its simulator with non-/24 networks, after
 * HIMN's natives (attach, guest interface, SSH trust) on compute-1: dom0 reached with `dom0Of` over the HIMN, the
 * pool through `ctx.xapi`. The other host's dom0 publishes its SSH identity through XAPI as its own dom0-prepare
 * would (directly, to keep the test short: every dom0 command over the HIMN is an ssh from the compute VM). A dry
 * run of every task changes nothing; one deploy (dom0-prepare, dom0-plugins, dom0-routes, compute-nat) lets dom0
 * reach the controller through the compute VM's NAT, makes the plugins answer through host.call_plugin, links
 * /images into the host's SR mount and has dom0-1 trust dom0-2's published identity; a second deploy changes nothing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { connect, type Xapi } from '@xenstack/xenapi'
import { withLab, type Lab } from '../../../src/lab/index.js'
import type { NativeTask, NativeTaskContext } from '../../../src/engine/tasks.js'
import type { PlanTask, ResourceChange } from '../../../src/engine/types.js'
import { natives as himn } from '../../../src/integration/himn/index.js'
import { natives as network } from '../../../src/integration/network/index.js'
import {
  natives as dom0Natives,
  converge,
  dom0Identity,
  dom0KeyPair,
  NEUTRON_CHAIN,
  poolHosts,
  publishIdentity,
  srForHost,
} from '../../../src/integration/dom0/index.js'
import { plan, pendingChanges, type Resource, type SshExecutor } from '../../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from '../../node/helpers.js'

const MANAGEMENT = '10.81.0.0/22'
const STORAGE = '10.82.0.0/23'
const COMPUTES = ['compute-1'] as const

/** XenServer's stock sshd accepts root's password (the XAPI password); the lab's dom0 is made to do the same. */
async function allowPasswordLogin(lab: Lab, dom0: string, password: string): Promise<void> {
  const logFile = join(lab.hostDir(dom0), 'log', 'sshd.log')
  const listening = () => (readFileSync(logFile, 'utf8').match(/Server listening on/g) ?? []).length
  const before = listening()
  await lab.execOk(dom0, ['chpasswd'], { stdin: `root:${password}\n` })
  await onHost(
    lab,
    dom0,
    'f=$(tr "\\0" " " < /proc/$(cat /run/sshd.pid)/cmdline | sed -n "s/.* -f \\([^ ]*\\) .*/\\1/p"); ' +
      'sed -i -e "s/^PasswordAuthentication no/PasswordAuthentication yes/" ' +
      '-e "s/^PermitRootLogin prohibit-password/PermitRootLogin yes/" "$f"; kill -HUP $(cat /run/sshd.pid)',
  )
  const deadline = Date.now() + 30_000
  while (listening() <= before) {
    if (Date.now() > deadline) assert.fail(`sshd on ${dom0} did not listen again`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

test('NET natives after HIMN on a 2-host lab: dry run, deploy with real traffic, second deploy unchanged', async (t) => {
  if (!(await labPrerequisite(t))) return
  for (const bin of ['/usr/sbin/dhclient', '/usr/sbin/ifup', '/usr/bin/ssh-keyscan', '/usr/bin/curl'])
    if (!requirePrerequisite(t, `${bin} (./scripts/setup.sh)`, () => hasExecutable(bin))) return
  await withLab(
    {
      hosts: 2,
      controllers: 1,
      storageNode: false,
      simulator: true,
      networks: { management: { cidr: MANAGEMENT }, storage: { cidr: STORAGE } },
    },
    async (lab) => {
      const sim = lab.simulator!
      const xapi: Xapi = await connect({ url: sim.url, username: sim.username, password: sim.password })
      const execs = new Map<string, SshExecutor>(COMPUTES.map((c) => [c, sshTo(lab, c)]))
      const log: string[] = []
      const settings = {
        xenserver: {
          username: { value: 'root' },
          password: { type: 'password', value: sim.password },
          allow_vm_restart: { value: false },
          install_dom0_plugins: { value: true },
          dom0_plugin_source: { value: 'bundled' },
        },
      }
      const ctx = (node: string, dryRun: boolean): NativeTaskContext => {
        const i = node.split('-')[1]
        return {
          node,
          task: { id: 'net', node } as unknown as PlanTask,
          exec: execs.get(node)!,
          settings,
          models: { release: { name: 'Ussuri on Ubuntu 18.04', version: 'ussuri-20.0' } },
          facts: {},
          nodeData: {
            vm: sim.refs.get(node),
            xapiHost: `xs${i}`,
            dom0: { name: `dom0-${i}`, xapiHost: `xs${i}` },
            addresses: lab.host(node).addresses,
          },
          xapi,
          log: (l) => log.push(l),
          signal: new AbortController().signal,
          dryRun,
        }
      }
      /**
       * A native as the engine runs it (engine/tasks.ts): its resources converged on the task's node (planned on a
       * dry run), then `run`, which a dry run skips.
       */
      const runNative = async (task: NativeTask, node: string, dryRun: boolean): Promise<ResourceChange[]> => {
        const c = ctx(node, dryRun)
        const out: ResourceChange[] = []
        if (task.resources)
          out.push(...(await converge(execs.get(node)!, (await task.resources(c)) as Resource[], { dryRun })))
        if (task.run && !dryRun) out.push(...((await task.run(c)) ?? []))
        return out
      }
      /** One deploy of NET's tasks in the graph's order. */
      const deploy = async (dryRun: boolean): Promise<ResourceChange[]> => {
        const out: ResourceChange[] = []
        for (const c of COMPUTES) out.push(...(await runNative(dom0Natives['xenserver.dom0-prepare'], c, dryRun)))
        for (const c of COMPUTES)
          for (const task of [
            dom0Natives['xenserver.dom0-plugins'],
            network['xenserver.dom0-routes'],
            network['xenserver.compute-nat'],
          ])
            out.push(...(await runNative(task, c, dryRun)))
        return out
      }
      const curl = (dom0: string) =>
        lab.exec(dom0, ['curl', '-sS', '--max-time', '10', lab.httpProbeUrl('controller-1')])
      try {
        await allowPasswordLogin(lab, 'dom0-1', sim.password)
        for (const step of ['xenserver.himn-attach', 'xenserver.himn-guest', 'xenserver.ssh-trust'])
          await himn[step].run!(ctx('compute-1', false))
        // dom0-2's part of the mesh, as compute-2's dom0-prepare publishes it (the lab's sshd has its own host key)
        const dom0b = sshTo(lab, 'dom0-2')
        try {
          await converge(dom0b, [dom0KeyPair()])
          const id = await dom0Identity(dom0b, `${lab.hostDir('dom0-2')}/ssh/ssh_host_*_key.pub`)
          const host2 = (await poolHosts(xapi)).find((h) => h.ref === sim.refs.get('dom0-2'))!
          await publishIdentity(xapi, host2, id)
        } finally {
          await dom0b.close()
        }

        await t.test('dry run of every NET task: planned, nothing changed', async () => {
          const planned = await deploy(true)
          assert.ok(planned.some((c) => c.result === 'changed'))
          // dom0's resources appear in the plan under dom0's name, as in the engine's dry run
          assert.ok(
            planned.some((c) => /^compute-1: dom0-1: dom0 plugins .* in \/etc\/xapi\.d\/plugins/.test(c.resource)),
          )
          assert.ok(planned.some((c) => c.resource.includes(`dom0-1: route ${MANAGEMENT} via 169.254.`)))
          assert.ok(planned.some((c) => c.resource.includes(`dom0-1: iptables chain filter/${NEUTRON_CHAIN}`)))
          assert.equal(await onHost(lab, 'dom0-1', `iptables -S | grep -c ${NEUTRON_CHAIN} || true`), '0\n')
          assert.equal(await onHost(lab, 'dom0-1', 'ls /etc/xapi.d/plugins | wc -l'), '0\n')
          assert.notEqual((await curl('dom0-1')).code, 0)
        })

        await t.test('one deploy: dom0 reaches the controller through the compute NAT', async () => {
          await deploy(false)
          const r = await curl('dom0-1')
          assert.equal(r.code, 0, r.stderr)
          const source = lab.host('compute-1').addresses.management!.split('/')[0]
          assert.deepEqual(JSON.parse(r.stdout), { host: 'controller-1', client: source })
        })

        await t.test('the plugins answer through host.call_plugin', async () => {
          const ref = sim.refs.get('dom0-1')!
          assert.equal(await xapi.checkPluginVersion(ref, '2.1'), '2.1')
          const route = JSON.parse(await xapi.callPlugin(ref, 'xenstack_dom0.py', 'route', { cidr: MANAGEMENT }))
          assert.equal(route.routes.length, 1, JSON.stringify(route))
          const chain = JSON.parse(await xapi.callPlugin(ref, 'xenstack_dom0.py', 'chain', { chain: NEUTRON_CHAIN }))
          assert.equal(chain.rules.length, 2)
        })

        await t.test("/images in the host's SR mount; dom0-1 trusts dom0-2's published identity", async () => {
          const sr = await srForHost(xapi, sim.refs.get('dom0-1')!)
          assert.equal(await onHost(lab, 'dom0-1', 'readlink /images'), `/var/run/sr-mount/${sr.uuid}/os-images\n`)
          assert.equal(await onHost(lab, 'dom0-1', 'test -d /images/ && echo dir'), 'dir\n')
          const pub = (await onHost(lab, 'dom0-2', 'cat /root/.ssh/id_rsa.pub')).trim().split(' ').slice(0, 2).join(' ')
          assert.ok((await onHost(lab, 'dom0-1', 'cat /root/.ssh/authorized_keys')).includes(pub))
          const address = String(await xapi.call('host.get_address', sim.refs.get('dom0-2')!))
          const hostKey = readFileSync(join(lab.hostDir('dom0-2'), 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
          const pinned = `${address} ${hostKey.trim().split(' ').slice(0, 2).join(' ')}`
          assert.ok((await onHost(lab, 'dom0-1', 'cat /root/.ssh/known_hosts')).split('\n').includes(pinned))
          // and dom0-1 published its own identity for the others
          const host1 = (await poolHosts(xapi)).find((h) => h.ref === sim.refs.get('dom0-1'))!
          assert.match(host1.otherConfig['xenstack-dom0-ssh-key'] ?? '', /^ssh-rsa /)
        })

        await t.test('a second deploy changes nothing', async () => {
          const again = await deploy(false)
          assert.deepEqual(
            again.filter((c) => c.result !== 'unchanged'),
            [],
          )
          for (const c of COMPUTES) {
            const nat = (await network['xenserver.compute-nat'].resources!(ctx(c, false))) as Resource[]
            assert.deepEqual(pendingChanges(await plan(execs.get(c)!, nat)), [])
          }
          assert.ok(!log.join('\n').includes(sim.password), 'the password is in no log line')
        })
      } finally {
        for (const e of execs.values()) await e.close()
        await xapi.close()
      }
    },
  )
})
