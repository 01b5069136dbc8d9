/**
 * Which tests apply to an environment: fuel-ostf's deployment tags (`ha, neutron | nova_network` = ha AND
 * (neutron OR nova_network); `|` binds tighter than `,`) and "available since release". A test that does not
 * apply is `disabled` with the reason (the tags it lacks, or its first release), never silently dropped.
 */

export class DeploymentTagsError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DeploymentTagsError'
  }
}

/** `a, b | c` → [['a'], ['b', 'c']] (lower-cased); throws on empty alternatives. */
export function parseDeploymentTags(expr: string): string[][] {
  if (!expr.trim()) return []
  return expr.split(',').map((group, i) => {
    const alts = group.split('|').map((t) => t.trim().toLowerCase())
    if (alts.some((t) => !/^[a-z0-9_:.-]+$/.test(t)))
      throw new DeploymentTagsError(
        `deployment tags "${expr}": group ${i + 1} ("${group.trim()}") needs tag names (letters, digits, _ : . -) separated by "|"`,
      )
    return alts
  })
}

/** The groups of `expr` the environment's tags do not satisfy, as written (`neutron | nova_network`). */
export function unmetTags(expr: string | undefined, tags: ReadonlySet<string>): string[] {
  if (!expr) return []
  const have = new Set([...tags].map((t) => t.toLowerCase()))
  return parseDeploymentTags(expr)
    .filter((alts) => !alts.some((t) => have.has(t)))
    .map((alts) => alts.join(' | '))
}

/** The numeric Fuel-style version at the end of a release version: `mitaka-9.0` → [9, 0], `2014.2-6.1` → [6, 1]. */
export function releaseNumber(version: string): number[] | undefined {
  const m = /(\d+(?:\.\d+)*)$/.exec(version.trim())
  return m ? m[1]!.split('.').map(Number) : undefined
}

/** Whether `version` is the same as or later than `since` (an unparsable version counts as applicable). */
export function releaseAtLeast(version: string, since: string | undefined): boolean {
  if (!since) return true
  const a = releaseNumber(version)
  const b = releaseNumber(since)
  if (!a || !b) return true
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d > 0
  }
  return true
}

/** Why a test (or set) with these tags and first release does not apply; undefined when it does. */
export function disabledReason(
  decl: { deploymentTags?: string; availableSince?: string },
  env: { tags: ReadonlySet<string>; releaseVersion: string },
): string | undefined {
  const unmet = unmetTags(decl.deploymentTags, env.tags)
  if (unmet.length) {
    return `not applicable: needs deployment tags ${unmet.map((u) => `"${u}"`).join(' and ')} (environment has ${
      [...env.tags].sort().join(', ') || 'none'
    })`
  }
  if (!releaseAtLeast(env.releaseVersion, decl.availableSince)) {
    return `not applicable: available since release ${decl.availableSince} (environment runs ${env.releaseVersion})`
  }
  return undefined
}

/**
 * An environment's deployment tags (fuel-ostf computed them from nailgun's cluster): `xenserver` when the XenServer
 * plugin is enabled or hypervisor:xenserver is selected, `ha` with two or more controllers, the network provider,
 * the OS, `additional_components` plus each enabled additional component, and every role present.
 */
export function environmentTags(input: {
  plugins: { name: string; enabled: boolean }[]
  components: string[]
  cluster: Record<string, any>
  settings: Record<string, any>
  operatingSystem?: string
  nodes: { roles: string[] }[]
}): Set<string> {
  const tags = new Set<string>()
  if (
    input.plugins.some((p) => p.enabled && /xenserver/i.test(p.name)) ||
    input.components.some((c) => c.startsWith('hypervisor:xen'))
  )
    tags.add('xenserver')
  const controllers = input.nodes.filter((n) => n.roles.some((r) => r === 'controller' || r === 'primary-controller'))
  if (controllers.length >= 2) tags.add('ha')
  for (const n of input.nodes) for (const r of n.roles) tags.add(r)
  const provider = input.cluster.net_provider
  if (typeof provider === 'string') tags.add(provider)
  if (input.operatingSystem) tags.add(input.operatingSystem.toLowerCase())
  const additional = input.settings.additional_components
  if (additional && typeof additional === 'object') {
    for (const [k, v] of Object.entries(additional as Record<string, any>)) {
      if (k !== 'metadata' && v && typeof v === 'object' && v.value === true) {
        tags.add('additional_components')
        tags.add(k)
      }
    }
  }
  return tags
}
