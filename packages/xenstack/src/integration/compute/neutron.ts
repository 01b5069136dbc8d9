/**
 * `xenserver.neutron-agent`: the OVS agent in the compute VM drives Dom0's Open vSwitch (reference §8 step 11,
 * §18.4). VLAN: `bridge_mappings = <physnet>:<Dom0 bridge>`, the bridge found through XAPI from the MAC of the
 * compute VM's interface on the private network (its VIF's network's bridge — what the original asked `xe` in Dom0
 * for). VxLAN: `local_ip` and `tunnel_types = vxlan`. The agent reaches Dom0's ovsdb-server at
 * tcp:169.254.0.1:6640 and listens for Dom0's OpenFlow connection on its management address. rootwrap.conf's
 * `[xenapi]` credentials are written here too; the service is restarted once, only when one of them changed.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import type { Executor, MaybeSecret, Resource } from '../../node/index.js'
import { computeVmOf, execOf, nodeDataOf, xapiOf } from '../context.js'
import { DOM0_HIMN_ADDRESS } from '../dom0-access.js'
import { iniFileResources } from './ini-files.js'
import { addressOf, ComputeInputError, credentialsOf, managementAddressOf, segmentationOf } from './inputs.js'
import { openstackReleaseOf, type OpenStackRelease } from './release.js'

/** Fuel 9's name for the tenant VLAN physnet (br-prv); `networking_parameters.physnet` overrides it. */
export const DEFAULT_PHYSNET = 'physnet2'

export interface NeutronAgentInputs {
  segmentation: 'vlan' | 'tun'
  username: string
  password: MaybeSecret
  managementAddress: string
  /** VLAN: `<physnet>:<dom0 bridge>`. */
  bridgeMappings?: string
  /** VxLAN: the tunnel endpoint. */
  localIp?: string
}

export function neutronAgentValues(i: NeutronAgentInputs): Record<string, MaybeSecret | undefined> {
  return {
    bridge_mappings: i.segmentation === 'vlan' ? i.bridgeMappings : undefined,
    local_ip: i.segmentation === 'tun' ? i.localIp : undefined,
    tunnel_types: i.segmentation === 'tun' ? 'vxlan' : undefined,
    of_listen_address: i.managementAddress,
    ovsdb_connection: `tcp:${DOM0_HIMN_ADDRESS}:6640`,
    connection_url: `http://${DOM0_HIMN_ADDRESS}`,
    connection_username: i.username,
    connection_password: i.password,
  }
}

/**
 * The agent's file and rootwrap.conf `[xenapi]` (neutron-rootwrap-xen-dom0 logs in to XAPI with it), then the
 * agent's service, restarted once when either changed.
 */
export function neutronAgentResources(release: OpenStackRelease, inputs: NeutronAgentInputs): Resource[] {
  if (inputs.segmentation === 'vlan' && !inputs.bridgeMappings)
    throw new ComputeInputError('VLAN segmentation needs bridge_mappings (the Dom0 bridge of the private network)')
  if (inputs.segmentation === 'tun' && !inputs.localIp)
    throw new ComputeInputError('tunnelling segmentation needs local_ip (the tunnel endpoint address)')
  const values = neutronAgentValues(inputs)
  const rootwrap = iniFileResources('neutron-rootwrap', release, values)
  const agent = iniFileResources('ovs-agent', release, values, rootwrap.settings)
  return [...agent.settings, ...rootwrap.settings, ...agent.services]
}

/**
 * The compute VM's interface on the tenant (private) network: the record's `data.interfaces.private`, else the
 * interface holding its public address, else its management address (the original fell back from br-aux to br-ex
 * the same way). A VLAN sub-interface (`eth1.102`) stands for its parent, whose MAC the VIF has.
 */
export async function privateInterfaceOf(
  ctx: Pick<NativeTaskContext, 'node'> & object,
  exec: Executor,
): Promise<{ name: string; why: string }> {
  const named = (nodeDataOf(ctx).interfaces as Record<string, unknown> | undefined)?.private
  if (typeof named === 'string' && named) return { name: named.replace(/\.\d+$/, ''), why: 'data.interfaces.private' }
  const r = await exec.run(['ip', '-o', '-4', 'addr', 'show'])
  for (const network of ['public', 'management']) {
    const ip = addressOf(ctx, network)
    if (!ip) continue
    const line = r.stdout.split('\n').find((l) => new RegExp(`\\sinet ${ip.replace(/\./g, '\\.')}/`).test(l))
    const m = line && /^\d+:\s+([^\s@:]+)/.exec(line)
    if (m) return { name: m[1].replace(/\.\d+$/, ''), why: `it holds the ${network} address ${ip}` }
  }
  throw new ComputeInputError(
    `node ${ctx.node}: cannot tell which interface carries the tenant VLANs: record data.interfaces.private ` +
      `(or data.addresses.public/management held by an interface)`,
  )
}

export async function macOf(exec: Executor, iface: string, node: string): Promise<string> {
  if (!/^[\w.-]+$/.test(iface))
    throw new ComputeInputError(`node ${node}: interface name ${JSON.stringify(iface)} is not valid`)
  const r = await exec.run(['cat', `/sys/class/net/${iface}/address`], { allowedExitCodes: [0, 1] })
  const mac = r.stdout.trim().toLowerCase()
  if (r.code !== 0 || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac))
    throw new ComputeInputError(`node ${node}: no MAC address for interface ${iface} (/sys/class/net/${iface}/address)`)
  return mac
}

/** The Dom0 bridge behind the VM's VIF with this MAC (VIF → network → bridge, read from XAPI). */
export async function dom0BridgeForMac(xapi: Xapi, vmRef: string, mac: string, node: string): Promise<string> {
  const vifs = (await xapi.call('VM.get_VIFs', vmRef)) as string[]
  for (const vif of vifs) {
    const rec = (await xapi.call('VIF.get_record', vif)) as { MAC: string; network: string; device: string }
    if (String(rec.MAC).toLowerCase() !== mac) continue
    const bridge = String(await xapi.call('network.get_bridge', rec.network))
    if (!bridge)
      throw new ComputeInputError(`node ${node}: the network of VIF ${rec.device} (${mac}) has no bridge in XAPI`)
    return bridge
  }
  throw new ComputeInputError(
    `node ${node}: no VIF of its VM has the MAC ${mac} in XAPI (${vifs.length} VIFs), so the Dom0 bridge of the private network is unknown`,
  )
}

export async function neutronAgentInputsOf(ctx: NativeTaskContext): Promise<NeutronAgentInputs> {
  const creds = credentialsOf(ctx)
  const segmentation = segmentationOf(ctx)
  const inputs: NeutronAgentInputs = {
    segmentation,
    username: creds.username,
    password: creds.password,
    managementAddress: managementAddressOf(ctx),
  }
  if (segmentation === 'vlan') {
    const exec = execOf(ctx)
    const xapi = xapiOf(ctx)
    const iface = await privateInterfaceOf(ctx, exec)
    const mac = await macOf(exec, iface.name, ctx.node)
    const vm = await computeVmOf(ctx, xapi)
    const bridge = await dom0BridgeForMac(xapi, vm.ref, mac, ctx.node)
    const physnet =
      ((ctx.models?.networking_parameters as Record<string, unknown> | undefined)?.physnet as string | undefined) ??
      DEFAULT_PHYSNET
    ctx.log(`tenant VLANs: ${iface.name} (${iface.why}, ${mac}) is on Dom0 bridge ${bridge}: ${physnet}:${bridge}`)
    inputs.bridgeMappings = `${physnet}:${bridge}`
  } else {
    const ip = addressOf(ctx, 'private') ?? addressOf(ctx, 'mesh')
    if (!ip)
      throw new ComputeInputError(
        `node ${ctx.node}: tunnelling needs the tunnel endpoint address: record data.addresses.private ('a.b.c.d/prefix')`,
      )
    inputs.localIp = ip
  }
  return inputs
}

export const neutronAgent: NativeTask = {
  async resources(ctx) {
    const release = openstackReleaseOf(ctx)
    ctx.log(`OVS agent configuration for OpenStack ${release.series}`)
    return neutronAgentResources(release, await neutronAgentInputsOf(ctx))
  },
}
