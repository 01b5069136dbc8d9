/**
 * The record `VIF.create` takes for a plain NIC: an empty MAC makes XAPI generate one, MTU 1500, no QoS. The guest
 * sees the NIC at `device` (eth<device> under PV drivers). Shared by the HIMN attacher and the host-preparation
 * commands, which all create NICs the same way.
 */
export function newVifRecord(vm: string, network: string, device: string): Record<string, unknown> {
  return {
    VM: vm,
    network,
    device,
    MAC: '',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}
