/** The six test sets of fuel-ostf (`__profile__` of each package), as data. xenstack's checks fill them. */
import type { TestSetProfile } from './types.js'

export const TEST_SETS: readonly TestSetProfile[] = [
  {
    id: 'sanity',
    name: 'Sanity tests. Duration 30 sec - 2 min',
    description: 'Quick checks that the XenServer hosts, their XAPI and the compute VMs answer as deployed.',
    priority: 1,
  },
  {
    id: 'smoke',
    name: 'Functional tests. Duration 3 min - 14 min',
    description: 'Real traffic along the paths the integration builds: dom0 through the compute NAT, noVNC.',
    priority: 2,
    exclusiveTestsets: ['smoke_platform'],
  },
  {
    id: 'ha',
    name: 'HA tests. Duration 30 sec - 8 min',
    description: 'Checks that only make sense with several controllers (shared console tokens).',
    priority: 3,
    deploymentTags: 'ha',
  },
  {
    id: 'tests_platform',
    name: 'Platform services functional tests. Duration 3 min - 60 min',
    description: 'Additional components on XenServer (Ceilometer with the XenAPI inspector).',
    priority: 4,
    deploymentTags: 'additional_components',
    exclusiveTestsets: ['smoke_platform'],
  },
  {
    id: 'cloudvalidation',
    name: 'Cloud validation tests. Duration 30 sec - 2 min',
    description: 'Resource limits on the hosts: dom0 disk room, XAPI sessions not leaking.',
    priority: 5,
    availableSince: '2014.2-6.1',
  },
  {
    id: 'configuration',
    name: 'Configuration tests. Duration 30 sec - 2 min',
    description: 'Configuration the integration writes: nova, neutron, rootwrap, dom0 firewall, cron and links.',
    priority: 6,
    availableSince: '2014.2-6.1',
  },
]

export function testSet(id: string): TestSetProfile | undefined {
  return TEST_SETS.find((s) => s.id === id)
}
