/**
 * HA and platform services: checks that only apply with several controllers (shared noVNC console tokens,
 * LP#1576218) or with additional components (Ceilometer's XenAPI inspector on the compute nodes).
 */
import { DOM0_HIMN_ADDRESS } from '../../integration/dom0-access.js'
import type { HealthTest } from '../types.js'
import { perNode, throwErrors } from './common.js'
import type { XenServerHealthEnv } from './environment.js'
import { parseIni } from './ini-check.js'

type Test = HealthTest<XenServerHealthEnv>

export const consoleTokensShared: Test = {
  id: 'xenstack.health.xenserver.ha.test_console_tokens_shared',
  testset: 'ha',
  title: 'Every controller shares noVNC console tokens through memcached',
  description:
    'With several controllers a console opened through one noVNC proxy must be authorised by whichever controller ' +
    'the request reaches: nova.conf [cache] enabled with the same memcached_servers everywhere (LP#1576218).',
  steps: ['Read nova.conf [cache] on every controller.', 'Check that caching is on and the servers are the same.'],
  duration: '2 s',
  deploymentTags: 'xenserver, ha',
  async run(ctx) {
    const env = ctx.env
    const found = await ctx.step(1, async () => {
      const r = await perNode(env.controllers, async (n) => {
        const out = await (await env.exec(n.name)).run(['cat', '/etc/nova/nova.conf'], { allowedExitCodes: [0, 1] })
        return out.code === 0 ? parseIni(out.stdout).sections.get('cache') : undefined
      })
      throwErrors(r)
      return r.map((x) => ({
        node: x.node.name,
        enabled: x.value?.get('enabled'),
        servers: x.value?.get('memcached_servers'),
      }))
    })
    await ctx.step(2, () => {
      for (const f of found)
        ctx.evidence(`${f.node}: nova.conf [cache]`, { enabled: f.enabled, memcached_servers: f.servers })
      const off = found.filter((f) => !/^true$/i.test(f.enabled ?? '') || !f.servers)
      if (off.length)
        ctx.fail(
          '[cache] enabled = True with memcached_servers on every controller',
          off
            .map(
              (f) =>
                `${f.node}: enabled = ${f.enabled ?? '(missing)'}, memcached_servers = ${f.servers ?? '(missing)'}`,
            )
            .join('; '),
        )
      const distinct = new Set(found.map((f) => f.servers))
      if (distinct.size > 1)
        ctx.fail(
          'the same memcached_servers on every controller',
          found.map((f) => `${f.node}: ${f.servers}`).join('; '),
        )
    })
  },
}

export const ceilometerInspector: Test = {
  id: 'xenstack.health.xenserver.tests_platform.test_ceilometer_xenapi_inspector',
  testset: 'tests_platform',
  title: 'Ceilometer polls the compute nodes through the XenAPI inspector',
  description: 'ceilometer-polling in each compute VM reads instance meters from XAPI over the HIMN.',
  steps: ['Read ceilometer.conf on every compute node and check the inspector and its XAPI connection.'],
  duration: '2 s',
  deploymentTags: 'xenserver, additional_components, ceilometer',
  async run(ctx) {
    const env = ctx.env
    if (!env.computes.length) ctx.skip('the environment has no compute nodes')
    await ctx.step(1, async () => {
      const r = await perNode(env.computes, async (n) => {
        const out = await (
          await env.exec(n.name)
        ).run(['cat', '/etc/ceilometer/ceilometer.conf'], {
          allowedExitCodes: [0, 1],
        })
        if (out.code !== 0) return ['/etc/ceilometer/ceilometer.conf is missing']
        const s = parseIni(out.stdout).sections
        const problems: string[] = []
        if (s.get('DEFAULT')?.get('hypervisor_inspector') !== 'xenapi')
          problems.push(
            `[DEFAULT] hypervisor_inspector = ${s.get('DEFAULT')?.get('hypervisor_inspector') ?? '(missing)'}, expected xenapi`,
          )
        if (s.get('xenapi')?.get('connection_url') !== `http://${DOM0_HIMN_ADDRESS}`)
          problems.push(
            `[xenapi] connection_url = ${s.get('xenapi')?.get('connection_url') ?? '(missing)'}, expected http://${DOM0_HIMN_ADDRESS}`,
          )
        return problems
      })
      throwErrors(r)
      const bad = r.filter((x) => x.value!.length)
      if (bad.length)
        ctx.fail(
          'the XenAPI inspector over the HIMN in ceilometer.conf',
          bad.map((b) => `${b.node.name}: ${b.value!.join('; ')}`).join(' / '),
        )
    })
  },
}
