/**
 * The networks dom0 must reach through the compute VM, with their real CIDRs: from the node record's addresses
 * (`{ management: '10.61.0.5/22', storage: … }`, prefixes as configured — the original plugin assumed /24), each
 * matched to the compute VM's interface that holds it, and the compute VM's HIMN interface and address.
 * Interfaces are read fresh (`ip -o -4 addr`), not from cached facts: the HIMN interface appears during the
 * deployment, after facts may have been gathered.
 */
import type { NativeTaskContext } from '../../engine/tasks.js'
import { canonicalCidr, type Executor } from '../../node/index.js'
import { nodeDataOf } from '../context.js'

/** The networks the original routed and forwarded (`mgmt` and `storage`), by their node-record names. */
export const ROUTED_NETWORKS = ['management', 'storage'] as const

export interface Ipv4Interface {
  name: string
  /** Address with prefix, e.g. `10.61.0.5/22`. */
  address: string
}

export interface ComputeNetwork {
  /** Node-record name: `management` or `storage`. */
  name: string
  /** The compute VM's address on it, with prefix. */
  address: string
  /** The network, host bits cleared (`10.61.0.0/22`). */
  cidr: string
  /** The compute VM's interface on it (`br-mgmt` on Fuel nodes, `eth0` in the lab). */
  dev: string
}

export interface Himn {
  dev: string
  /** The compute VM's HIMN address without prefix (dom0's gateway to the networks). */
  ip: string
}

export async function ipv4Interfaces(exec: Executor): Promise<Ipv4Interface[]> {
  const r = await exec.run(['ip', '-o', '-4', 'addr', 'show'])
  const out: Ipv4Interface[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /^\d+:\s+([^\s@:]+)\s+inet\s+(\S+)/.exec(line)
    if (m) out.push({ name: m[1], address: m[2] })
  }
  return out
}

const ipOf = (address: string): string => address.split('/')[0]

/** The compute VM's interface on the HIMN: the one with an address in 169.254.0.0/16. */
export function himnOf(host: string, interfaces: readonly Ipv4Interface[]): Himn {
  const himn = interfaces.filter((i) => /^169\.254\./.test(i.address) && ipOf(i.address) !== '169.254.0.1')
  if (himn.length === 0)
    throw new Error(
      `${host}: no interface has an address in 169.254.0.0/16, so the HIMN is not configured in the guest ` +
        `(xenserver.himn-guest must run first); interfaces: ${describe(interfaces)}`,
    )
  if (new Set(himn.map((i) => i.name)).size > 1)
    throw new Error(`${host}: more than one interface on 169.254.0.0/16 (${describe(himn)}); expected only the HIMN`)
  return { dev: himn[0].name, ip: ipOf(himn[0].address) }
}

/**
 * Matches each configured address to the interface holding it. An address must carry its prefix: without it the
 * network is unknown, and guessing /24 is the flaw this replaces.
 */
export function computeNetworks(
  host: string,
  addresses: Record<string, string | undefined>,
  interfaces: readonly Ipv4Interface[],
  names: readonly string[] = ROUTED_NETWORKS,
): ComputeNetwork[] {
  const out: ComputeNetwork[] = []
  for (const name of names) {
    const address = addresses[name]
    if (address === undefined) continue
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(address))
      throw new Error(`${host}: addresses.${name} is ${JSON.stringify(address)}; expected an address with its prefix`)
    const cidr = canonicalCidr(address)
    const holder = interfaces.find((i) => ipOf(i.address) === ipOf(address))
    if (!holder)
      throw new Error(
        `${host}: no interface holds the ${name} address ${address} (interfaces: ${describe(interfaces)})`,
      )
    if (holder.address !== address)
      throw new Error(
        `${host}: the ${name} address is configured as ${address} but ${holder.name} has ${holder.address}`,
      )
    out.push({ name, address, cidr, dev: holder.name })
  }
  if (out.length === 0)
    throw new Error(`${host}: the node record has no ${names.join(' or ')} address (data.addresses)`)
  return out
}

function describe(interfaces: readonly Ipv4Interface[]): string {
  return interfaces.length ? interfaces.map((i) => `${i.name} ${i.address}`).join(', ') : 'none'
}

/** The node record's addresses (`data.addresses`) for a native task; an error naming the node without them. */
export function nodeAddressesOf(ctx: Pick<NativeTaskContext, 'node'> & object): Record<string, string | undefined> {
  const found = nodeDataOf(ctx).addresses
  if (found && typeof found === 'object') return found
  throw new Error(
    `node ${ctx.node}: its record has no addresses (data.addresses: { management: 'a.b.c.d/prefix', storage: … }), ` +
      `so the networks dom0 must reach are unknown`,
  )
}
