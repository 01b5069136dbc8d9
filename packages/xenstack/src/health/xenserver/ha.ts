/**
 * HA and platform services: checks that only apply with several controllers (shared noVNC console tokens,
 * LP#1576218) or with additional components (Ceilometer's XenAPI inspector on the compute nodes).
 */
import { DOM0_HIMN_ADDRESS } from '../../integration/dom0-access.js'
import { openstackReleaseOf } from '../../integration/compute/release.js'
import {
  MEMCACHED_SOURCES,
  NOVA_CONF,
  memcachedServersIn,
  vncCacheKeys,
} from '../../integration/controller/vnc-cache.js'
import type { HealthTest } from '../types.js'
import { onEveryNode } from './common.js'
import type { XenServerHealthEnv } from './environment.js'
import { parseIni } from './ini-check.js'

type Test = HealthTest<XenServerHealthEnv>

export const consoleTokensShared: Test = {
  id: 'xenstack.health.xenserver.ha.test_console_tokens_shared',
  testset: 'ha',
  title: 'Every controller shares noVNC console tokens through memcached',
  description:
    'With several controllers a console opened through one noVNC proxy must be authorised by whichever controller ' +
    'the request reaches (LP#1576218): nova.conf carries the token-cache keys xenstack writes for the release, ' +
    'pointing at the same memcached servers on every controller.',
  steps: [
    'Read nova.conf on every controller and the memcached servers it names.',
    'Compare its token-cache keys with what xenstack writes for the release.',
    'Check that every controller names the same servers.',
  ],
  duration: '2 s',
  deploymentTags: 'xenserver, ha',
  async run(ctx) {
    const env = ctx.env
    const found = await ctx.step(1, async () => {
      const r = await onEveryNode(env.controllers, async (n) => {
        const out = await (await env.exec(n.name)).run(['cat', NOVA_CONF], { allowedExitCodes: [0, 1] })
        return out.code === 0 ? out.stdout : undefined
      })
      const missing = r.filter((x) => x.value === undefined).map((x) => x.node.name)
      if (missing.length) ctx.fail(`${NOVA_CONF} on every controller`, `it is missing on ${missing.join(', ')}`)
      const unnamed = r.filter((x) => !memcachedServersIn(x.value!)).map((x) => x.node.name)
      if (unnamed.length)
        ctx.fail(
          `memcached servers named in ${NOVA_CONF} (${MEMCACHED_SOURCES.map(([s, k]) => `[${s}] ${k}`).join(', ')})`,
          `none on ${unnamed.join(', ')}`,
        )
      return r.map((x) => ({ node: x.node.name, text: x.value!, servers: memcachedServersIn(x.value!)! }))
    })
    await ctx.step(2, async () => {
      const release = openstackReleaseOf(await env.nativeContext(found[0]!.node))
      const problems: string[] = []
      for (const f of found) {
        const parsed = parseIni(f.text).sections
        for (const [section, key, value] of vncCacheKeys(release, f.servers.servers)) {
          const have = parsed.get(section)?.get(key)
          if (value === null && have !== undefined)
            problems.push(
              `${f.node}: [${section}] ${key} is set (${have}) but is not read in OpenStack ${release.series}`,
            )
          else if (value !== null && have !== value)
            problems.push(`${f.node}: [${section}] ${key} = ${have ?? '(missing)'}, expected ${value}`)
        }
      }
      if (problems.length)
        ctx.fail(`the console token cache keys of OpenStack ${release.series} in ${NOVA_CONF}`, problems.join('; '))
    })
    await ctx.step(3, () => {
      for (const f of found)
        ctx.evidence(`${f.node}: memcached servers`, `${f.servers.servers} (from ${f.servers.from})`)
      if (new Set(found.map((f) => f.servers.servers)).size > 1)
        ctx.fail(
          'the same memcached servers on every controller',
          found.map((f) => `${f.node}: ${f.servers.servers} (${f.servers.from})`).join('; '),
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
      const r = await onEveryNode(env.computes, async (n) => {
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
      const bad = r.filter((x) => x.value.length)
      if (bad.length)
        ctx.fail(
          'the XenAPI inspector over the HIMN in ceilometer.conf',
          bad.map((b) => `${b.node.name}: ${b.value.join('; ')}`).join(' / '),
        )
    })
  },
}
