// The XenServer plugin's compute handlers in the order of the integration contract (XS-CONTRACT): what
// deployment_tasks.yaml runs on a compute node, the guest tools check first.
export const XENSERVER_COMPUTE_HANDLERS = [
  'xenserver.guest-tools',
  'xenserver.himn-attach',
  'xenserver.himn-guest',
  'xenserver.pre-test',
  'xenserver.ssh-trust',
  'xenserver.dom0-prepare',
  'xenserver.dom0-plugins',
  'xenserver.dom0-routes',
  'xenserver.compute-nat',
  'xenserver.nova-compute',
  'xenserver.neutron-agent',
  'xenserver.compute-extras',
]
