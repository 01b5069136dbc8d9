/**
 * The compute and controller natives applied through the engine's task runner on one lab (a compute VM with its
 * simulator-backed pool, a controller): the dry-run plan changes nothing; one run writes nova-compute.conf, the OVS
 * agent (VLAN bridge_mappings to the Dom0 bridge XAPI gives for the VIF of the compute VM's NIC), rootwrap,
 * multipath and the image-cache cron (root's other entries kept) and restarts each service once through its init
 * script; the controller shares console tokens through memcache; a second run changes nothing and restarts
 * nothing; the password is in the files and nowhere in task output.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Xapi } from '@xenstack/xenapi'
import { withLab, type Lab } from '../../../src/lab/index.js'
import { createTaskRunner, type NativeTask } from '../../../src/engine/tasks.js'
import { nodeResourceVerbs } from '../../../src/engine/node-access.js'
import type { PlanTask, TaskOutcome } from '../../../src/engine/types.js'
import type { NodeExecutor } from '../../../src/engine/ports.js'
import { natives as compute } from '../../../src/integration/compute/index.js'
import { natives as controller } from '../../../src/integration/controller/index.js'
import { checkGuestTools, guestAgentIn } from '../../../src/integration/compute/guest-tools.js'
import type { SshExecutor } from '../../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from '../../node/helpers.js'

const SECRET = 'Lab-Natives-Secret-42'

/** section → key → value (oslo.config: the last occurrence wins). */
function parseIni(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>()
  let section = 'DEFAULT'
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#') || line.startsWith(';')) continue
    const s = /^\[([^\]]+)\]$/.exec(line)
    if (s) {
      section = s[1]
      if (!out.has(section)) out.set(section, {})
      continue
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line)
    if (kv) out.set(section, { ...(out.get(section) ?? {}), [kv[1]]: kv[2] })
  }
  return out
}
const KEEP_CRON = '0 1 * * * /usr/local/bin/keep-me'

/** An init script that only records restarts (the lab runs no OpenStack services). */
const initScript = (name: string) =>
  `#!/bin/sh\ncase "$1" in\n  status) exit 0 ;;\n  restart) echo restart >> /var/log/${name}.restarts ;;\nesac\nexit 0\n`

async function installInitScripts(lab: Lab, host: string, names: string[]): Promise<void> {
  for (const n of names)
    await onHost(lab, host, `cat > /etc/init.d/${n} <<'EOF'\n${initScript(n)}EOF\nchmod 755 /etc/init.d/${n}`)
}

const restarts = async (lab: Lab, host: string, name: string) =>
  Number((await onHost(lab, host, `cat /var/log/${name}.restarts 2>/dev/null | wc -l`)).trim())

function planTask(node: string, handler: string): PlanTask {
  return {
    key: `${node}/${handler}`,
    id: handler.replace('xenserver.', 'xenserver-'),
    node,
    type: 'native',
    parameters: { handler },
    requires: [],
    requiresAny: [],
    syncPoint: false,
    limiters: [],
    expectedMs: 0,
    retries: 0,
    retryIntervalMs: 0,
    source: 'xenserver',
  }
}

test('compute and controller natives on the lab: dry run, one run, second run unchanged, no password in output', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab(
    { hosts: 1, controllers: 1, storageNode: false, httpProbePort: false, simulator: true },
    async (lab) => {
      const sim = lab.simulator!
      const xapi: Xapi = await connect({ url: sim.url, username: sim.username, password: sim.password })
      const execs = new Map<string, SshExecutor>([
        ['compute-1', sshTo(lab, 'compute-1')],
        ['controller-1', sshTo(lab, 'controller-1')],
      ])
      const logs: string[] = []
      const nodeData: Record<string, Record<string, unknown>> = {
        'compute-1': { vm: sim.refs.get('compute-1'), addresses: lab.host('compute-1').addresses },
        'controller-1': { addresses: lab.host('controller-1').addresses },
      }
      const runner = createTaskRunner({
        access: {
          executor: (node) => execs.get(node) as unknown as NodeExecutor,
          resources: nodeResourceVerbs,
        },
        settings: {
          xenserver: {
            username: { value: 'root' },
            password: { type: 'password', value: SECRET },
            image_handler: { value: 'direct_vhd' },
            sr_matching_filter: { value: 'default-sr:true' },
            allow_vm_restart: { value: false },
          },
        },
        models: {
          release: { name: 'OpenStack on Ubuntu', version: 'mitaka-9.0' },
          cluster: { net_segment_type: 'vlan', public_vip: '172.16.0.3' },
        },
        natives: new Map<string, NativeTask>([...Object.entries(compute), ...Object.entries(controller)]),
        xapi: () => xapi,
        nodeData: (node) => nodeData[node],
        log: (node, task, line) => logs.push(`${node} ${task} ${line}`),
      })
      const steps: [string, string][] = [
        ['compute-1', 'xenserver.guest-tools'],
        ['compute-1', 'xenserver.nova-compute'],
        ['compute-1', 'xenserver.neutron-agent'],
        ['compute-1', 'xenserver.compute-extras'],
        ['controller-1', 'xenserver.controller-vnc-cache'],
      ]
      const runAll = async (): Promise<TaskOutcome[]> => {
        const out: TaskOutcome[] = []
        for (const [node, handler] of steps) {
          const o = await runner(planTask(node, handler), { signal: new AbortController().signal, attempt: 1 })
          assert.equal(o.status, 'succeeded', `${node} ${handler}: ${JSON.stringify(o.error)}`)
          out.push(o)
        }
        return out
      }
      const changed = (outcomes: TaskOutcome[]) =>
        outcomes.flatMap((o) => (o.changes ?? []).filter((c) => c.result === 'changed').map((c) => c.resource))
      try {
        // The compute VM as Fuel left it: a root crontab, a multipath.conf blacklisting hd only, nova-compute.conf
        // with a key of its own; the controller's nova.conf with keystone's memcache servers.
        await installInitScripts(lab, 'compute-1', ['nova-compute', 'neutron-openvswitch-agent', 'multipath-tools'])
        await installInitScripts(lab, 'controller-1', ['nova-novncproxy', 'nova-consoleauth'])
        await onHost(lab, 'compute-1', `echo '${KEEP_CRON}' | crontab -u root -`)
        await onHost(lab, 'compute-1', `printf 'blacklist {\\n  devnode "^hd[a-z]"\\n}\\n' > /etc/multipath.conf`)
        await onHost(
          lab,
          'compute-1',
          `mkdir -p /etc/nova && printf '[DEFAULT]\\n# ours\\nhost = compute-1\\n' > /etc/nova/nova-compute.conf`,
        )
        await onHost(
          lab,
          'controller-1',
          `mkdir -p /etc/nova && printf '[DEFAULT]\\ndebug = False\\n[keystone_authtoken]\\nmemcached_servers = 10.9.0.2:11211,10.9.0.3:11211\\n[cache]\\nenable = True\\n' > /etc/nova/nova.conf`,
        )
        const snapshot = () =>
          onHost(
            lab,
            'compute-1',
            'cat /etc/nova/nova-compute.conf /etc/multipath.conf; crontab -l -u root; ls /etc/neutron 2>&1; true',
          )

        await t.test('dry run (plan of every resource) changes nothing', async () => {
          const before = await snapshot()
          const dry = await Promise.all(
            steps
              .filter(([, h]) => h !== 'xenserver.guest-tools')
              .map(async ([node, handler]) => {
                const native = { ...compute, ...controller }[handler]
                const ctx = {
                  node,
                  task: planTask(node, handler),
                  exec: execs.get(node)! as unknown as NodeExecutor,
                  settings: {
                    xenserver: { username: { value: 'root' }, password: { type: 'password', value: SECRET } },
                  },
                  models: {
                    release: { version: 'mitaka-9.0' },
                    cluster: { net_segment_type: 'vlan', public_vip: '172.16.0.3' },
                  },
                  facts: {},
                  xapi,
                  nodeData: nodeData[node],
                  log: () => {},
                  signal: new AbortController().signal,
                  dryRun: true,
                }
                return nodeResourceVerbs.plan(ctx.exec, await native.resources!(ctx))
              }),
          )
          assert.ok(dry.flat().some((e) => e.inSync === false))
          assert.equal(await snapshot(), before)
          assert.equal(await restarts(lab, 'compute-1', 'nova-compute'), 0)
        })

        await t.test(
          'one run: the files of the release, VLAN mapped to the Dom0 bridge, each service restarted once',
          async () => {
            const first = await runAll()
            assert.ok(changed(first).length > 20, changed(first).join('\n'))
            const nova = parseIni(await onHost(lab, 'compute-1', 'cat /etc/nova/nova-compute.conf'))
            const mgmt = lab.host('compute-1').addresses.management!.split('/')[0]
            assert.deepEqual(nova.get('DEFAULT'), {
              host: 'compute-1',
              compute_driver: 'xenapi.XenAPIDriver',
              force_config_drive: 'True',
            })
            assert.deepEqual(nova.get('vnc'), {
              enabled: 'True',
              novncproxy_base_url: 'http://172.16.0.3:6080/vnc_auto.html',
              vncserver_proxyclient_address: mgmt,
            })
            assert.deepEqual(nova.get('xenserver'), {
              connection_url: 'http://169.254.0.1',
              connection_username: 'root',
              connection_password: SECRET,
              vif_driver: 'nova.virt.xenapi.vif.XenAPIOpenVswitchDriver',
              ovs_integration_bridge: 'br-int',
              cache_images: 'all',
              image_upload_handler: 'nova.virt.xenapi.image.glance.GlanceStore',
              sr_matching_filter: 'default-sr:true',
              agent_version_timeout: '300',
            })
            // The bridge XAPI has for the network of the VIF whose MAC is the compute VM's eth0.
            const mac = (await onHost(lab, 'compute-1', 'cat /sys/class/net/eth0/address')).trim()
            const vifs = (await xapi.call('VIF.get_all_records')) as Record<string, { MAC: string; network: string }>
            const vif = Object.values(vifs).find((v) => v.MAC.toLowerCase() === mac)!
            const bridge = String(await xapi.call('network.get_bridge', vif.network))
            assert.ok(bridge)
            const agent = parseIni(await onHost(lab, 'compute-1', 'cat /etc/neutron/plugins/ml2/openvswitch_agent.ini'))
            assert.deepEqual(agent.get('ovs'), {
              integration_bridge: 'br-int',
              bridge_mappings: `physnet2:${bridge}`,
              of_listen_address: mgmt,
              ovsdb_connection: 'tcp:169.254.0.1:6640',
            })
            assert.equal(agent.get('agent')?.root_helper, 'neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf')
            assert.deepEqual(parseIni(await onHost(lab, 'compute-1', 'cat /etc/neutron/rootwrap.conf')).get('xenapi'), {
              xenapi_connection_url: 'http://169.254.0.1',
              xenapi_connection_username: 'root',
              xenapi_connection_password: SECRET,
            })
            assert.equal(
              await onHost(lab, 'compute-1', 'cat /etc/multipath.conf'),
              'blacklist {\n  devnode "^(hd|xvd)[a-z]"\n}\n',
            )
            const cron = await onHost(lab, 'compute-1', 'crontab -l -u root')
            assert.ok(cron.includes(KEEP_CRON), cron)
            assert.equal(
              cron.match(/destroy_cached_images --config-file=\/etc\/nova\/nova-compute.conf/g)?.length,
              1,
              cron,
            )
            assert.equal((await onHost(lab, 'compute-1', 'stat -c %a /usr/bin/destroy_cached_images')).trim(), '700')
            const ctl = parseIni(await onHost(lab, 'controller-1', 'cat /etc/nova/nova.conf'))
            assert.deepEqual(ctl.get('cache'), {
              enabled: 'True',
              backend: 'oslo_cache.memcache_pool',
              memcache_servers: '10.9.0.2:11211,10.9.0.3:11211',
            })
            assert.equal(ctl.get('DEFAULT')?.memcached_servers, '10.9.0.2:11211,10.9.0.3:11211')
            for (const s of ['nova-compute', 'neutron-openvswitch-agent', 'multipath-tools'])
              assert.equal(await restarts(lab, 'compute-1', s), 1, s)
            for (const s of ['nova-novncproxy', 'nova-consoleauth'])
              assert.equal(await restarts(lab, 'controller-1', s), 1, s)
          },
        )

        await t.test('second run: zero changes, no restart', async () => {
          const second = await runAll()
          assert.deepEqual(changed(second), [])
          for (const s of ['nova-compute', 'neutron-openvswitch-agent', 'multipath-tools'])
            assert.equal(await restarts(lab, 'compute-1', s), 1, s)
          assert.equal(await restarts(lab, 'controller-1', 'nova-novncproxy'), 1)
          const output = JSON.stringify(second) + JSON.stringify(logs)
          assert.ok(!output.includes(SECRET), 'the password is in no task output or log')
          assert.ok(
            logs.some((l) => l.includes('physnet2:')),
            logs.join('\n'),
          )
        })

        await t.test(
          'guest tools: found through XAPI; without agent or XAPI a clear refusal unless restarts are allowed',
          async () => {
            const agent = await guestAgentIn(execs.get('compute-1')!)
            if (agent) return t.skip(`the lab host has a guest agent (${agent}): the refusal cannot be shown here`)
            const log: string[] = []
            const ctx = (allow: boolean) => ({
              node: 'compute-1',
              task: planTask('compute-1', 'xenserver.guest-tools'),
              exec: execs.get('compute-1')! as unknown as NodeExecutor,
              settings: { xenserver: { allow_vm_restart: { value: allow } } },
              facts: {},
              log: (l: string) => log.push(l),
              signal: new AbortController().signal,
              dryRun: false,
            })
            // No pool connection: only the guest side can be checked, and it has no agent.
            await assert.rejects(
              () => checkGuestTools(ctx(false)),
              (e: Error) =>
                e.message.startsWith('node compute-1: the XenServer guest tools are missing') &&
                e.message.includes('Linux/install.sh') &&
                e.message.includes('allow restarting compute VMs'),
            )
            const allowed = await checkGuestTools(ctx(true))
            assert.deepEqual(allowed, [{ resource: 'guest tools', result: 'unchanged', diff: 'missing (warning)' }])
            assert.ok(log.some((l) => l.startsWith('warning: node compute-1: the XenServer guest tools are missing')))
            // With the pool: the simulator reports PV drivers for the compute VM, which is enough.
            const seen = await checkGuestTools({ ...ctx(false), xapi, nodeData: nodeData['compute-1'] })
            assert.deepEqual(seen, [{ resource: 'guest tools', result: 'unchanged' }])
            assert.match(log.at(-1)!, /XAPI reports PV drivers 7\.1\.0 for VM/)
          },
        )

        await t.test('the password is in no task output of the first run either (diffs show ***)', async () => {
          // Change the password in nova-compute.conf by hand: the diff of the repair must not show either value.
          await onHost(
            lab,
            'compute-1',
            `sed -i 's/^connection_password = .*/connection_password = Old-Value-9/' /etc/nova/nova-compute.conf`,
          )
          const repair = await runAll()
          const text = JSON.stringify(repair)
          assert.ok(
            changed(repair).some((r) => r.includes('connection_password')),
            changed(repair).join('\n'),
          )
          assert.ok(!text.includes(SECRET) && !text.includes('Old-Value-9'), text)
          assert.equal(await restarts(lab, 'compute-1', 'nova-compute'), 2)
        })
      } finally {
        await Promise.all([...execs.values()].map((e) => e.close()))
        await xapi.close().catch(() => {})
      }
    },
  )
})
