/**
 * What the compute configuration needs to know about the deployment, read from a native task's context with
 * errors that name the node and the missing record field: the compute VM's management address (the VNC proxy
 * client address and the OVS agent's OpenFlow listener), the public endpoint the noVNC proxy is reached at
 * (address and TLS scheme), the tenant network segmentation, and the `xenserver` settings nova and neutron use.
 */
import type { NativeTaskContext } from '../../engine/tasks.js'
import { settingValue, nodeDataOf, xenserverSettings } from '../context.js'
import type { Secret } from '../../node/index.js'

type Ctx = Pick<NativeTaskContext, 'node'> & {
  settings?: Record<string, unknown>
  models?: Record<string, unknown>
} & object

export class ComputeInputError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ComputeInputError'
  }
}

const IPV4 = /^(\d{1,3})(\.\d{1,3}){3}$/
const ipOf = (address: string) => address.split('/')[0]

/** The compute VM's address on a network of its record (`data.addresses.<name>`, `a.b.c.d/prefix`), without prefix. */
export function addressOf(ctx: Ctx, network: string): string | undefined {
  const a = nodeDataOf(ctx).addresses?.[network]
  return typeof a === 'string' && IPV4.test(ipOf(a)) ? ipOf(a) : undefined
}

export function managementAddressOf(ctx: Ctx): string {
  const ip = addressOf(ctx, 'management')
  if (!ip)
    throw new ComputeInputError(
      `node ${ctx.node}: its record has no management address (data.addresses.management: 'a.b.c.d/prefix'), ` +
        `which nova's VNC proxy client address and the OVS agent's OpenFlow listener need`,
    )
  return ip
}

export interface PublicEndpoint {
  /** The public VIP (or the TLS certificate's hostname when TLS is on and one is set). */
  host: string
  tls: boolean
}

const get = (o: unknown, path: string[]): unknown =>
  path.reduce<unknown>(
    (cur, k) => (cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined),
    o,
  )

/**
 * Where users reach the noVNC proxy: Fuel's `network_metadata.vips.public.ipaddr` model, else the cluster's
 * `public_vip` (what xenstack records with the environment). TLS when Fuel's `public_ssl.services` setting is on
 * (then its `hostname`, which the certificate names, when set) or the cluster says `public_tls: true`. The original
 * plugin wrote `public.fuel.local` until LP#1513551; a missing VIP is an error, never a guess.
 */
export function publicEndpointOf(ctx: Ctx): PublicEndpoint {
  const models = ctx.models ?? {}
  const vip = get(models, ['network_metadata', 'vips', 'public', 'ipaddr']) ?? get(models, ['cluster', 'public_vip'])
  const tls =
    settingValue(ctx.settings ?? {}, 'public_ssl', 'services') === true ||
    get(models, ['cluster', 'public_tls']) === true
  const hostname = settingValue(ctx.settings ?? {}, 'public_ssl', 'hostname')
  if (typeof vip !== 'string' || vip === '')
    throw new ComputeInputError(
      `node ${ctx.node}: the environment's public VIP is unknown (cluster.public_vip or network_metadata.vips.public.ipaddr), ` +
        `so nova's noVNC base URL cannot be written; record it with the environment`,
    )
  return { host: tls && typeof hostname === 'string' && hostname ? hostname : vip, tls }
}

/** `vlan` or `tun`, from the cluster (Fuel's net_segment_type) or the networking parameters. */
export function segmentationOf(ctx: Ctx): 'vlan' | 'tun' {
  const models = ctx.models ?? {}
  const s = get(models, ['cluster', 'net_segment_type']) ?? get(models, ['networking_parameters', 'segmentation_type'])
  if (s === 'vlan' || s === 'tun') return s
  if (s === 'vxlan' || s === 'gre') return 'tun'
  throw new ComputeInputError(
    `node ${ctx.node}: the tenant network segmentation is ${s === undefined ? 'not recorded' : JSON.stringify(s)}; ` +
      `expected cluster.net_segment_type vlan or tun`,
  )
}

export interface XenApiCredentials {
  username: string
  password: Secret
}

/** The XAPI credentials nova and neutron write (the password only as a Secret: shown as *** everywhere). */
export function credentialsOf(ctx: Ctx): XenApiCredentials {
  const s = xenserverSettings({ settings: ctx.settings ?? {} })
  if (!s.password)
    throw new ComputeInputError(
      `node ${ctx.node}: the XenServer password setting (xenserver.password) is empty; set it in the environment's settings`,
    )
  return { username: s.username, password: s.password }
}

/** A `xenserver` setting's string value, or the default. */
export function xenserverSetting(ctx: Ctx, key: string, fallback: string): string {
  const v = settingValue(ctx.settings ?? {}, 'xenserver', key)
  return typeof v === 'string' && v !== '' ? v : fallback
}
