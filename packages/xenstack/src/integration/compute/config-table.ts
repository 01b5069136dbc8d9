/**
 * What the XenServer compute configuration looks like in each OpenStack release, as data: one table of where
 * every configured value goes (file, section, key) and from/until which release that spelling applies, with the
 * literal values and value maps that changed along the way; one interpreter (`renderFile`) that turns the values
 * of one deployment into ini settings for one release. A key that moved (Kilo's [vnc] group, Pike's
 * server_proxyclient_address, Queens' image_handler) is written under its spelling for the release and its other
 * spellings are removed from the file, so changing the environment's release leaves no stale duplicate behind.
 *
 * Sources: the reference (xenserver-integration.md §8 step 6/11, §18.2–18.4) and the upstream option histories
 * noted per row.
 */
import type { MaybeSecret } from '../../node/index.js'
import { OPENSTACK_SERIES, type OpenStackRelease, type OpenStackSeries } from './release.js'

/** The files the compute configuration writes (paths below, per release where they moved). */
export type ConfigFile = 'nova-compute' | 'ovs-agent' | 'neutron-rootwrap'

export interface KeyRule {
  file: ConfigFile
  /** The value's logical name: the interpreter reads `values[setting]` (unless the rule has a `literal`). */
  setting: string
  section: string
  key: string
  /** First release with this spelling (default: the first known). */
  from?: OpenStackSeries
  /** First release without it (default: none). */
  until?: OpenStackSeries
  /** A fixed value for these releases instead of `values[setting]`. */
  literal?: string
  /** The value translated for these releases (a value without an entry is an error naming the release). */
  map?: Record<string, string>
  /** Why the row is what it is. */
  why: string
}

/** Where each file lives, per release (the OVS agent's file was ml2_conf.ini before Mitaka). */
export const FILE_PATHS: { file: ConfigFile; path: string; from?: OpenStackSeries; until?: OpenStackSeries }[] = [
  { file: 'nova-compute', path: '/etc/nova/nova-compute.conf' },
  { file: 'ovs-agent', path: '/etc/neutron/plugins/ml2/ml2_conf.ini', until: 'mitaka' },
  { file: 'ovs-agent', path: '/etc/neutron/plugins/ml2/openvswitch_agent.ini', from: 'mitaka' },
  { file: 'neutron-rootwrap', path: '/etc/neutron/rootwrap.conf' },
]

/**
 * The services that read those files, per release (Ubuntu renamed the OVS agent's package in Mitaka). rootwrap.conf
 * is read through the agent, which neutron-agent restarts when either file changed.
 */
export const SERVICES: { file: ConfigFile; service: string; from?: OpenStackSeries; until?: OpenStackSeries }[] = [
  { file: 'nova-compute', service: 'nova-compute' },
  { file: 'ovs-agent', service: 'neutron-plugin-openvswitch-agent', until: 'mitaka' },
  { file: 'ovs-agent', service: 'neutron-openvswitch-agent', from: 'mitaka' },
]

const GLANCE_STORE = 'nova.virt.xenapi.image.glance.GlanceStore'
const VDI_THROUGH_DEV = 'nova.virt.xenapi.image.vdi_through_dev.VdiThroughDevStore'

export const KEY_RULES: KeyRule[] = [
  // --- nova-compute.conf
  {
    file: 'nova-compute',
    setting: 'compute_driver',
    section: 'DEFAULT',
    key: 'compute_driver',
    literal: 'xenapi.XenAPIDriver',
    why: 'the XenAPI driver, Juno to Ussuri (removed in Victoria)',
  },
  {
    file: 'nova-compute',
    setting: 'force_config_drive',
    section: 'DEFAULT',
    key: 'force_config_drive',
    until: 'liberty',
    literal: 'always',
    why: "a string option until Kilo ('always'; the 7.0 plugin wrote it)",
  },
  {
    file: 'nova-compute',
    setting: 'force_config_drive',
    section: 'DEFAULT',
    key: 'force_config_drive',
    from: 'liberty',
    literal: 'True',
    why: 'a boolean from Liberty on',
  },
  {
    file: 'nova-compute',
    setting: 'vnc_enabled',
    section: 'DEFAULT',
    key: 'vnc_enabled',
    until: 'kilo',
    literal: 'True',
    why: 'VNC options were in [DEFAULT] until Kilo moved them to [vnc]',
  },
  {
    file: 'nova-compute',
    setting: 'vnc_enabled',
    section: 'vnc',
    key: 'enabled',
    from: 'kilo',
    literal: 'True',
    why: 'Kilo: [vnc] enabled (deprecated name DEFAULT/vnc_enabled)',
  },
  {
    file: 'nova-compute',
    setting: 'novncproxy_base_url',
    section: 'DEFAULT',
    key: 'novncproxy_base_url',
    until: 'kilo',
    why: 'in [DEFAULT] until Kilo',
  },
  {
    file: 'nova-compute',
    setting: 'novncproxy_base_url',
    section: 'vnc',
    key: 'novncproxy_base_url',
    from: 'kilo',
    why: 'Kilo: [vnc] novncproxy_base_url',
  },
  {
    file: 'nova-compute',
    setting: 'vnc_proxyclient_address',
    section: 'DEFAULT',
    key: 'vncserver_proxyclient_address',
    until: 'kilo',
    why: 'in [DEFAULT] until Kilo',
  },
  {
    file: 'nova-compute',
    setting: 'vnc_proxyclient_address',
    section: 'vnc',
    key: 'vncserver_proxyclient_address',
    from: 'kilo',
    until: 'pike',
    why: 'Kilo to Ocata: [vnc] vncserver_proxyclient_address',
  },
  {
    file: 'nova-compute',
    setting: 'vnc_proxyclient_address',
    section: 'vnc',
    key: 'server_proxyclient_address',
    from: 'pike',
    why: 'Pike renamed it server_proxyclient_address',
  },
  {
    file: 'nova-compute',
    setting: 'connection_url',
    section: 'xenserver',
    key: 'connection_url',
    why: 'XAPI over the HIMN; [xenserver] since Juno',
  },
  {
    file: 'nova-compute',
    setting: 'connection_username',
    section: 'xenserver',
    key: 'connection_username',
    why: '[xenserver] since Juno',
  },
  {
    file: 'nova-compute',
    setting: 'connection_password',
    section: 'xenserver',
    key: 'connection_password',
    why: '[xenserver] since Juno',
  },
  {
    file: 'nova-compute',
    setting: 'vif_driver',
    section: 'xenserver',
    key: 'vif_driver',
    until: 'rocky',
    literal: 'nova.virt.xenapi.vif.XenAPIOpenVswitchDriver',
    why: 'removed in Rocky (nova picks the OVS driver itself)',
  },
  {
    file: 'nova-compute',
    setting: 'ovs_integration_bridge',
    section: 'xenserver',
    key: 'ovs_integration_bridge',
    literal: 'br-int',
    why: "Dom0's OVS integration bridge",
  },
  {
    file: 'nova-compute',
    setting: 'cache_images',
    section: 'xenserver',
    key: 'cache_images',
    literal: 'all',
    why: "the plugin's choice since 9.0 (8.0 used none; the image-cache cron cleans up)",
  },
  {
    file: 'nova-compute',
    setting: 'image_handler',
    section: 'xenserver',
    key: 'image_upload_handler',
    until: 'queens',
    map: { direct_vhd: GLANCE_STORE, vdi_local_dev: VDI_THROUGH_DEV },
    why: 'before Queens a class path; vdi_remote_stream does not exist there',
  },
  {
    file: 'nova-compute',
    setting: 'image_handler',
    section: 'xenserver',
    key: 'image_handler',
    from: 'queens',
    why: 'Queens: [xenserver] image_handler = direct_vhd | vdi_local_dev | vdi_remote_stream',
  },
  {
    file: 'nova-compute',
    setting: 'sr_matching_filter',
    section: 'xenserver',
    key: 'sr_matching_filter',
    why: 'which SR takes the disks',
  },
  {
    file: 'nova-compute',
    setting: 'agent_version_timeout',
    section: 'xenserver',
    key: 'agent_version_timeout',
    literal: '300',
    why: 'the guest agent version wait (nova default, written so it is visible)',
  },

  // --- the OVS agent (in the compute VM, driving Dom0's OVS)
  {
    file: 'ovs-agent',
    setting: 'root_helper',
    section: 'agent',
    key: 'root_helper',
    until: 'ocata',
    literal: 'neutron-rootwrap-xen-dom0 /etc/neutron/rootwrap.conf',
    why: 'before Ocata commands reach Dom0 through neutron-rootwrap-xen-dom0 (Fuel)',
  },
  {
    file: 'ovs-agent',
    setting: 'root_helper',
    section: 'agent',
    key: 'root_helper',
    from: 'ocata',
    literal: '',
    why: "from Ocata the root helper daemon does it (devstack's setting)",
  },
  {
    file: 'ovs-agent',
    setting: 'root_helper_daemon',
    section: 'agent',
    key: 'root_helper_daemon',
    from: 'liberty',
    until: 'ocata',
    literal: '',
    why: 'Liberty added the option; Fuel left it empty',
  },
  {
    file: 'ovs-agent',
    setting: 'root_helper_daemon',
    section: 'agent',
    key: 'root_helper_daemon',
    from: 'ocata',
    literal: 'xenapi_root_helper',
    why: "Ocata: neutron's XenAPI root helper daemon (os-xenapi's netwrap.py in Dom0)",
  },
  {
    file: 'ovs-agent',
    setting: 'minimize_polling',
    section: 'agent',
    key: 'minimize_polling',
    literal: 'False',
    why: 'ovsdb-client monitor cannot run in Dom0 from the VM',
  },
  {
    file: 'ovs-agent',
    setting: 'tunnel_types',
    section: 'agent',
    key: 'tunnel_types',
    why: 'vxlan with tunnelling segmentation',
  },
  {
    file: 'ovs-agent',
    setting: 'integration_bridge',
    section: 'ovs',
    key: 'integration_bridge',
    literal: 'br-int',
    why: "Dom0's integration bridge",
  },
  {
    file: 'ovs-agent',
    setting: 'bridge_mappings',
    section: 'ovs',
    key: 'bridge_mappings',
    why: 'VLAN: <physnet>:<the Dom0 bridge of the private network>',
  },
  {
    file: 'ovs-agent',
    setting: 'local_ip',
    section: 'ovs',
    key: 'local_ip',
    why: 'VxLAN: the tunnel endpoint',
  },
  {
    file: 'ovs-agent',
    setting: 'of_listen_address',
    section: 'ovs',
    key: 'of_listen_address',
    from: 'mitaka',
    why: "the native OpenFlow interface (Mitaka) listens where Dom0's OVS can reach the agent",
  },
  {
    file: 'ovs-agent',
    setting: 'ovsdb_connection',
    section: 'ovs',
    key: 'ovsdb_connection',
    from: 'mitaka',
    why: "the native OVSDB interface (Mitaka) talks to Dom0's ovsdb-server on 6640 (opened by dom0-prepare)",
  },
  {
    file: 'ovs-agent',
    setting: 'connection_url',
    section: 'xenapi',
    key: 'connection_url',
    from: 'ocata',
    why: 'Ocata: the root helper daemon reads XAPI credentials from the agent configuration',
  },
  {
    file: 'ovs-agent',
    setting: 'connection_username',
    section: 'xenapi',
    key: 'connection_username',
    from: 'ocata',
    why: 'as connection_url',
  },
  {
    file: 'ovs-agent',
    setting: 'connection_password',
    section: 'xenapi',
    key: 'connection_password',
    from: 'ocata',
    why: 'as connection_url',
  },
  {
    file: 'ovs-agent',
    setting: 'firewall_driver',
    section: 'securitygroup',
    key: 'firewall_driver',
    literal: 'neutron.agent.linux.iptables_firewall.OVSHybridIptablesFirewallDriver',
    why: "hybrid iptables: XenServer's OVS 2.3 has no conntrack actions (the class path works in every release)",
  },

  // --- rootwrap.conf (neutron-rootwrap-xen-dom0 reads it)
  {
    file: 'neutron-rootwrap',
    setting: 'connection_url',
    section: 'xenapi',
    key: 'xenapi_connection_url',
    why: 'neutron-rootwrap-xen-dom0 logs in to XAPI with these',
  },
  {
    file: 'neutron-rootwrap',
    setting: 'connection_username',
    section: 'xenapi',
    key: 'xenapi_connection_username',
    why: 'as xenapi_connection_url',
  },
  {
    file: 'neutron-rootwrap',
    setting: 'connection_password',
    section: 'xenapi',
    key: 'xenapi_connection_password',
    why: 'as xenapi_connection_url',
  },
]

const position = (s: OpenStackSeries | undefined, fallback: number) =>
  s === undefined ? fallback : OPENSTACK_SERIES.indexOf(s)

/** True when a row (or file/service entry) with `from`/`until` applies to the release. */
export function appliesTo(
  entry: { from?: OpenStackSeries; until?: OpenStackSeries },
  release: OpenStackRelease,
): boolean {
  return release.index >= position(entry.from, 0) && release.index < position(entry.until, OPENSTACK_SERIES.length)
}

export class ConfigValueError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigValueError'
  }
}

/** The path of a file in a release. */
export function filePath(file: ConfigFile, release: OpenStackRelease): string {
  const found = FILE_PATHS.find((f) => f.file === file && appliesTo(f, release))
  if (!found) throw new Error(`no path for ${file} in ${release.series}`)
  return found.path
}

/** The services that read a file in a release (restarted when it changed). */
export function servicesOf(file: ConfigFile, release: OpenStackRelease): string[] {
  return SERVICES.filter((s) => s.file === file && appliesTo(s, release)).map((s) => s.service)
}

/** One key to write (`value`) or to remove (`value: null`) in a section. */
export interface RenderedKey {
  section: string
  key: string
  value: MaybeSecret | null
  why: string
}

/**
 * The keys of one file for one release: every applicable row whose value is known (a literal, or
 * `values[setting]` when it is not undefined — undefined means "not for this deployment", e.g. bridge_mappings
 * with VxLAN), then the removal of every other spelling of the same settings that no applicable row writes.
 */
export function renderFile(
  file: ConfigFile,
  release: OpenStackRelease,
  values: Record<string, MaybeSecret | undefined>,
): RenderedKey[] {
  const rows = KEY_RULES.filter((r) => r.file === file)
  const out: RenderedKey[] = []
  const written = new Set<string>()
  const wanted = new Set<string>()
  for (const r of rows.filter((r) => appliesTo(r, release))) {
    let value: MaybeSecret | undefined = r.literal ?? values[r.setting]
    if (value === undefined) continue
    if (r.map && r.literal === undefined) {
      const raw = typeof value === 'string' ? value : undefined
      const mapped = raw !== undefined ? r.map[raw] : undefined
      if (mapped === undefined)
        throw new ConfigValueError(
          `${r.setting} ${JSON.stringify(raw)} is not available in OpenStack ${release.series} ` +
            `(${r.section}/${r.key} accepts ${Object.keys(r.map).join(', ')}; ${r.why})`,
        )
      value = mapped
    }
    out.push({ section: r.section, key: r.key, value, why: r.why })
    written.add(`${r.section}\0${r.key}`)
    wanted.add(r.setting)
  }
  // Other spellings of what this deployment configures, and keys of settings it no longer has (a VLAN
  // environment turned VxLAN drops bridge_mappings), are removed.
  for (const r of rows) {
    const id = `${r.section}\0${r.key}`
    if (written.has(id)) continue
    const stale =
      wanted.has(r.setting) || (r.literal === undefined && values[r.setting] === undefined && r.setting in values)
    if (!stale) continue
    written.add(id)
    out.push({ section: r.section, key: r.key, value: null, why: `not used in ${release.series}: ${r.why}` })
  }
  return out
}
