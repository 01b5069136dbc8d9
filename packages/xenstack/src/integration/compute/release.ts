/**
 * Which OpenStack release a deployment configures, for every release-aware XenServer step (nova, neutron, the
 * dom0 plugin version NET checks). It comes from the environment's release — `ctx.models.release` (`{name,
 * version}`, what the engine hands native tasks) — read in Fuel's spellings: a series name anywhere in the version
 * or name (`mitaka-9.0`, `ussuri`, `OpenStack Queens on Ubuntu`), or the date versions of the releases before
 * Liberty (`2014.2.2-6.1` is Juno, `2015.1.0-7.0` Kilo). Juno through Ussuri are known: nova's XenAPI driver was
 * removed in Victoria, so a later release cannot run XenServer compute at all.
 */
import type { NativeTaskContext } from '../../engine/tasks.js'

/** The releases XenServer compute existed in, oldest first. */
export const OPENSTACK_SERIES = [
  'juno',
  'kilo',
  'liberty',
  'mitaka',
  'newton',
  'ocata',
  'pike',
  'queens',
  'rocky',
  'stein',
  'train',
  'ussuri',
] as const
export type OpenStackSeries = (typeof OPENSTACK_SERIES)[number]

/** Release series after Ussuri: named only to say clearly that XenServer compute is gone there. */
const WITHOUT_XENAPI = ['victoria', 'wallaby', 'xena', 'yoga', 'zed', 'antelope', 'bobcat', 'caracal']

/** Date versions (before Liberty's semantic versions). */
const DATE_VERSIONS: Record<string, OpenStackSeries> = { '2014.2': 'juno', '2015.1': 'kilo' }

export class OpenStackReleaseError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'OpenStackReleaseError'
  }
}

/** A series with its position, so `atLeast`/`before` compare releases. */
export class OpenStackRelease {
  readonly index: number
  constructor(readonly series: OpenStackSeries) {
    this.index = OPENSTACK_SERIES.indexOf(series)
  }
  /** True from `series` on (inclusive). */
  atLeast(series: OpenStackSeries): boolean {
    return this.index >= OPENSTACK_SERIES.indexOf(series)
  }
  /** True strictly before `series`. */
  before(series: OpenStackSeries): boolean {
    return !this.atLeast(series)
  }
  toString(): string {
    return this.series
  }
}

/** Parses a release version or name in Fuel's spellings; throws naming what was given and what is known. */
export function parseOpenStackRelease(...texts: (string | undefined)[]): OpenStackRelease {
  const given = texts.filter((t): t is string => typeof t === 'string' && t !== '')
  for (const text of given) {
    const lower = text.toLowerCase()
    const later = WITHOUT_XENAPI.find((s) => new RegExp(`\\b${s}\\b`).test(lower))
    if (later)
      throw new OpenStackReleaseError(
        `OpenStack ${later} (release "${text}") has no XenServer compute: nova's XenAPI driver was removed in Victoria; ` +
          `use a release from ${OPENSTACK_SERIES[0]} to ${OPENSTACK_SERIES.at(-1)}`,
      )
    const series = OPENSTACK_SERIES.find((s) => new RegExp(`\\b${s}\\b`).test(lower))
    if (series) return new OpenStackRelease(series)
    const date = /^(\d{4}\.\d)(\.\d+)?(-|$)/.exec(lower)
    if (date && DATE_VERSIONS[date[1]]) return new OpenStackRelease(DATE_VERSIONS[date[1]])
  }
  throw new OpenStackReleaseError(
    `cannot tell the OpenStack release from ${given.length ? given.map((g) => JSON.stringify(g)).join(' / ') : 'nothing (no release given)'}: ` +
      `expected a series name (${OPENSTACK_SERIES.join(', ')}) in the release's version or name, or 2014.2 (Juno) / 2015.1 (Kilo)`,
  )
}

/**
 * The OpenStack release of a native task's environment (`ctx.models.release`). The error names the node, so a
 * deployment of an environment whose release says nothing about its series fails at its first XenServer step.
 */
export function openstackReleaseOf(
  ctx: Pick<NativeTaskContext, 'node'> & { models?: Record<string, unknown> },
): OpenStackRelease {
  const release = (ctx.models?.release ?? {}) as { name?: unknown; version?: unknown }
  const version = typeof release.version === 'string' ? release.version : undefined
  const name = typeof release.name === 'string' ? release.name : undefined
  try {
    return parseOpenStackRelease(version, name)
  } catch (e) {
    throw new OpenStackReleaseError(`node ${ctx.node}: ${(e as Error).message}`)
  }
}
