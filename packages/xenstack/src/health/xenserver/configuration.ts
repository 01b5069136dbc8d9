/**
 * Configuration: the files and dom0 state the integration writes, compared with what the integration itself says
 * they must be for this environment and release — nova-compute.conf, the OVS agent file and rootwrap `[xenapi]`
 * from the compute config table (`renderFile` over the same inputs the native tasks use), dom0's neutron chain,
 * guest console-log rotation, the bridge blacklist and the SR links from dom0 preparation's own resources.
 */
import { filePath, KEY_RULES, renderFile, appliesTo, type ConfigFile } from '../../integration/compute/config-table.js'
import { novaComputeInputsOf, novaComputeValues } from '../../integration/compute/nova.js'
import { neutronAgentInputsOf, neutronAgentValues } from '../../integration/compute/neutron.js'
import { openstackReleaseOf, type OpenStackRelease } from '../../integration/compute/release.js'
import { bridgeBlacklistFiles, guestLogRotation, neutronFirewall } from '../../integration/dom0/prepare.js'
import { Secret, reveal, type MaybeSecret, type Resource } from '../../node/index.js'
import type { NodeRecord } from '../../state/store.js'
import type { Evidence, HealthTest, TestContext } from '../types.js'
import { driftOf, onEveryNode } from './common.js'
import type { XenServerHealthEnv } from './environment.js'
import { parseIni, type ParsedIni } from './ini-check.js'

type Test = HealthTest<XenServerHealthEnv>
type Ctx = TestContext<XenServerHealthEnv>

/**
 * nova's `[xenserver]` options (nova/conf/xenserver.py, Juno–Ussuri) besides the ones the config table writes;
 * anything else in the section is a typo or a leftover nova ignores silently.
 */
const NOVA_XENSERVER_OPTIONS = new Set([
  'agent_timeout',
  'agent_version_timeout',
  'agent_resetnetwork_timeout',
  'agent_path',
  'disable_agent',
  'use_agent_default',
  'login_timeout',
  'connection_concurrent',
  'vhd_coalesce_poll_interval',
  'check_host',
  'vhd_coalesce_max_attempts',
  'sr_base_path',
  'target_host',
  'target_port',
  'iqn_prefix',
  'remap_vbd_dev',
  'remap_vbd_dev_prefix',
  'torrent_base_url',
  'torrent_seed_chance',
  'torrent_seed_duration',
  'torrent_max_last_accessed',
  'torrent_listen_port_start',
  'torrent_listen_port_end',
  'torrent_download_stall_cutoff',
  'torrent_max_seeder_processes_per_host',
  'use_join_force',
  'image_compression_level',
  'default_os_type',
  'block_device_creation_timeout',
  'max_kernel_ramdisk_size',
  'sparse_copy',
  'num_vbd_unplug_retries',
  'torrent_images',
  'ipxe_network_name',
  'ipxe_boot_menu_url',
  'ipxe_mkisofs_cmd',
  'running_timeout',
  'introduce_vdi_retry_wait',
  'independent_compute',
  'console_public_hostname',
])

interface FileFindings {
  node: string
  path: string
  parsed?: ParsedIni
  missing?: boolean
}

async function readConfig(env: XenServerHealthEnv, node: NodeRecord, path: string): Promise<FileFindings> {
  const exec = await env.exec(node.name)
  const r = await exec.run(['cat', path], { allowedExitCodes: [0, 1] })
  if (r.code !== 0) return { node: node.name, path, missing: true }
  return { node: node.name, path, parsed: parseIni(r.stdout) }
}

/** `[section] key = found, expected …` lines for keys that differ from the integration's rendering. */
function compareKeys(
  parsed: ParsedIni,
  expected: { section: string; key: string; value: MaybeSecret | null }[],
): string[] {
  const out: string[] = []
  for (const k of expected) {
    const found = parsed.sections.get(k.section)?.get(k.key)
    if (k.value === null) {
      if (found !== undefined) out.push(`[${k.section}] ${k.key} is set but must not be in this release`)
      continue
    }
    const want = reveal(k.value)
    if (found === want) continue
    const secret = k.value instanceof Secret
    if (found === undefined) out.push(`[${k.section}] ${k.key} is missing${secret ? '' : ` (expected ${want})`}`)
    else if (secret) out.push(`[${k.section}] ${k.key} differs from the configured password`)
    else out.push(`[${k.section}] ${k.key} = ${found}, expected ${want}`)
  }
  return out
}

/** Steps 1–3 of a config file test: present, parses, carries the keys and values of the release. */
async function checkConfigFile(
  ctx: Ctx,
  file: ConfigFile,
  expectedOf: (node: NodeRecord, release: OpenStackRelease) => Promise<ReturnType<typeof renderFile>>,
  extra?: (f: FileFindings, release: OpenStackRelease) => string[],
): Promise<void> {
  const env = ctx.env
  if (!env.computes.length) ctx.skip('the environment has no compute nodes')
  const release = openstackReleaseOf(await env.nativeContext(env.computes[0]!.name))
  const path = filePath(file, release)
  const files = await ctx.step(1, async () => {
    const r = await onEveryNode(env.computes, (n) => readConfig(env, n, path))
    const missing = r.filter((x) => x.value.missing).map((x) => x.node.name)
    if (missing.length) ctx.fail(`${path} on every compute node`, `it is missing on ${missing.join(', ')}`)
    return r.map((x) => x.value)
  })
  await ctx.step(2, () => {
    const bad = files.filter((f) => f.parsed!.errors.length)
    if (bad.length)
      ctx.fail(
        `${path} to parse as an oslo.config file`,
        bad.map((f) => `${f.node}: ${f.parsed!.errors.join('; ')}`).join(' / '),
      )
  })
  await ctx.step(3, async () => {
    const problems: string[] = []
    const evidence: Evidence[] = []
    for (const f of files) {
      const node = env.computes.find((c) => c.name === f.node)!
      const diffs = [...compareKeys(f.parsed!, await expectedOf(node, release)), ...(extra?.(f, release) ?? [])]
      if (diffs.length) {
        problems.push(`${f.node}: ${diffs.join('; ')}`)
        evidence.push({ label: `${f.node}: ${path} as found`, value: sectionsJson(f.parsed!) })
      }
    }
    if (problems.length)
      ctx.fail(
        `the keys and values xenstack writes for OpenStack ${release.series} in ${path}`,
        problems.join(' / '),
        evidence,
      )
  })
}

/** The parsed file as evidence (passwords are scrubbed by the store). */
function sectionsJson(p: ParsedIni): Record<string, Record<string, string>> {
  return Object.fromEntries([...p.sections].map(([s, m]) => [s, Object.fromEntries(m)]))
}

/** Keys of `[xenserver]` that nova does not know in this release (or that the table spells differently now). */
function unknownXenserverKeys(p: ParsedIni, release: OpenStackRelease): string[] {
  const keys = [...(p.sections.get('xenserver')?.keys() ?? [])]
  const rows = KEY_RULES.filter((r) => r.file === 'nova-compute' && r.section === 'xenserver')
  const current = new Set(rows.filter((r) => appliesTo(r, release)).map((r) => r.key))
  const other = new Set(rows.filter((r) => !appliesTo(r, release)).map((r) => r.key))
  const out: string[] = []
  for (const k of keys) {
    if (current.has(k)) continue
    if (other.has(k)) out.push(`[xenserver] ${k} is not an option of OpenStack ${release.series}`)
    else if (!NOVA_XENSERVER_OPTIONS.has(k)) out.push(`[xenserver] ${k} is not a nova option (unknown key)`)
  }
  return out
}

export const novaComputeConfig: Test = {
  id: 'xenstack.health.xenserver.configuration.test_nova_compute_config',
  testset: 'configuration',
  title: 'nova-compute is configured for XenAPI as the release expects',
  description:
    'nova-compute.conf parses, carries the XenAPI driver, the HIMN connection with the configured credentials, the ' +
    'VNC and image settings in the spelling of the environment’s OpenStack release, and no unknown [xenserver] keys.',
  steps: [
    'Read nova-compute.conf on every compute node.',
    'Parse it as oslo.config does.',
    'Compare its keys and values with what xenstack writes for the release; look for unknown [xenserver] keys.',
  ],
  duration: '2 s',
  deploymentTags: 'xenserver',
  run: (ctx) =>
    checkConfigFile(
      ctx,
      'nova-compute',
      async (n, release) =>
        renderFile(
          'nova-compute',
          release,
          novaComputeValues(novaComputeInputsOf(await ctx.env.nativeContext(n.name))),
        ),
      (f, release) => unknownXenserverKeys(f.parsed!, release),
    ),
}

async function neutronValues(env: XenServerHealthEnv, node: string) {
  return neutronAgentValues(await neutronAgentInputsOf(await env.nativeContext(node)))
}

export const neutronAgentConfig: Test = {
  id: 'xenstack.health.xenserver.configuration.test_neutron_agent_config',
  testset: 'configuration',
  title: 'The neutron OVS agent drives dom0’s Open vSwitch as the release expects',
  description:
    'The OVS agent in the compute VM manages dom0’s bridges through XAPI (rootwrap-xen-dom0) and OVSDB on ' +
    '169.254.0.1:6640; its file parses and carries those keys in the release’s spelling.',
  steps: [
    'Read the OVS agent configuration on every compute node.',
    'Parse it as oslo.config does.',
    'Compare its keys and values with what xenstack writes for the release.',
  ],
  duration: '2 s',
  deploymentTags: 'xenserver',
  run: (ctx) =>
    checkConfigFile(ctx, 'ovs-agent', async (n, release) =>
      renderFile('ovs-agent', release, await neutronValues(ctx.env, n.name)),
    ),
}

export const rootwrapXenapi: Test = {
  id: 'xenstack.health.xenserver.configuration.test_neutron_rootwrap_xenapi',
  testset: 'configuration',
  title: 'neutron’s rootwrap has its [xenapi] section',
  description:
    'neutron-rootwrap-xen-dom0 runs the agent’s commands in dom0 through XAPI with the [xenapi] URL and credentials ' +
    'of /etc/neutron/rootwrap.conf.',
  steps: [
    'Read rootwrap.conf on every compute node.',
    'Parse it.',
    'Compare its [xenapi] keys with what xenstack writes.',
  ],
  duration: '2 s',
  deploymentTags: 'xenserver',
  run: (ctx) =>
    checkConfigFile(ctx, 'neutron-rootwrap', async (n, release) =>
      renderFile('neutron-rootwrap', release, await neutronValues(ctx.env, n.name)),
    ),
}

/** A dom0 test: plan the integration's resources on every compute node's dom0; any pending change is a failure. */
export function dom0StateTest(spec: {
  id: string
  title: string
  description: string
  step: string
  expected: string
  resources: (
    env: XenServerHealthEnv,
    node: NodeRecord,
    dom0: Awaited<ReturnType<XenServerHealthEnv['dom0']>>,
  ) => Promise<Resource[]>
}): Test {
  return {
    id: spec.id,
    testset: 'configuration',
    title: spec.title,
    description: spec.description,
    steps: [spec.step],
    duration: '3 s',
    deploymentTags: 'xenserver',
    async run(ctx) {
      const env = ctx.env
      if (!env.computes.length) ctx.skip('the environment has no compute nodes')
      await ctx.step(1, async () => {
        const r = await onEveryNode(env.computes, async (n) => {
          const dom0 = await env.dom0(n.name)
          return driftOf(dom0, await spec.resources(env, n, dom0), `${n.name}'s dom0`)
        })
        const bad = r.filter((x) => x.value.ids.length)
        if (bad.length)
          ctx.fail(
            spec.expected,
            bad.map((b) => `${b.node.name}'s dom0: not as deployed: ${b.value.ids.join(', ')}`).join('; '),
            bad.flatMap((b) => b.value.evidence),
          )
      })
    },
  }
}

export const dom0Firewall = dom0StateTest({
  id: 'xenstack.health.xenserver.configuration.test_dom0_neutron_chain',
  title: 'Dom0 accepts OVSDB and VxLAN in its XenServer-Neutron-INPUT chain',
  description:
    'The OVS agent reaches dom0’s OVSDB on tcp 6640 and hosts exchange VxLAN on udp 4789; the chain is jumped to ' +
    'from INPUT and saved so it survives a reboot.',
  step: 'Check the chain, its rules, the jump from INPUT and the saved rules on every dom0.',
  expected: 'chain XenServer-Neutron-INPUT accepting tcp 6640 and udp 4789, jumped to from INPUT, saved',
  resources: async () => neutronFirewall(),
})

export const dom0ConsoleLogs = dom0StateTest({
  id: 'xenstack.health.xenserver.configuration.test_dom0_console_log_rotation',
  title: 'Guest console logs are rotated in dom0',
  description:
    'Without rotation the guests’ console logs fill dom0’s small root file system (LP#1521483); a cron entry runs ' +
    'the rotation script every minute.',
  step: 'Check the log directory, the rotation script and its cron entry on every dom0.',
  expected: 'the guest console-log rotation script and its cron entry on every dom0',
  resources: async () => guestLogRotation(),
})

export const dom0BridgeModule = dom0StateTest({
  id: 'xenstack.health.xenserver.configuration.test_dom0_bridge_not_blacklisted',
  title: 'The Linux bridge module is not blacklisted in dom0',
  description: 'nova creates Linux bridges in dom0 for security groups; XenServer blacklists the module by default.',
  step: 'Look for /etc/modprobe.d/blacklist-bridge* on every dom0.',
  expected: 'no /etc/modprobe.d/blacklist-bridge* file on any dom0',
  resources: async (_env, _n, dom0) => bridgeBlacklistFiles(dom0),
})
