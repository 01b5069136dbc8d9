/**
 * The models restrictions are evaluated against in the browser, shaped as the server's `environmentModels`
 * (settings, cluster, release, version, default), so a hide/disable shown here is the one the server enforces.
 */
import { checkRestrictions, type Models, type RestrictionAction, type SettingsTree } from '@xenstack/restrictions'

export function clientModels(
  settings: SettingsTree,
  env: { name: string; cluster?: Record<string, unknown> },
  release: { name: string; version: string; operatingSystem?: string },
): Models {
  return {
    settings,
    cluster: {
      net_provider: 'neutron',
      net_segment_type: 'vlan',
      mode: 'ha_compact',
      status: 'new',
      ...(env.cluster ?? {}),
      name: env.name,
    },
    version: { feature_groups: [] },
    networking_parameters: { segmentation_type: 'vlan', net_l23_provider: 'ovs' },
    release: { name: release.name, version: release.version, operating_system: release.operatingSystem ?? '' },
    default: settings,
  }
}

/** Restrictions of one action; an expression that cannot be evaluated here counts as not holding (said in `error`). */
export function restricted(
  list: unknown,
  models: Models,
  action: RestrictionAction,
): { result: boolean; messages: string[]; error?: string } {
  try {
    return checkRestrictions(list, models, action)
  } catch (e) {
    return { result: false, messages: [], error: (e as Error).message }
  }
}
