/**
 * Dom0 preparation (issue 9.7, reference §8 steps 3, 8, 9, 10 and §18.1) as resources for dom0's executor:
 *
 * - Linux bridge allowed: `/etc/modprobe.d/blacklist-bridge*` removed (nova's security-group bridges need it);
 * - `XenServer-Neutron-INPUT` with OVSDB 6640/tcp and VxLAN 4789/udp, jumped to from INPUT once, saved to
 *   /etc/sysconfig/iptables (dom0 is CentOS: `service iptables` restores that file at boot);
 * - guest console-log rotation: the script plus a cron entry MERGED into root's crontab (the original's
 *   `crontab -` replaced whatever else root had scheduled);
 * - `/boot/guest` and `/images` as symlinks into an SR's mount (`srForHost`: a full dom0 root stops XAPI);
 * - conntrackd's statistics configuration and log rotation, only where conntrack-tools is installed.
 *
 * Everything is checked before it is changed, so a second run reports nothing changed.
 */
import {
  CommandResource,
  CronEntry,
  DirectoryResource,
  FileResource,
  Service,
  SymlinkResource,
  firewall,
  shellQuote,
  type Executor,
  type Resource,
} from '../../node/index.js'
import { GUEST_LOG_DIR, ROTATE_CRON_COMMAND, ROTATE_SCRIPT, ROTATE_SCRIPT_PATH } from './rotate-guest-logs.js'

export const NEUTRON_CHAIN = 'XenServer-Neutron-INPUT'
/** dom0 is CentOS-based: the iptables service saves and restores this file. */
export const DOM0_SAVED_RULES = '/etc/sysconfig/iptables'
export const SR_MOUNT_ROOT = '/var/run/sr-mount'

/** The files that blacklist the bridge module on dom0 (present: removed). */
export async function bridgeBlacklistFiles(dom0: Executor): Promise<Resource[]> {
  const r = await dom0.run('for f in /etc/modprobe.d/blacklist-bridge*; do [ -e "$f" ] && echo "$f"; done; true')
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((path) => new FileResource({ path, ensure: 'absent' }))
}

/** The neutron chain: OVSDB (6640/tcp) for the agent in the compute VM, VxLAN (4789/udp) between hosts. */
export function neutronFirewall(): Resource[] {
  return firewall({
    chain: NEUTRON_CHAIN,
    jumpFrom: 'INPUT',
    rules: [
      { chain: NEUTRON_CHAIN, rule: ['-p', 'tcp', '-m', 'tcp', '--dport', '6640', '-j', 'ACCEPT'] },
      { chain: NEUTRON_CHAIN, rule: ['-p', 'udp', '-m', 'multiport', '--dports', '4789', '-j', 'ACCEPT'] },
    ],
    persistPath: DOM0_SAVED_RULES,
  })
}

export function guestLogRotation(): Resource[] {
  return [
    new DirectoryResource({ path: GUEST_LOG_DIR }),
    new FileResource({ path: ROTATE_SCRIPT_PATH, content: ROTATE_SCRIPT, mode: 0o755 }),
    new CronEntry({ name: 'rotate xen guest console logs', schedule: '* * * * *', command: ROTATE_CRON_COMMAND }),
  ]
}

export interface SrLinksOptions {
  srUuid: string
  /** Also link /images (resize/migration staging). Default true. */
  images?: boolean
}

/**
 * `/boot/guest` → `<SR mount>/os-guest-kernels` and `/images` → `<SR mount>/os-images` (the names os-xenapi's RPM
 * uses). The SR must be mounted: a missing mount directory is an error, never created on dom0's root file system.
 */
export async function srLinks(dom0: Executor, opts: SrLinksOptions): Promise<Resource[]> {
  if (!/^[0-9a-f-]{36}$/i.test(opts.srUuid)) throw new Error(`SR uuid ${JSON.stringify(opts.srUuid)} is not a uuid`)
  const mount = `${SR_MOUNT_ROOT}/${opts.srUuid}`
  const r = await dom0.run(['test', '-d', mount], { allowedExitCodes: [0, 1] })
  if (r.code !== 0)
    throw new Error(
      `${dom0.host}: the SR ${opts.srUuid} is not mounted at ${mount}; /boot/guest and /images must live on ` +
        `a file-based SR (ext or nfs) that is plugged on this host`,
    )
  const links: Resource[] = [
    new DirectoryResource({ path: `${mount}/os-guest-kernels` }),
    // force: an empty /boot/guest directory (as a fresh dom0 may have) is replaced; a non-empty one is an error
    new SymlinkResource({ path: '/boot/guest', target: `${mount}/os-guest-kernels`, force: true }),
  ]
  if (opts.images !== false)
    links.push(
      new DirectoryResource({ path: `${mount}/os-images` }),
      new SymlinkResource({ path: '/images', target: `${mount}/os-images`, force: true }),
    )
  return links
}

export const CONNTRACKD_CONF = '/etc/conntrackd/conntrackd.conf'
export const CONNTRACKD_LOGROTATE = '/etc/logrotate.d/conntrackd'
/** Where conntrack-tools ships its statistics-mode example (the version is part of the path). */
export const CONNTRACKD_STATS_GLOB = '/usr/share/doc/conntrack-tools-*/doc/stats/conntrackd.conf'

export const CONNTRACKD_LOGROTATE_CONTENT = `# Written by xenstack (xenserver.dom0-prepare)
/var/log/conntrackd*.log {
    daily
    maxsize 50M
    rotate 7
    copytruncate
    missingok
}
`

/**
 * conntrackd in statistics mode (the original's `enable_conntrack_service`), where conntrack-tools is installed:
 * the shipped configuration is kept once as `.back`, replaced by the statistics example, its logs rotated, and the
 * service restarted when the configuration changed. Nothing when conntrackd is not installed.
 */
export async function conntrackd(dom0: Executor, statsGlob = CONNTRACKD_STATS_GLOB): Promise<Resource[]> {
  const r = await dom0.run(
    `test -f ${CONNTRACKD_CONF} || exit 0; for f in ${statsGlob}; do [ -f "$f" ] && echo "$f"; done; true`,
  )
  const template = r.stdout.split('\n').filter(Boolean).sort().at(-1)
  if (!template) return []
  const content = (await dom0.get(template)).toString('utf8')
  const conf = new FileResource({ path: CONNTRACKD_CONF, content })
  return [
    new CommandResource({
      name: `keep the shipped ${CONNTRACKD_CONF} as .back`,
      command: `cp -p ${shellQuote(CONNTRACKD_CONF)} ${shellQuote(CONNTRACKD_CONF + '.back')}`,
      creates: `${CONNTRACKD_CONF}.back`,
    }),
    conf,
    new FileResource({ path: CONNTRACKD_LOGROTATE, content: CONNTRACKD_LOGROTATE_CONTENT, mode: 0o644 }),
    new Service({ name: 'conntrackd', ensure: 'running', enable: true, restartOn: [conf] }),
  ]
}

export interface Dom0PrepareOptions {
  /** The SR's uuid (`srForHost`, from XAPI); without it the /boot/guest and /images links are not managed. */
  srUuid?: string
  images?: boolean
  conntrackStatsGlob?: string
}

/** Every dom0 preparation resource, in order. */
export async function dom0PrepareResources(dom0: Executor, opts: Dom0PrepareOptions = {}): Promise<Resource[]> {
  return [
    ...(await bridgeBlacklistFiles(dom0)),
    ...neutronFirewall(),
    ...guestLogRotation(),
    ...(opts.srUuid ? await srLinks(dom0, { srUuid: opts.srUuid, images: opts.images }) : []),
    ...(await conntrackd(dom0, opts.conntrackStatsGlob)),
  ]
}
