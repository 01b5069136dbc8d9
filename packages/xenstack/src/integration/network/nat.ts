/**
 * The compute VM as dom0's gateway (the original's `forward_from_himn` and `forward_port`): IP forwarding,
 * MASQUERADE out of each network, FORWARD in both directions between each network and the HIMN, INPUT accepted
 * from the HIMN (dom0 reaches the Cinder iSCSI target on the compute VM), and port 80 on the management interface
 * forwarded to dom0's 169.254.0.1 for noVNC. Every rule is checked (`iptables -C`) before it is added, so each is
 * present exactly once however often this runs (the original appended blindly). The rules are saved in
 * iptables-save format to /etc/iptables/rules.v4, which iptables-persistent restores at boot; where it is not
 * installed, an ifupdown pre-up hook restores the file once per boot.
 */
import {
  DirectoryResource,
  FileResource,
  IptablesPersist,
  IptablesRule,
  Sysctl,
  type IptablesRuleOptions,
  type Resource,
} from '../../node/index.js'
import { DOM0_HIMN_ADDRESS } from '../dom0-access.js'
import type { ComputeNetwork } from './addresses.js'

export const SAVED_RULES = '/etc/iptables/rules.v4'
export const RESTORE_HOOK = '/etc/network/if-pre-up.d/xenstack-iptables-restore'

export interface ComputeNatOptions {
  himnDev: string
  networks: readonly Pick<ComputeNetwork, 'name' | 'dev'>[]
  /** The network whose port 80 goes to dom0 for noVNC (default `management`). */
  consoleNetwork?: string
  /** Where the rules are saved (default /etc/iptables/rules.v4). */
  savedRules?: string
}

/** The iptables rules, in order, as `IptablesRule` options. */
export function natRules(opts: ComputeNatOptions): IptablesRuleOptions[] {
  const himn = opts.himnDev
  const rules: IptablesRuleOptions[] = []
  for (const n of dedupeByDev(opts.networks)) {
    rules.push({ table: 'nat', chain: 'POSTROUTING', rule: ['-o', n.dev, '-j', 'MASQUERADE'] })
    rules.push({
      chain: 'FORWARD',
      rule: ['-i', n.dev, '-o', himn, '-m', 'state', '--state', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
    })
    rules.push({ chain: 'FORWARD', rule: ['-i', himn, '-o', n.dev, '-j', 'ACCEPT'] })
  }
  rules.push({ chain: 'INPUT', rule: ['-i', himn, '-j', 'ACCEPT'] })
  const consoleName = opts.consoleNetwork ?? 'management'
  const mgmt = opts.networks.find((n) => n.name === consoleName)
  if (mgmt) {
    // noVNC: the proxy on the controllers connects to <compute management address>:80, which is dom0's console.
    rules.push({
      table: 'nat',
      chain: 'PREROUTING',
      rule: ['-i', mgmt.dev, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', DOM0_HIMN_ADDRESS],
    })
    // New connections only pass through the DNAT rule's FORWARD accept; the general rule above lets only replies in.
    rules.push({
      chain: 'FORWARD',
      rule: ['-i', mgmt.dev, '-o', himn, '-p', 'tcp', '-d', DOM0_HIMN_ADDRESS, '--dport', '80', '-j', 'ACCEPT'],
    })
  }
  return rules
}

/** The pre-up hook that restores the saved rules at boot when iptables-persistent does not. */
export function restoreHook(savedRules = SAVED_RULES): string {
  return [
    '#!/bin/sh',
    '# Written by xenstack (xenserver.compute-nat): restores the saved iptables rules once per boot, before the',
    '# first interface comes up, where iptables-persistent (netfilter-persistent) is not installed to do it.',
    '[ -x /usr/sbin/netfilter-persistent ] && exit 0',
    `[ -r ${savedRules} ] || exit 0`,
    '[ -e /run/xenstack-iptables-restored ] && exit 0',
    `iptables-restore < ${savedRules} && : > /run/xenstack-iptables-restored`,
    '',
  ].join('\n')
}

export function computeNatResources(opts: ComputeNatOptions): Resource[] {
  const savedRules = opts.savedRules ?? SAVED_RULES
  return [
    new Sysctl({ key: 'net.ipv4.ip_forward', value: 1 }),
    ...natRules(opts).map((r) => new IptablesRule(r)),
    new IptablesPersist({ path: savedRules }),
    new DirectoryResource({ path: '/etc/network/if-pre-up.d' }),
    new FileResource({ path: RESTORE_HOOK, content: restoreHook(savedRules), mode: 0o755 }),
  ]
}

function dedupeByDev<T extends { dev: string }>(networks: readonly T[]): T[] {
  const seen = new Set<string>()
  return networks.filter((n) => !seen.has(n.dev) && seen.add(n.dev))
}
