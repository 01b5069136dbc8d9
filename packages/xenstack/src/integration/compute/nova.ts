/**
 * `xenserver.nova-compute`: /etc/nova/nova-compute.conf for the XenAPI driver (reference §8 step 6, §18.2), in
 * the spelling of the environment's OpenStack release (config-table.ts), nova-compute restarted only when a key
 * changed.
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import type { MaybeSecret, Resource } from '../../node/index.js'
import { DOM0_HIMN_ADDRESS } from '../dom0-access.js'
import { iniFileResources } from './ini-files.js'
import { credentialsOf, managementAddressOf, publicEndpointOf, xenserverSetting } from './inputs.js'
import { openstackReleaseOf, type OpenStackRelease } from './release.js'

export interface NovaComputeInputs {
  username: string
  password: MaybeSecret
  /** The public VIP or hostname of the noVNC proxy, and whether it is served over TLS. */
  publicHost: string
  tls: boolean
  /** The compute VM's management address (where the proxy reaches the console; port 80 is DNATed to Dom0). */
  managementAddress: string
  imageHandler: string
  srMatchingFilter: string
}

/** The values config-table.ts places for nova-compute.conf. */
export function novaComputeValues(i: NovaComputeInputs): Record<string, MaybeSecret | undefined> {
  return {
    novncproxy_base_url: `${i.tls ? 'https' : 'http'}://${i.publicHost}:6080/vnc_auto.html`,
    vnc_proxyclient_address: i.managementAddress,
    connection_url: `http://${DOM0_HIMN_ADDRESS}`,
    connection_username: i.username,
    connection_password: i.password,
    image_handler: i.imageHandler,
    sr_matching_filter: i.srMatchingFilter,
  }
}

export function novaComputeResources(release: OpenStackRelease, inputs: NovaComputeInputs): Resource[] {
  const f = iniFileResources('nova-compute', release, novaComputeValues(inputs))
  return [...f.settings, ...f.services]
}

export function novaComputeInputsOf(ctx: NativeTaskContext): NovaComputeInputs {
  const creds = credentialsOf(ctx)
  const endpoint = publicEndpointOf(ctx)
  return {
    username: creds.username,
    password: creds.password,
    publicHost: endpoint.host,
    tls: endpoint.tls,
    managementAddress: managementAddressOf(ctx),
    imageHandler: xenserverSetting(ctx, 'image_handler', 'direct_vhd'),
    srMatchingFilter: xenserverSetting(ctx, 'sr_matching_filter', 'default-sr:true'),
  }
}

export const novaCompute: NativeTask = {
  resources(ctx) {
    const release = openstackReleaseOf(ctx)
    ctx.log(`nova-compute.conf for OpenStack ${release.series}`)
    return novaComputeResources(release, novaComputeInputsOf(ctx))
  },
}
