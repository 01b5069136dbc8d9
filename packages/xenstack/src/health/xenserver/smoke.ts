/**
 * Smoke: real traffic along the paths the integration builds. Dom0 pings a controller on the management network
 * and the storage node on the storage network (through the compute VM's routes and NAT: the replies come back
 * only if the compute VM masquerades), and a controller opens the noVNC forward (the compute VM's management
 * address, port 80, DNATed to dom0). When traffic fails, the integration's own route and NAT resources are
 * planned to say which piece is missing.
 */
import { computeNatFor, dom0RoutesFor } from '../../integration/network/index.js'
import { commandEvidence } from '../step.js'
import type { Evidence, HealthTest } from '../types.js'
import { driftOf, ipOf } from './common.js'
import type { XenServerHealthEnv } from './environment.js'

type Test = HealthTest<XenServerHealthEnv>

interface Target {
  network: 'management' | 'storage'
  node: string
  address: string
}

/** One answering host per routed network: a controller (management), the storage node or a controller (storage). */
function targetsOf(env: XenServerHealthEnv): Target[] {
  const out: Target[] = []
  for (const network of ['management', 'storage'] as const) {
    const candidates = network === 'management' ? env.controllers : [...env.storageNodes, ...env.controllers]
    const n = candidates.find((c) => typeof c.data?.addresses?.[network] === 'string')
    if (n) out.push({ network, node: n.name, address: ipOf(n.data.addresses[network]) })
  }
  return out
}

async function explainNat(env: XenServerHealthEnv, compute: string): Promise<{ why: string; evidence: Evidence[] }> {
  const exec = await env.exec(compute)
  const addresses = (env.nodes.find((n) => n.name === compute)?.data?.addresses ?? {}) as Record<string, string>
  const [routes, nat] = await Promise.all([
    driftOf(await env.dom0(compute), await dom0RoutesFor(exec, compute, addresses), `${compute}'s dom0 routes`),
    driftOf(exec, await computeNatFor(exec, compute, addresses), `${compute}'s NAT`),
  ])
  const parts = [
    ...(routes.ids.length ? [`dom0 is missing ${routes.ids.join(', ')}`] : []),
    ...(nat.ids.length ? [`${compute} is missing ${nat.ids.join(', ')}`] : []),
  ]
  return {
    why: parts.length ? parts.join('; ') : 'routes and NAT rules are as deployed',
    evidence: [...routes.evidence, ...nat.evidence],
  }
}

export const dom0ThroughNat: Test = {
  id: 'xenstack.health.xenserver.smoke.test_dom0_reaches_networks_through_compute_nat',
  testset: 'smoke',
  title: 'Dom0 reaches the management and storage networks through the compute VM',
  description:
    'Dom0 has no address on the OpenStack networks; it routes through its compute VM, which masquerades for it ' +
    '(Glance downloads, iSCSI volumes and live migration depend on it). Real packets are sent from dom0.',
  steps: [
    'Pick a controller on the management network and the storage node on the storage network.',
    'From each compute node’s dom0, ping them; on no answer, find which route or NAT rule is missing.',
  ],
  duration: '5 s',
  deploymentTags: 'xenserver',
  async run(ctx) {
    const env = ctx.env
    if (!env.computes.length) ctx.skip('the environment has no compute nodes')
    const targets = await ctx.step(1, () => {
      const t = targetsOf(env)
      if (!t.length) ctx.skip('no controller or storage node has a management or storage address to reach')
      return t
    })
    await ctx.step(2, async () => {
      const failures: string[] = []
      const evidence: Evidence[] = []
      await Promise.all(
        env.computes.map(async (c) => {
          const dom0 = await env.dom0(c.name)
          for (const t of targets) {
            // three probes: one packet lost under load is not a broken path (ping succeeds on any reply)
            const cmd = ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '3', t.address]
            const r = await dom0.run(cmd, { allowedExitCodes: [0, 1, 2] })
            if (r.code === 0) continue
            const route = await dom0.run(['ip', 'route', 'get', t.address], { allowedExitCodes: [0, 1, 2] })
            const { why, evidence: ev } = await explainNat(env, c.name)
            failures.push(
              `${c.name}'s dom0 got no answer from ${t.node} at ${t.address} (${t.network} network): ${why}`,
            )
            evidence.push(
              commandEvidence(`${c.name}'s dom0: ${cmd.join(' ')}`, r),
              commandEvidence(`${c.name}'s dom0: ip route get ${t.address}`, route),
              ...ev,
            )
          }
        }),
      )
      if (failures.length)
        ctx.fail(
          `every dom0 to reach ${targets.map((t) => `${t.node} (${t.network}, ${t.address})`).join(' and ')} through its compute VM`,
          failures.join('; '),
          evidence,
        )
    })
  },
}

export const novncForward: Test = {
  id: 'xenstack.health.xenserver.smoke.test_novnc_forward',
  testset: 'smoke',
  title: 'The noVNC forward of each compute VM answers',
  description:
    'The noVNC proxy on the controllers reaches a console at the compute VM’s management address, port 80, which ' +
    'the compute VM forwards to dom0 (169.254.0.1:80, where XAPI serves consoles).',
  steps: [
    'Pick a controller.',
    'From it, send an HTTP request to each compute VM’s management address, port 80, and expect dom0’s answer.',
  ],
  duration: '3 s',
  deploymentTags: 'xenserver',
  async run(ctx) {
    const env = ctx.env
    if (!env.computes.length) ctx.skip('the environment has no compute nodes')
    const controller = await ctx.step(1, () => {
      const c = env.controllers[0]
      if (!c) ctx.skip('the environment has no controller to run the noVNC proxy')
      return c!
    })
    await ctx.step(2, async () => {
      const exec = await env.exec(controller.name)
      const failures: string[] = []
      const evidence: Evidence[] = []
      for (const c of env.computes) {
        const mgmt = c.data?.addresses?.management
        if (typeof mgmt !== 'string') {
          failures.push(`${c.name} has no management address in its record`)
          continue
        }
        const url = `http://${ipOf(mgmt)}:80/`
        const cmd = ['curl', '-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_code}', url]
        const r = await exec.run(cmd, { allowedExitCodes: Array.from({ length: 256 }, (_, i) => i) })
        const code = r.stdout.trim()
        if (r.code === 0 && /^[1-5]\d\d$/.test(code)) {
          ctx.evidence(`${controller.name}: ${url}`, `HTTP ${code}`)
          continue
        }
        const { why, evidence: ev } = await explainNat(env, c.name)
        failures.push(
          `${controller.name} got no HTTP answer from ${url} (${r.stderr.trim() || `curl exit ${r.code}`}): ${why}`,
        )
        evidence.push(commandEvidence(`${controller.name}: ${cmd.join(' ')}`, r), ...ev)
      }
      if (failures.length)
        ctx.fail("an HTTP answer from dom0 through each compute VM's port 80 forward", failures.join('; '), evidence)
    })
  },
}
