/**
 * What `xenstack devstack install` is asked to build: the options of os-xenapi's install-devstack-xen.sh and the
 * xenrc defaults of install_on_xen_host.sh (xenserver-integration.md §19), with the names they had there in
 * comments so an operator of the original finds them.
 */
import { createHmac } from 'node:crypto'
import type { Secret } from '../../node/index.js'

export const TEST_TYPES = ['none', 'exercise', 'smoke', 'full'] as const
export type TestType = (typeof TEST_TYPES)[number]

/** other_config key on every network and VM this command creates (value: its role). */
export const DEVSTACK_KEY = 'xenstack_devstack'
/** Where the guest's cron job of the original picked the operator's key up: VM.xenstore_data. */
export const AUTHORIZED_KEYS_XENSTORE = 'vm-data/authorized_keys'

export interface DevstackConfig {
  /** The XenServer's management address as the DomU sees it (XENAPI_CONNECTION_URL, VNC proxy client, dom0 SSH). */
  host: string
  /** DEV_STACK_DOMU_NAME (-m) */
  domuName: string
  /** TNAME */
  templateName: string
  /** VM_BRIDGE_OR_NET_NAME, PUB_BRIDGE_OR_NET_NAME: a bridge or a network name label. */
  vmNetwork: string
  publicNetwork: string
  /** VM_MEM_MB */
  memoryMiB: number
  /** VM_VDI_GB: the template's disk. */
  diskGiB: number
  /** UBUNTU_INST_RELEASE / _ARCH / _HTTP_HOSTNAME+DIRECTORY */
  ubuntuRelease: string
  ubuntuArch: string
  mirror: string
  /** -d: the devstack git repository; the branch both repositories are checked out at. */
  devstackUrl: string
  osXenapiUrl: string
  branch: string
  /** -t */
  testType: TestType
  /** -w */
  wait: boolean
  waitTimeoutS: number
  /** -a / -i */
  mode: 'all' | 'compute'
  controllerIp?: string
  /** Extra local.conf: `[[local|localrc]]` assignments override the sample's, other meta sections are appended. */
  localConfOverrides?: string
  /** The operator's public key, put into the DomU's xenstore_data for the guest to authorize. */
  publicKey?: string
}

export const DEFAULTS = {
  domuName: 'DevStackOSDomU',
  templateName: 'jeos_template_for_ubuntu',
  vmNetwork: 'OpenStack VM Network',
  publicNetwork: 'OpenStack Public Network',
  memoryMiB: 6144,
  diskGiB: 30,
  ubuntuRelease: 'xenial',
  ubuntuArch: 'amd64',
  mirror: 'http://archive.ubuntu.com/ubuntu',
  devstackUrl: 'https://opendev.org/openstack/devstack',
  osXenapiUrl: 'https://opendev.org/x/os-xenapi',
  branch: 'master',
  testType: 'none' as TestType,
  wait: true,
  waitTimeoutS: 7200,
  mode: 'all' as const,
}

/** The network roles of the DomU's interfaces: eth0 management, eth1 VM network, eth2 public (MGT/VM/PUB_DEV_NR). */
export const DOMU_INTERFACES = ['management', 'vm', 'public'] as const

/**
 * The devstack service passwords. The original wrote `citrix` everywhere; here they are derived from the XAPI
 * password and the host (HMAC-SHA256), so a second run renders the same local.conf without storing a password
 * anywhere, and nobody can guess them without the XAPI password. `XENSTACK_DEVSTACK_PASSWORD` sets them instead.
 */
export function servicePassword(xapiPassword: string, host: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.XENSTACK_DEVSTACK_PASSWORD) return env.XENSTACK_DEVSTACK_PASSWORD
  return createHmac('sha256', xapiPassword)
    .update(`devstack service password for ${host}`)
    .digest('base64url')
    .slice(0, 20)
}

export interface Passwords {
  xapi: Secret
  service: Secret
}
