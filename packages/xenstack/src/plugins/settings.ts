/**
 * Environment settings: the release's settings merged with the installed plugins' attributes, the way nailgun
 * stored them — each plugin is one toggleable group whose `metadata.versions` holds every installed version's
 * attributes side by side; the chosen version's attributes are also at the group's top level, so
 * restrictions (`settings:<plugin>.<setting>.value`) read them directly. Validation is @xenstack/restrictions'
 * validateSettings, so the UI gives the same messages.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { validateSettings, type SettingError, type SettingsTree } from '@xenstack/restrictions'
import { defaultModels, type Release } from '../releases/release.js'
import { compareVersions } from './schemas.js'

export interface PluginVersionInfo {
  id?: string
  name: string
  version: string
  title: string
  packageVersion: string
  data: { metadata: Record<string, any>; attributes: Record<string, any>; legacyTasks?: unknown[] }
}

export interface EnabledPlugin {
  name: string
  version: string
  enabled: boolean
}

/** True when the plugin declares the release (same version; OS compared case-insensitively when both say). */
export function isCompatible(plugin: PluginVersionInfo, release: Release): boolean {
  const releases = Array.isArray(plugin.data.metadata.releases) ? plugin.data.metadata.releases : []
  return releases.some(
    (r: any) =>
      String(r?.version) === release.version &&
      (!release.operatingSystem || !r?.os || String(r.os).toLowerCase() === release.operatingSystem.toLowerCase()),
  )
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/**
 * Builds the settings tree of an environment: release settings, then one group per plugin (compatible versions
 * only, unless `includeIncompatible`), then the saved values (`saved`) on top where they still apply.
 */
export function mergeSettings(
  release: Release,
  installed: PluginVersionInfo[],
  enabled: EnabledPlugin[] = [],
  saved?: SettingsTree,
  options: { includeIncompatible?: boolean } = {},
): SettingsTree {
  const tree: SettingsTree = clone(release.settings)
  const byName = new Map<string, PluginVersionInfo[]>()
  for (const p of installed) {
    if (!options.includeIncompatible && !isCompatible(p, release)) continue
    byName.set(p.name, [...(byName.get(p.name) ?? []), p])
  }
  for (const [name, versions] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    if (tree[name])
      throw new Error(`plugin ${name} has the name of a release settings group; plugin names must differ from them`)
    versions.sort((a, b) => compareVersions(a.version, b.version))
    const choice = enabled.find((e) => e.name === name)
    const chosen = versions.find((v) => v.version === choice?.version) ?? versions[versions.length - 1]
    const attrs = (p: PluginVersionInfo) => {
      const a = clone(p.data.attributes ?? {})
      delete a.metadata
      return a
    }
    const meta = chosen.data.attributes?.metadata ?? {}
    tree[name] = {
      metadata: {
        class: 'plugin',
        label: chosen.title,
        toggleable: true,
        weight: meta.weight ?? 70,
        group: meta.group ?? 'other',
        enabled: choice?.enabled ?? false,
        chosen_id: chosen.id ?? chosen.version,
        default: false,
        plugin_version: chosen.version,
        restrictions: meta.restrictions ?? [],
        versions: versions.map((v) => ({
          metadata: {
            plugin_id: v.id ?? v.version,
            plugin_version: v.version,
            hot_pluggable: v.data.metadata.is_hotpluggable === true,
            contains_legacy_tasks: (v.data.legacyTasks ?? []).length > 0,
            restrictions: v.data.attributes?.metadata?.restrictions ?? [],
          },
          ...attrs(v),
        })),
      },
      ...attrs(chosen),
    }
  }
  if (saved) applySavedValues(tree, saved)
  return tree
}

/** Copies saved `value`s and group `enabled` flags onto a fresh tree where the same paths exist. */
export function applySavedValues(tree: SettingsTree, saved: SettingsTree): void {
  for (const [group, body] of Object.entries(saved ?? {})) {
    const target = tree[group]
    if (!target || !body || typeof body !== 'object') continue
    if (body.metadata && typeof body.metadata.enabled === 'boolean' && target.metadata)
      target.metadata.enabled = body.metadata.enabled
    for (const [key, s] of Object.entries(body)) {
      if (key === 'metadata' || !s || typeof s !== 'object' || !target[key] || typeof target[key] !== 'object') continue
      if ('value' in (s as object)) target[key].value = (s as any).value
    }
  }
}

/** Fills values nailgun generated at environment creation ({generator: password | hexstring | uuid}). */
export function generateValues(tree: SettingsTree): SettingsTree {
  const walk = (o: any): any => {
    if (Array.isArray(o)) return o.map(walk)
    if (!o || typeof o !== 'object') return o
    if ('generator' in o && Object.keys(o).every((k) => k === 'generator' || k === 'generator_arg')) {
      switch (o.generator) {
        case 'password':
          return randomBytes(18).toString('base64url')
        case 'hexstring':
          return randomBytes(Math.ceil((Number(o.generator_arg) || 32) / 2))
            .toString('hex')
            .slice(0, Number(o.generator_arg) || 32)
        case 'uuid':
          return randomUUID()
        case 'from_settings':
        case 'identical':
          return o.generator_arg ?? ''
        default:
          return Array.isArray(o.generator_arg) ? o.generator_arg : ''
      }
    }
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(o)) out[k] = walk(v)
    return out
  }
  return walk(tree)
}

/** Validates an environment's settings against its release's models; every error names the setting's label. */
export function validateEnvironmentSettings(
  release: Release,
  tree: SettingsTree,
  models: Record<string, unknown> = {},
): SettingError[] {
  return validateSettings(tree, defaultModels(release, { ...models, settings: tree }))
}
