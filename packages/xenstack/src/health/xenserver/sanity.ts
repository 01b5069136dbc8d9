/**
 * Sanity: quick answers from what the integration deployed — the HIMN interface of each compute VM, XAPI over the
 * HIMN with the configured credentials, the hosts' platform and hotfixes, the default SR, and the dom0 plugins.
 * Expected values come from the integration's own modules (the pre-test, the dom0 plugin table and file set).
 */
import { xenserverSettings } from '../../integration/context.js'
import { openstackReleaseOf } from '../../integration/compute/release.js'
import {
  checkDom0PluginVersion,
  dom0PluginResources,
  dom0PluginSourceOf,
  pluginFilesFrom,
  REQUIRED_DOM0_PLUGIN_VERSION,
} from '../../integration/dom0/plugins.js'
import { checkDefaultSr, checkPlatform, checkXapiOverHimn, hostOfVm } from '../../integration/himn/pretest.js'
import { computeVmOf } from '../../integration/context.js'
import { ipv4Interfaces } from '../../integration/network/addresses.js'
import type { HealthTest } from '../types.js'
import { driftOf, onEveryNode } from './common.js'
import type { XenServerHealthEnv } from './environment.js'

type Test = HealthTest<XenServerHealthEnv>
const TAGS = 'xenserver'

/** The XAPI hosts the compute VMs run on (ref, name), with the compute nodes on each. */
export async function computeHosts(env: XenServerHealthEnv) {
  const found = await onEveryNode(env.computes, async (n) => {
    const ctx = await env.nativeContext(n.name)
    const xapi = env.xapi(n.name)
    const vm = await computeVmOf(ctx, xapi)
    const ref = await hostOfVm(xapi, vm.ref)
    const name = String(await xapi.call('host.get_name_label', ref))
    return { ref, name, xapi }
  })
  const hosts = new Map<
    string,
    { ref: string; name: string; xapi: ReturnType<XenServerHealthEnv['xapi']>; nodes: string[] }
  >()
  for (const f of found) {
    const key = `${f.value.xapi.url} ${f.value.ref}`
    const h = hosts.get(key) ?? { ...f.value, nodes: [] }
    h.nodes.push(f.node.name)
    hosts.set(key, h)
  }
  return [...hosts.values()]
}

export const himnInterface: Test = {
  id: 'xenstack.health.xenserver.sanity.test_himn_interface',
  testset: 'sanity',
  title: 'The compute VMs have their HIMN interface up, without a default route through it',
  description:
    'Each compute VM reaches its dom0 (169.254.0.1) over the host internal management network; nova and neutron ' +
    'call XAPI there. A default route through the HIMN would send the VM’s traffic into dom0.',
  steps: [
    'Find the compute VM’s interface with an address in 169.254.0.0/16.',
    'Check that the interface is up.',
    'Check that no default route goes through it.',
  ],
  duration: '2 s',
  deploymentTags: TAGS,
  async run(ctx) {
    const env = ctx.env
    const found = await ctx.step(1, async () => {
      const r = await onEveryNode(env.computes, async (n) => {
        const ifs = await ipv4Interfaces(await env.exec(n.name))
        return { ifs, himn: ifs.find((i) => i.address.startsWith('169.254.')) }
      })
      const missing = r.filter((x) => !x.value.himn)
      if (missing.length)
        ctx.fail(
          `an interface with an address in 169.254.0.0/16 (the HIMN) on ${missing.map((m) => m.node.name).join(', ')}`,
          missing
            .map(
              (m) =>
                `${m.node.name} has ${m.value.ifs.map((i) => `${i.name} ${i.address}`).join(', ') || 'no IPv4 address'}`,
            )
            .join('; '),
        )
      return r.map((x) => ({ node: x.node.name, dev: x.value.himn!.name, address: x.value.himn!.address }))
    })
    await ctx.step(2, async () => {
      const down: string[] = []
      for (const f of found) {
        const r = await (await env.exec(f.node)).run(['ip', '-o', 'link', 'show', 'dev', f.dev])
        ctx.evidence(`${f.node}: ip link show dev ${f.dev}`, r.stdout.trim())
        const flags = /<([^>]*)>/.exec(r.stdout)?.[1]?.split(',') ?? []
        if (!flags.includes('UP') || !flags.includes('LOWER_UP')) down.push(`${f.node} ${f.dev} <${flags.join(',')}>`)
      }
      if (down.length) ctx.fail('the HIMN interface up (flags UP and LOWER_UP)', down.join('; '))
    })
    await ctx.step(3, async () => {
      const bad: string[] = []
      for (const f of found) {
        const r = await (await env.exec(f.node)).run(['ip', '-4', 'route', 'show', 'default'])
        const through = r.stdout.split('\n').filter((l) => new RegExp(`\\bdev ${f.dev}\\b`).test(l))
        if (through.length) {
          ctx.evidence(`${f.node}: ip -4 route show default`, r.stdout.trim())
          bad.push(`${f.node}: ${through.join(' | ')}`)
        }
      }
      if (bad.length) ctx.fail('no default route through the HIMN interface', bad.join('; '))
    })
  },
}

export const xapiOverHimn: Test = {
  id: 'xenstack.health.xenserver.sanity.test_xapi_over_himn',
  testset: 'sanity',
  title: 'XAPI answers over the HIMN from every compute VM with the configured credentials',
  description:
    'nova, neutron and ceilometer call XAPI at http://169.254.0.1/ with the XenServer username and password of ' +
    'the environment. The check logs in from each compute VM exactly as they do, then logs out.',
  steps: ['Log in to XAPI at http://169.254.0.1/ from each compute VM with the configured credentials, and log out.'],
  duration: '2 s',
  deploymentTags: TAGS,
  async run(ctx) {
    const env = ctx.env
    await ctx.step(1, async () => {
      const r = await onEveryNode(env.computes, async (n) => {
        const s = xenserverSettings(await env.nativeContext(n.name))
        return checkXapiOverHimn(await env.exec(n.name), s.username, s.password)
      })
      const failures = r.flatMap((x) => x.value)
      if (failures.length)
        ctx.fail('a successful login to XAPI over the HIMN from every compute VM', failures.join('; '))
    })
  },
}

export const platformVersion: Test = {
  id: 'xenstack.health.xenserver.sanity.test_platform_version',
  testset: 'sanity',
  title: 'The XenServer hosts run a supported platform with the required hotfixes',
  description:
    'Platform 2.1.0 (XenServer 7.0) or later, or XenServer 6.5.0 with hotfix XS65ESP1013 (Cinder iSCSI needs it), ' +
    'read from the hosts’ software_version and patch/update records.',
  steps: ['Find the hosts the compute VMs run on.', 'Check each host’s platform version and required hotfixes.'],
  duration: '2 s',
  deploymentTags: TAGS,
  async run(ctx) {
    const hosts = await ctx.step(1, () => computeHosts(ctx.env))
    await ctx.step(2, async () => {
      const failures: string[] = []
      for (const h of hosts) {
        const rec = (await h.xapi.call('host.get_software_version', h.ref)) as Record<string, string>
        ctx.evidence(`host ${h.name}: software_version`, {
          product_version: rec.product_version,
          platform_version: rec.platform_version,
        })
        failures.push(...(await checkPlatform(h.xapi, h.ref)))
      }
      if (failures.length)
        ctx.fail('a supported platform with its required hotfixes on every host', failures.join('; '))
    })
  },
}

export const defaultSr: Test = {
  id: 'xenstack.health.xenserver.sanity.test_default_sr',
  testset: 'sanity',
  title: 'The pool’s default SR is file based (ext or nfs)',
  description: 'nova’s XenAPI driver and the dom0 plugins handle VHD files directly in the SR.',
  steps: ['Read the default SR of each pool and check its type.'],
  duration: '1 s',
  deploymentTags: TAGS,
  async run(ctx) {
    await ctx.step(1, async () => {
      const failures: string[] = []
      for (const p of ctx.env.pools) failures.push(...(await checkDefaultSr(p.xapi)).map((f) => `pool ${p.name}: ${f}`))
      if (failures.length) ctx.fail('a default SR of type ext or nfs in every pool', failures.join('; '))
    })
  },
}

export const dom0Plugins: Test = {
  id: 'xenstack.health.xenserver.sanity.test_dom0_plugins',
  testset: 'sanity',
  title: 'The dom0 plugins are installed and answer a version the release accepts',
  description:
    'The XenAPI client checks the dom0 plugin version when it opens a session and refuses to work on a mismatch; ' +
    'a missing plugin file fails only when nova first calls it.',
  steps: [
    'Check that every plugin file of the configured set is in /etc/xapi.d/plugins on each dom0, unchanged.',
    'Call the release’s version plugin through host.call_plugin on each host and compare.',
  ],
  duration: '3 s',
  deploymentTags: TAGS,
  async run(ctx) {
    const env = ctx.env
    if (!env.computes.length) ctx.skip('the environment has no compute nodes')
    await ctx.step(1, async () => {
      const first = await env.nativeContext(env.computes[0]!.name)
      const source = dom0PluginSourceOf(first)
      if (!source) ctx.skip('installing dom0 plugins is switched off (xenserver.install_dom0_plugins)')
      const files = await pluginFilesFrom(source!, ctx.signal)
      const r = await onEveryNode(env.computes, async (n) =>
        driftOf(await env.dom0(n.name), dom0PluginResources(files), `${n.name}'s dom0 plugins`),
      )
      const drift = r.filter((x) => x.value.ids.length)
      if (drift.length)
        ctx.fail(
          `the ${files.length} plugin files of the configured set in /etc/xapi.d/plugins on every dom0`,
          drift.map((d) => `${d.node.name}'s dom0: ${d.value.ids.join(', ')}`).join('; '),
          drift.flatMap((d) => d.value.evidence),
        )
    })
    await ctx.step(2, async () => {
      const series = openstackReleaseOf(await env.nativeContext(env.computes[0]!.name)).series
      const failures: string[] = []
      for (const h of await computeHosts(env)) {
        try {
          const v = await checkDom0PluginVersion(h.xapi, h, series)
          ctx.evidence(`host ${h.name}: ${REQUIRED_DOM0_PLUGIN_VERSION[series].plugin}`, v)
        } catch (e) {
          failures.push((e as Error).message)
        }
      }
      if (failures.length)
        ctx.fail(
          `${REQUIRED_DOM0_PLUGIN_VERSION[series].plugin} ${REQUIRED_DOM0_PLUGIN_VERSION[series].version} or a later minor on every host (OpenStack ${series})`,
          failures.join('; '),
        )
    })
  },
}
