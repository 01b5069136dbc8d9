/**
 * The files devstack on XenServer needs, generated from a DevstackConfig: local.conf (the settings of
 * install-devstack-xen.sh's sample plus --local-conf overrides), the Ubuntu preseed answers file for the template's
 * netinstall, the DomU's run.sh and devstack.service (install_devstack.sh), and the tempest command per test type.
 * Pure functions: the same inputs give the same bytes, which is what makes a second run change nothing.
 */
import type { DevstackConfig, TestType } from './config.js'

export const STACK_HOME = '/opt/stack'
export const LOCAL_CONF_PATH = `${STACK_HOME}/local.conf`
export const RUN_SH_PATH = `${STACK_HOME}/run.sh`
export const UNIT_PATH = '/etc/systemd/system/devstack.service'
export const SUCCEEDED_PATH = `${STACK_HOME}/runsh.succeeded`
export const PID_PATH = `${STACK_HOME}/run_sh.pid`
export const LOG_DIR = `${STACK_HOME}/devstack_logs`
export const STACK_LOG = `${LOG_DIR}/stack.log`

export class LocalConfError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'LocalConfError'
  }
}

/**
 * local.conf as the original's step 6 wrote it: os-xenapi plugin, singleconductor cells (bug 1709594), passwords,
 * VM/public networks, VIRT_DRIVER=xenserver with the XenAPI URL, ML2 openvswitch with vxlan/flat, VLAN and public
 * interfaces, the services of an all-in-one or compute node, logging, and nova's disk_allocation_ratio.
 * `passwords.service` and `passwords.xapi` are the clear values (the caller wraps the result in a Secret).
 */
export function renderLocalConf(cfg: DevstackConfig, passwords: { service: string; xapi: string }): string {
  const localrc: [string, string][] = [
    ['enable_plugin os-xenapi', `${cfg.osXenapiUrl} ${cfg.branch}`],
    ['CELLSV2_SETUP', 'singleconductor'],
    ['ADMIN_PASSWORD', passwords.service],
    ['MYSQL_PASSWORD', passwords.service],
    ['RABBIT_PASSWORD', passwords.service],
    ['SERVICE_PASSWORD', passwords.service],
    ['SERVICE_TOKEN', passwords.service],
    ['XENAPI_USER', 'root'],
    ['XENAPI_PASSWORD', passwords.xapi],
    ['VM_BRIDGE_OR_NET_NAME', quoteIfNeeded(cfg.vmNetwork)],
    ['PUB_BRIDGE_OR_NET_NAME', quoteIfNeeded(cfg.publicNetwork)],
    ['VIRT_DRIVER', 'xenserver'],
    ['XENAPI_CONNECTION_URL', `http://${cfg.host}`],
    ['VNCSERVER_PROXYCLIENT_ADDRESS', cfg.host],
    ['Q_ML2_PLUGIN_MECHANISM_DRIVERS', 'openvswitch'],
    ['Q_ML2_PLUGIN_TYPE_DRIVERS', 'vxlan,flat'],
    ['Q_ML2_TENANT_NETWORK_TYPE', 'vxlan'],
    ['VLAN_INTERFACE', 'eth1'],
    ['PUBLIC_INTERFACE', 'eth2'],
    ['LOGDIR', LOG_DIR],
    ['LOGFILE', STACK_LOG],
    ['LOG_COLOR', 'False'],
    ['VERBOSE', 'True'],
  ]
  if (cfg.mode === 'all') localrc.push(['ENABLED_SERVICES+', ',neutron,q-domua'])
  else {
    if (!cfg.controllerIp)
      throw new LocalConfError('a compute-only DomU needs the controller address (--controller-ip)')
    const c = cfg.controllerIp
    localrc.push(
      ['ENABLED_SERVICES', 'neutron,q-agt,q-domua,n-cpu,placement-client,dstat,n-novnc'],
      ['SERVICE_HOST', c],
      ['MYSQL_HOST', c],
      ['RABBIT_HOST', c],
      ['KEYSTONE_AUTH_HOST', c],
      ['GLANCE_HOSTPORT', `${c}:9292`],
      ['Q_HOST', c],
    )
  }
  const { assignments, sections } = parseOverrides(cfg.localConfOverrides ?? '')
  const lines = localrc.map(([k, v]) => (k.startsWith('enable_plugin ') ? `${k} ${v}` : `${k}=${v}`))
  const keyOf = (line: string) => /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)?.[1]
  for (const a of assignments) {
    const k = keyOf(a)
    const at = k ? lines.findIndex((l) => keyOf(l) === k) : -1
    if (at >= 0) lines[at] = a
    else lines.push(a)
  }
  return (
    '# local.conf written by xenstack devstack install (os-xenapi install-devstack-xen.sh settings)\n' +
    '[[local|localrc]]\n' +
    lines.join('\n') +
    '\n\n[[post-config|$NOVA_CONF]]\n[DEFAULT]\ndisk_allocation_ratio = 2.0\n' +
    (sections ? `\n${sections}` : '')
  )
}

function quoteIfNeeded(v: string): string {
  return /^[A-Za-z0-9_.,:/@+-]+$/.test(v) ? v : `"${v.replace(/(["\\$`])/g, '\\$1')}"`
}

/**
 * Splits a --local-conf file: lines of its `[[local|localrc]]` section (or before any section) are assignments that
 * replace the sample's of the same name; every other meta section is kept whole.
 */
export function parseOverrides(text: string): { assignments: string[]; sections: string } {
  const assignments: string[] = []
  const other: string[] = []
  let inLocal = true
  text.split(/\r?\n/).forEach((line) => {
    const meta = /^\[\[\s*([^|\]]+)\s*\|\s*([^\]]+?)\s*\]\]\s*$/.exec(line)
    if (meta) {
      inLocal = meta[1] === 'local' && meta[2] === 'localrc'
      if (!inLocal) other.push(line)
      return
    }
    if (inLocal) {
      if (line.trim() && !line.trim().startsWith('#')) assignments.push(line.trim())
    } else other.push(line)
  })
  const sections = other.join('\n').trim()
  return { assignments, sections: sections ? `${sections}\n` : '' }
}

/** The guest's boot argument pointing the Debian installer at the answers file (create_ubuntu_template.sh). */
export function installerBootArgs(preseedUrl: string): string {
  return [
    '-- quiet console=hvc0',
    'auto=true priority=critical',
    'locale=en_US.UTF-8 console-setup/ask_detect=false keyboard-configuration/layoutcode=us',
    'netcfg/choose_interface=eth0 netcfg/get_hostname=devstack netcfg/get_domain=localdomain',
    `url=${preseedUrl}`,
  ].join(' ')
}

/**
 * The preseed answers for the template's unattended netinstall: mirror from `cfg.mirror`, one ext4 partition,
 * OpenSSH, git, xenstore tools (the guest reads the operator's key from xenstore, as the original's cron job did),
 * no passwords (root login by key only), power off at the end — the installer halting is how XAPI sees it finish.
 */
export function renderPreseed(cfg: DevstackConfig): string {
  const u = new URL(cfg.mirror)
  const keyScript = [
    '#!/bin/sh',
    '# xenstack: the operator key from xenstore (VM.xenstore_data vm-data/authorized_keys)',
    'k=$(xenstore-read vm-data/authorized_keys 2>/dev/null) || exit 0',
    'mkdir -p /root/.ssh && chmod 700 /root/.ssh',
    'grep -qxF "$k" /root/.ssh/authorized_keys 2>/dev/null || echo "$k" >> /root/.ssh/authorized_keys',
    'chmod 600 /root/.ssh/authorized_keys',
  ].join('\\n')
  return `# Ubuntu ${cfg.ubuntuRelease} netinstall answers, written by xenstack devstack install
d-i debian-installer/locale string en_US.UTF-8
d-i console-setup/ask_detect boolean false
d-i keyboard-configuration/layoutcode string us
d-i netcfg/choose_interface select eth0
d-i netcfg/get_hostname string devstack
d-i netcfg/get_domain string localdomain
d-i mirror/country string manual
d-i mirror/protocol string ${u.protocol.replace(':', '')}
d-i mirror/${u.protocol.replace(':', '')}/hostname string ${u.host}
d-i mirror/${u.protocol.replace(':', '')}/directory string ${u.pathname.replace(/\/$/, '') || '/'}
d-i mirror/${u.protocol.replace(':', '')}/proxy string
d-i mirror/suite string ${cfg.ubuntuRelease}
d-i clock-setup/utc boolean true
d-i time/zone string UTC
d-i clock-setup/ntp boolean true
d-i partman-auto/method string regular
d-i partman-auto/choose_recipe select atomic
d-i partman/default_filesystem string ext4
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
d-i passwd/root-login boolean true
d-i passwd/root-password-crypted password !
d-i passwd/make-user boolean false
d-i pkgsel/include string openssh-server git curl sudo xenstore-utils
d-i pkgsel/update-policy select none
tasksel tasksel/first multiselect standard, openssh-server
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string /dev/xvda
d-i finish-install/reboot_in_progress note
d-i debian-installer/exit/poweroff boolean true
d-i preseed/late_command string in-target sh -c 'printf "${keyScript}\\n" > /usr/local/sbin/xenstack-authorized-keys && chmod 755 /usr/local/sbin/xenstack-authorized-keys && echo "* * * * * root /usr/local/sbin/xenstack-authorized-keys" > /etc/cron.d/xenstack-authorized-keys'
`
}

/**
 * run.sh of install_devstack.sh: one run at a time (flock), devstack cloned at the branch when missing, local.conf
 * put in place, unstack then stack, and `runsh.succeeded` touched only when stack.sh succeeded.
 */
export function renderRunSh(cfg: DevstackConfig): string {
  return `#!/bin/bash
# written by xenstack devstack install: (re)runs devstack; devstack.service starts it at boot
set -eux
(
  flock -n 9 || { echo "run.sh is already running" >&2; exit 1; }
  rm -f ${SUCCEEDED_PATH}
  echo $$ > ${PID_PATH}
  mkdir -p ${LOG_DIR}
  cd ${STACK_HOME}
  if [ ! -d devstack/.git ]; then
    git clone --branch ${shellWord(cfg.branch)} ${shellWord(cfg.devstackUrl)} devstack
  fi
  cp ${LOCAL_CONF_PATH} devstack/local.conf
  cd devstack
  ./unstack.sh || true
  ./stack.sh
  touch ${SUCCEEDED_PATH}
) 9> ${STACK_HOME}/.runsh.lock
`
}

export function renderUnit(): string {
  return `# written by xenstack devstack install
[Unit]
Description=Install OpenStack by DevStack
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
User=stack
ExecStart=${RUN_SH_PATH}
StandardOutput=journal+console
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
`
}

/** What tempest runs per test type, in /opt/stack/tempest as the stack user (install-devstack-xen.sh step 9). */
export function tempestCommand(type: TestType): string | undefined {
  switch (type) {
    case 'none':
      return undefined
    case 'exercise':
      return 'cd /opt/stack/tempest && tox -eall tempest.scenario.test_server_basic_ops'
    case 'smoke':
      return 'cd /opt/stack/tempest && tox -esmoke'
    case 'full':
      return 'cd /opt/stack/tempest && tox -efull'
  }
}

function shellWord(s: string): string {
  return /^[A-Za-z0-9_.,:/@+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}
