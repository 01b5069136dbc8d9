/**
 * The HIMN inside the compute VM (the original plugin's `init_eth`): find the interface, persist its configuration
 * for the guest's OS family with no default route through it, bring it up and verify its address.
 *
 * Finding it (the original's three ways; the first two in the other order):
 *  1. the MAC in xenstore `vm-data/himn_mac` (written by the HIMN attach) when it names an interface: read in the
 *     guest with xenstore-read, else from the VM's xenstore_data through XAPI — asked first because an IPv4
 *     link-local address (zeroconf) on another NIC looks like a HIMN address;
 *  2. else an interface with an IPv4 address in 169.254.0.0/16 (XAPI's HIMN DHCP range; the original only looked at
 *     169.254.0.x), when exactly one has one;
 *  3. a short DHCP probe on each interface without IPv4 (a HIMN VIF added by hand has no MAC in xenstore), released
 *     afterwards.
 * Persisting: ifupdown (`/etc/network/interfaces.d/ifcfg-<eth>`), netplan (`/etc/netplan/90-xenstack-himn.yaml`,
 * matched by MAC) or ifcfg (`/etc/sysconfig/network-scripts/ifcfg-<eth>`, `DEFROUTE=no`). Every file is rendered
 * by a pure function (unit-tested) and written through node access's FileResource (check before act).
 */
import {
  FileResource,
  LineInFile,
  apply,
  parseInterfaces,
  type Executor,
  type NetworkInterface,
  type Resource,
} from '../../node/index.js'

export const HIMN_PREFIX = '169.254.'
export const HIMN_DOM0 = '169.254.0.1'

export class HimnGuestError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'HimnGuestError'
  }
}

export type NetworkConfigStyle = 'ifupdown' | 'netplan' | 'ifcfg'

export interface HimnInterface {
  name: string
  mac: string
  /** How it was found. */
  how: 'address' | 'xenstore' | 'dhcp'
}

const isHimnAddress = (cidr: string) => cidr.startsWith(HIMN_PREFIX)

// -- rendering ---------------------------------------------------------------------------------------------

const HEADER = '# xenstack: host internal management network (dom0 and XAPI at 169.254.0.1); never a default route'

/** Debian's ifupdown stanza. XAPI's DHCP may offer a router: the post-up drops any default route via the HIMN. */
export function renderIfupdown(eth: string): string {
  return [
    HEADER,
    `auto ${eth}`,
    `iface ${eth} inet dhcp`,
    `    post-up ip route del default dev ${eth} 2>/dev/null || true`,
    '',
  ].join('\n')
}

/** netplan: matched by MAC (names can change between boots), routes and DNS from this DHCP ignored. */
export function renderNetplan(eth: string, mac: string): string {
  return [
    HEADER,
    'network:',
    '  version: 2',
    '  ethernets:',
    `    ${eth}:`,
    '      match:',
    `        macaddress: "${mac}"`,
    `      set-name: ${eth}`,
    '      dhcp4: true',
    '      dhcp4-overrides:',
    '        use-routes: false',
    '        use-dns: false',
    '      dhcp6: false',
    '      optional: true',
    '',
  ].join('\n')
}

/** RHEL/CentOS network-scripts: DEFROUTE=no keeps the default route off the HIMN, PEERDNS=no the resolver. */
export function renderIfcfg(eth: string, mac: string): string {
  return [
    HEADER,
    `DEVICE=${eth}`,
    `HWADDR=${mac}`,
    'TYPE=Ethernet',
    'BOOTPROTO=dhcp',
    'ONBOOT=yes',
    'DEFROUTE=no',
    'PEERDNS=no',
    'IPV6INIT=no',
    '',
  ].join('\n')
}

export function configPath(style: NetworkConfigStyle, eth: string): string {
  switch (style) {
    case 'ifupdown':
      return `/etc/network/interfaces.d/ifcfg-${eth}`
    case 'netplan':
      return '/etc/netplan/90-xenstack-himn.yaml'
    case 'ifcfg':
      return `/etc/sysconfig/network-scripts/ifcfg-${eth}`
  }
}

export function renderConfig(style: NetworkConfigStyle, eth: string, mac: string): string {
  return style === 'ifupdown'
    ? renderIfupdown(eth)
    : style === 'netplan'
      ? renderNetplan(eth, mac)
      : renderIfcfg(eth, mac)
}

// -- the guest ---------------------------------------------------------------------------------------------

export async function interfaces(exec: Executor): Promise<NetworkInterface[]> {
  const r = await exec.run(['sh', '-c', 'ip -o link show; echo ---; ip -o -4 addr show'])
  const [links = '', addrs = ''] = r.stdout.split('---\n')
  return parseInterfaces(links, addrs).filter((i) => i.name !== 'lo')
}

/** How the guest persists network configuration: netplan where it is in use, else ifupdown or ifcfg. */
export async function detectStyle(exec: Executor): Promise<NetworkConfigStyle> {
  const r = await exec.run([
    'sh',
    '-c',
    'if command -v netplan >/dev/null 2>&1 && ls /etc/netplan/*.yaml >/dev/null 2>&1; then echo netplan; ' +
      'elif [ -d /etc/sysconfig/network-scripts ]; then echo ifcfg; ' +
      'elif command -v ifup >/dev/null 2>&1 || [ -d /etc/network ]; then echo ifupdown; else echo none; fi',
  ])
  const s = r.stdout.trim()
  if (s === 'netplan' || s === 'ifcfg' || s === 'ifupdown') return s
  throw new HimnGuestError(
    `${exec.host}: no way to persist network configuration was found (no netplan, /etc/sysconfig/network-scripts ` +
      `or ifupdown); install ifupdown`,
  )
}

/** `vm-data/himn_mac` as the guest reads it (null when xenstore-read is missing or the key is not there). */
export async function xenstoreMacInGuest(exec: Executor): Promise<string | null> {
  const r = await exec.run(
    ['sh', '-c', 'command -v xenstore-read >/dev/null 2>&1 || exit 3; xenstore-read vm-data/himn_mac'],
    { allowedExitCodes: [0, 1, 3] },
  )
  const mac = r.code === 0 ? r.stdout.trim().toLowerCase() : ''
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) ? mac : null
}

export interface FindOptions {
  /** The MAC from XAPI's xenstore_data, when the guest cannot read xenstore itself. */
  macFromXapi?: () => Promise<string | null>
  /** Seconds one DHCP probe may take per interface (default 10). */
  dhcpProbeSeconds?: number
  log?: (line: string) => void
}

/** Finds the HIMN interface (see the module comment); throws with everything that was looked at. */
export async function findHimnInterface(exec: Executor, opts: FindOptions = {}): Promise<HimnInterface> {
  const log = opts.log ?? (() => {})
  const ifs = await interfaces(exec)
  const withMac = (i: NetworkInterface) => ({ name: i.name, mac: (i.mac ?? '').toLowerCase() })
  let macTried: string | null | undefined
  const xenstoreMac = async (): Promise<string | null> => {
    if (macTried !== undefined) return macTried
    macTried = (await xenstoreMacInGuest(exec)) ?? (opts.macFromXapi ? await opts.macFromXapi() : null)
    return macTried
  }

  const addressed = ifs.filter((i) => i.ipv4.some(isHimnAddress))
  // the xenstore MAC is read even when one interface is addressed: an IPv4 link-local address (avahi, systemd's
  // LinkLocalAddressing) on another NIC must not pass for the HIMN while the real one is still unaddressed
  const mac = await xenstoreMac()
  if (mac) {
    const byMac = ifs.filter((i) => (i.mac ?? '').toLowerCase() === mac)
    if (byMac.length === 1)
      return { ...withMac(byMac[0]), how: byMac[0].ipv4.some(isHimnAddress) ? 'address' : 'xenstore' }
    if (byMac.length > 1)
      throw new HimnGuestError(
        `${exec.host}: ${byMac.length} interfaces have the HIMN MAC ${mac} (${byMac.map((i) => i.name).join(', ')})`,
      )
  }
  if (addressed.length === 1) return { ...withMac(addressed[0]), how: 'address' }
  if (addressed.length > 1)
    throw new HimnGuestError(
      `${exec.host}: ${addressed.map((i) => i.name).join(', ')} all have 169.254.x.x addresses and xenstore names no ` +
        `HIMN MAC to tell them apart (vm-data/himn_mac ${mac ? `is ${mac}, on none of them` : 'is not set'})`,
    )
  const unaddressed = ifs.filter((i) => i.ipv4.length === 0)
  for (const i of unaddressed) {
    log(`DHCP probe on ${i.name}`)
    if (await dhcpProbe(exec, i.name, opts.dhcpProbeSeconds ?? 10)) return { ...withMac(i), how: 'dhcp' }
  }
  throw new HimnGuestError(
    `${exec.host}: no HIMN interface: no interface has a 169.254.x.x address ` +
      `(${ifs.map((i) => `${i.name} ${i.ipv4.join(',') || 'unaddressed'}`).join('; ')}), ` +
      `xenstore vm-data/himn_mac is ${mac ?? 'not set'}${mac ? ' and on no interface' : ''}, and DHCP got no ` +
      `169.254.x.x lease on ${unaddressed.map((i) => i.name).join(', ') || 'any unaddressed interface'}. ` +
      `Attach the VM to the host internal management network (xenserver.himn-attach or xenstack himn add VM)`,
  )
}

/**
 * One bounded DHCP attempt; true when it leased a HIMN address. Always released and the interface put back down
 * if it was down, so a probe leaves nothing behind (its own pid and lease files, not the system's).
 */
async function dhcpProbe(exec: Executor, eth: string, seconds: number): Promise<boolean> {
  const script = [
    'eth="$1"; t="$2"; state=$(cat /sys/class/net/$eth/operstate 2>/dev/null)',
    'up=$(ip -o link show "$eth" | grep -c "[<,]UP[,>]")',
    'pf=/run/xenstack-himn-probe.$eth.pid; lf=/run/xenstack-himn-probe.$eth.leases',
    'timeout "$t" dhclient -4 -1 -pf $pf -lf $lf "$eth" >/dev/null 2>&1',
    'found=$(ip -o -4 addr show dev "$eth" | grep -c " inet 169\\.254\\.")',
    'dhclient -4 -r -pf $pf -lf $lf "$eth" >/dev/null 2>&1',
    'rm -f $pf $lf; ip -4 addr flush dev "$eth" 2>/dev/null',
    '[ "$up" = 0 ] && ip link set "$eth" down',
    ': "$state"; [ "$found" != 0 ]',
  ].join('\n')
  const r = await exec.run(['sh', '-c', script, 'sh', eth, String(seconds)], {
    allowedExitCodes: [0, 1],
    timeoutMs: (seconds + 20) * 1000,
  })
  return r.code === 0
}

export interface ConfigureResult {
  iface: HimnInterface
  style: NetworkConfigStyle
  path: string
  address: string
  changes: { resource: string; result: 'changed' | 'unchanged'; diff?: string }[]
}

export interface ConfigureOptions extends FindOptions {
  /** Seconds to wait for the address after bringing the interface up (default 60). */
  addressTimeoutS?: number
  dryRun?: boolean
}

/**
 * Finds, persists, brings up and verifies the HIMN interface. A second run changes nothing: the file is compared
 * first, and the interface is only (re)started when its file changed or it has no HIMN address.
 */
export async function configureHimnGuest(exec: Executor, opts: ConfigureOptions = {}): Promise<ConfigureResult> {
  const log = opts.log ?? (() => {})
  const iface = await findHimnInterface(exec, opts)
  log(`HIMN interface ${iface.name} (${iface.mac}), found by ${iface.how}`)
  const style = await detectStyle(exec)
  const path = configPath(style, iface.name)
  const resources: Resource[] = [
    new FileResource({
      path,
      content: renderConfig(style, iface.name, iface.mac),
      mode: style === 'netplan' ? 0o600 : 0o644,
    }),
  ]
  if (style === 'ifupdown') {
    // a Debian /etc/network/interfaces that does not read interfaces.d would ignore the file
    const main = await exec.run(['sh', '-c', 'cat /etc/network/interfaces 2>/dev/null'], { allowedExitCodes: [0, 1] })
    if (!/^\s*source(-directory)?\s+\/etc\/network\/interfaces\.d/m.test(main.stdout))
      resources.push(new LineInFile({ path: '/etc/network/interfaces', line: 'source /etc/network/interfaces.d/*' }))
  }
  const changes: ConfigureResult['changes'] = []
  if (opts.dryRun) {
    return { iface, style, path, address: '', changes }
  }
  const report = await apply(exec, resources)
  for (const e of report.entries)
    changes.push({
      resource: e.id,
      result: e.status === 'changed' ? 'changed' : 'unchanged',
      diff: e.diff.join('\n') || undefined,
    })
  if (!report.ok) {
    const bad = report.entries.find((e) => e.status === 'failed')
    throw new HimnGuestError(`${exec.host}: ${bad?.id}: ${bad?.error}`)
  }
  const fileChanged = report.entries.some((e) => e.status === 'changed')
  const current = (await interfaces(exec)).find((i) => i.name === iface.name)
  const hasAddress = current?.ipv4.some(isHimnAddress) ?? false
  if (fileChanged || !hasAddress) {
    await bringUp(exec, style, iface.name)
    changes.push({
      resource: `interface ${iface.name}`,
      result: 'changed',
      diff: `~ ${iface.name} brought up with ${style}`,
    })
  }
  const address = await verifyAddress(exec, iface.name, opts.addressTimeoutS ?? 60)
  if (await dropDefaultRoute(exec, iface.name))
    changes.push({
      resource: `route default dev ${iface.name}`,
      result: 'changed',
      diff: `- default route via ${iface.name}`,
    })
  log(`HIMN ${iface.name} has ${address}`)
  return { iface, style, path, address, changes }
}

async function bringUp(exec: Executor, style: NetworkConfigStyle, eth: string): Promise<void> {
  const cmd =
    style === 'netplan'
      ? 'netplan apply'
      : style === 'ifcfg'
        ? `{ ifdown ${eth} || true; } >/dev/null 2>&1; ifup ${eth}`
        : // ifupdown keeps its state under /run/network and ignores `ifup` of an interface it thinks is up (its
          // address lost, or its file changed): `ifdown --force` first, always
          `mkdir -p /run/network; ifdown --force ${eth} >/dev/null 2>&1 || true; ifup ${eth}`
  await exec.run(['sh', '-c', cmd], { timeoutMs: 120_000 })
}

/** Waits (bounded) for a 169.254.x.x address on the interface, as the original checked before going on. */
async function verifyAddress(exec: Executor, eth: string, timeoutS: number): Promise<string> {
  const deadline = Date.now() + timeoutS * 1000
  for (;;) {
    const i = (await interfaces(exec)).find((x) => x.name === eth)
    const a = i?.ipv4.find(isHimnAddress)
    if (a) return a
    if (Date.now() >= deadline)
      throw new HimnGuestError(
        `${exec.host}: HIMN failed to get an IP address from the hypervisor: ${eth} has ` +
          `${i?.ipv4.join(', ') || 'no IPv4 address'} ${timeoutS} s after it was brought up (expected 169.254.x.x from dom0's DHCP)`,
      )
    await new Promise((r) => setTimeout(r, 500))
  }
}

/** Removes a default route through the HIMN if one is there (the persisted config prevents it on the next boot). */
async function dropDefaultRoute(exec: Executor, eth: string): Promise<boolean> {
  const r = await exec.run(['ip', '-4', 'route', 'show', 'default', 'dev', eth])
  if (!r.stdout.trim()) return false
  await exec.run(['ip', '-4', 'route', 'del', 'default', 'dev', eth])
  return true
}
