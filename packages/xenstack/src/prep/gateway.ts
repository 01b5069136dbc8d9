/**
 * Dom0 as the gateway of the lab's `private` network (the single-host private-network guide): the gateway address
 * on the network's bridge, the route to the private range through it, MASQUERADE for traffic leaving the range,
 * FORWARD accepted for it (XenServer's dom0 FORWARD chain ends in RH-Firewall-1-INPUT's REJECT) and IP forwarding.
 *
 * XAPI creates a private network's bridge only when a VIF on it is plugged, and removes it again, so nothing set on
 * it lasts: a udev rule runs the generated script whenever the bridge appears (as the plugin's reroute.sh does for
 * the HIMN). The script is generated whole for the CIDR (any prefix; the gateway is its first address), and every
 * step is a replace or a check-then-add, so running it again changes nothing. `check` as its argument only reports
 * (exit 0 when everything is in place), which is also what the node resource checks before it runs the script.
 */
import { CommandResource, DirectoryResource, FileResource, canonicalCidr, type Resource } from '../node/index.js'

export const GATEWAY_SCRIPT = '/etc/udev/scripts/xenstack-private-gateway.sh'
export const GATEWAY_RULES = '/etc/udev/rules.d/91-xenstack-private-gateway.rules'

export interface PrivateGateway {
  /** The private range, canonical (`10.1.0.0/22`). */
  cidr: string
  prefix: number
  /** Dom0's address on the bridge: the range's first host address. */
  gateway: string
  /** The private network's bridge in dom0 (XAPI names it, e.g. `xapi1`). */
  bridge: string
}

/** The gateway for a CIDR on a bridge; errors name the flag and say what was expected. */
export function privateGateway(cidr: string, bridge: string): PrivateGateway {
  let canonical: string
  try {
    canonical = canonicalCidr(cidr)
  } catch {
    throw new Error(`--cidr ${JSON.stringify(cidr)}: expected an IPv4 network with its prefix, like 10.1.0.0/22`)
  }
  if (!cidr.includes('/')) throw new Error(`--cidr ${cidr}: expected a prefix (like ${cidr}/24)`)
  const [net, len] = canonical.split('/')
  const prefix = Number(len)
  if (prefix < 8 || prefix > 30)
    throw new Error(
      `--cidr ${cidr}: prefix /${prefix} is out of range; expected /8 to /30 (room for a gateway and VMs)`,
    )
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge))
    throw new Error(`private network bridge ${JSON.stringify(bridge)}: expected a Linux interface name`)
  const n = net.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0) + 1
  const gateway = [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.')
  return { cidr: canonical, prefix, gateway, bridge }
}

const masquerade = (g: PrivateGateway) => `POSTROUTING -s ${g.cidr} ! -d ${g.cidr} -j MASQUERADE`
const forwardOut = (g: PrivateGateway) => `FORWARD -i ${g.bridge} -s ${g.cidr} -j ACCEPT`
const forwardBack = (g: PrivateGateway) =>
  `FORWARD -o ${g.bridge} -d ${g.cidr} -m state --state RELATED,ESTABLISHED -j ACCEPT`

/** Shell lines that exit 0 exactly when the gateway is in place on the bridge (used by the script and the check). */
export function gatewayCheck(g: PrivateGateway): string {
  return [
    `ip -4 addr show dev ${g.bridge} 2>/dev/null | grep -q ' inet ${g.gateway}/${g.prefix} '`,
    `ip -4 route show ${g.cidr} dev ${g.bridge} 2>/dev/null | grep -q .`,
    'test "$(cat /proc/sys/net/ipv4/ip_forward)" = 1',
    `iptables -t nat -C ${masquerade(g)} 2>/dev/null`,
    `iptables -C ${forwardOut(g)} 2>/dev/null`,
    `iptables -C ${forwardBack(g)} 2>/dev/null`,
  ].join(' && \\\n  ')
}

/** The udev script for this gateway. */
export function gatewayScript(g: PrivateGateway): string {
  return [
    '#!/bin/sh',
    '# Written by xenstack (xen private-lab); rewritten on every run, do not edit.',
    `# Dom0 as gateway ${g.gateway} of the private network ${g.cidr} on bridge ${g.bridge}. udev runs this when`,
    `# XAPI brings the bridge up (${GATEWAY_RULES}); running it again changes nothing. "check" only reports.`,
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'check() {',
    `  ${gatewayCheck(g)}`,
    '}',
    'if [ "$1" = check ]; then check; exit $?; fi',
    `# udev runs this as the bridge is created: wait (at most 30 s) for it to exist`,
    `i=0; while [ $i -lt 30 ] && ! ip link show dev ${g.bridge} >/dev/null 2>&1; do sleep 1; i=$((i+1)); done`,
    'rc=0',
    `ip addr replace ${g.gateway}/${g.prefix} dev ${g.bridge} || rc=1`,
    `ip link set dev ${g.bridge} up || rc=1`,
    `ip route replace ${g.cidr} dev ${g.bridge} src ${g.gateway} || rc=1`,
    'echo 1 > /proc/sys/net/ipv4/ip_forward || rc=1',
    `iptables -t nat -C ${masquerade(g)} 2>/dev/null || iptables -t nat -A ${masquerade(g)} || rc=1`,
    // inserted first: dom0's FORWARD chain ends in a jump to RH-Firewall-1-INPUT, which rejects the rest
    `iptables -C ${forwardBack(g)} 2>/dev/null || iptables -I ${forwardBack(g).replace(/^FORWARD/, 'FORWARD 1')} || rc=1`,
    `iptables -C ${forwardOut(g)} 2>/dev/null || iptables -I ${forwardOut(g).replace(/^FORWARD/, 'FORWARD 1')} || rc=1`,
    'exit $rc',
    '',
  ].join('\n')
}

export function gatewayRule(bridge: string): string {
  return `SUBSYSTEM=="net", ACTION=="add", KERNEL=="${bridge}", RUN+="${GATEWAY_SCRIPT}"\n`
}

/**
 * The resources for dom0: the script and the udev rule, then the gateway now when the bridge exists (it does only
 * while a VM with a VIF on the network runs; otherwise udev sets it up when the bridge appears).
 */
export function gatewayResources(g: PrivateGateway): Resource[] {
  return [
    new DirectoryResource({ path: '/etc/udev/scripts' }),
    new DirectoryResource({ path: '/etc/udev/rules.d' }),
    new FileResource({ path: GATEWAY_SCRIPT, content: gatewayScript(g), mode: 0o755 }),
    new FileResource({ path: GATEWAY_RULES, content: gatewayRule(g.bridge), mode: 0o644 }),
    new CommandResource({
      name: `private gateway ${g.gateway}/${g.prefix} on ${g.bridge}`,
      command: [GATEWAY_SCRIPT],
      onlyIf: ['ip', 'link', 'show', 'dev', g.bridge],
      unless: ['sh', '-c', gatewayCheck(g)],
      timeoutMs: 60_000,
    }),
  ]
}
