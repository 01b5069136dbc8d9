/**
 * Validation of environment settings values (the `editable` attributes tree), shared by server and UI.
 * Rules follow nailgun's: hidden items are skipped entirely (regex included); a `disable` restriction that holds
 * on an enabled checkbox or an enabled toggleable group is an error; on other types it makes the value optional.
 * Messages name the setting's label and its path; a password's value never appears in a message.
 */
import type { Models } from './expression.js'
import { checkRestrictions, type SettingsTree } from './restrictions.js'

export const SETTING_TYPES = [
  'checkbox',
  'custom_repo_configuration',
  'hidden',
  'password',
  'radio',
  'select',
  'text',
  'textarea',
  'file',
  'text_list',
  'textarea_list',
  'custom_hugepages',
  'number',
] as const

export interface SettingError {
  /** `group.setting`, or `group` for a group-level error. */
  path: string
  label: string
  message: string
}

function show(type: string, v: unknown): string {
  if (type === 'password') return '(hidden)'
  const s = JSON.stringify(v)
  return s === undefined ? 'nothing' : s.length > 60 ? s.slice(0, 57) + '...' : s
}

function validateValue(path: string, s: Record<string, any>, errors: SettingError[]): void {
  const label: string = s.label ?? path
  const type: string = s.type
  const v = s.value
  const err = (message: string): void =>
    void errors.push({ path, label, message: `Setting "${label}" (${path}): ${message}` })
  const nullable = s.nullable === true
  switch (type) {
    case 'checkbox':
      if (typeof v !== 'boolean') err(`expected true or false, found ${show(type, v)}`)
      return
    case 'radio':
    case 'select': {
      if (typeof v !== 'string') return err(`expected one of the listed values, found ${show(type, v)}`)
      const values = Array.isArray(s.values) ? s.values.map((x: any) => x?.data) : []
      if (values.length && !values.includes(v)) err(`expected one of ${values.join(', ')}, found ${show(type, v)}`)
      return
    }
    case 'number':
      if (v === null && nullable) return
      if (typeof v !== 'number' || Number.isNaN(v)) return err(`expected a number, found ${show(type, v)}`)
      if (typeof s.min === 'number' && v < s.min) err(`must be at least ${s.min}, found ${v}`)
      if (typeof s.max === 'number' && v > s.max) err(`must be at most ${s.max}, found ${v}`)
      return
    case 'text':
    case 'password':
    case 'textarea':
    case 'file':
      if (v === null && (nullable || type === 'text')) return
      if (typeof v !== 'string') return err(`expected a string, found ${show(type, v)}`)
      break
    case 'text_list':
    case 'textarea_list':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
        return err(`expected a list of strings, found ${show(type, v)}`)
      }
      if (typeof s.min === 'number' && v.length < s.min) err(`needs at least ${s.min} entries, found ${v.length}`)
      if (typeof s.max === 'number' && v.length > s.max) err(`allows at most ${s.max} entries, found ${v.length}`)
      break
    default:
      return // custom controls: their value shape belongs to the control
  }
  if (s.regex?.source) {
    let re: RegExp
    try {
      re = new RegExp(s.regex.source)
    } catch (e) {
      return err(`its regex "${s.regex.source}" does not compile: ${(e as Error).message}`)
    }
    const items = Array.isArray(v) ? v : [v]
    for (const item of items) {
      if (typeof item === 'string' && !re.test(item)) {
        err(
          s.regex.error
            ? `${s.regex.error}`
            : `value ${show(type, item)} does not match the regular expression ${s.regex.source}`,
        )
        break
      }
    }
  }
}

/**
 * Validates every setting of the tree against `models` (settings is added/overridden with `settings` itself)
 * and returns every error; an empty list means the settings can be saved.
 */
export function validateSettings(settings: SettingsTree, models: Models = {}): SettingError[] {
  const m: Models = { ...models, settings }
  const errors: SettingError[] = []
  for (const [group, body] of Object.entries(settings)) {
    if (!body || typeof body !== 'object') continue
    const meta = body.metadata ?? {}
    const groupLabel: string = meta.label ?? group
    if (checkRestrictions(meta.restrictions, m, 'hide').result) continue
    const toggleable = meta.toggleable === true || meta.class === 'plugin'
    if (toggleable && meta.enabled !== true) continue
    const groupDisabled = checkRestrictions(meta.restrictions, m, 'disable')
    if (toggleable && groupDisabled.result) {
      errors.push({
        path: group,
        label: groupLabel,
        message: `Validation failed for attribute '${groupLabel}': ${groupDisabled.messages.join(' ') || `restriction with action='disable' and condition=${groupDisabled.matched.map((r) => `'${r.condition}'`).join(', ')} failed`}`,
      })
      continue
    }
    for (const [key, s] of Object.entries(body)) {
      if (key === 'metadata' || !s || typeof s !== 'object' || typeof (s as any).type !== 'string') continue
      const setting = s as Record<string, any>
      const path = `${group}.${key}`
      const label: string = setting.label ?? key
      if (checkRestrictions(setting.restrictions, m, 'hide').result) continue
      const disabled = checkRestrictions(setting.restrictions, m, 'disable')
      if (disabled.result) {
        if (setting.type === 'checkbox' && setting.value === true) {
          errors.push({
            path,
            label,
            message: `Validation failed for attribute '${label}' (${path}): ${disabled.messages.join(' ') || `restriction with action='disable' and condition=${disabled.matched.map((r) => `'${r.condition}'`).join(', ')} failed`}`,
          })
        }
        continue
      }
      validateValue(path, setting, errors)
      if ((setting.type === 'radio' || setting.type === 'select') && Array.isArray(setting.values)) {
        const chosen = setting.values.find((x: any) => x?.data === setting.value)
        const r = chosen ? checkRestrictions(chosen.restrictions, m, 'disable') : undefined
        if (r?.result) {
          errors.push({
            path,
            label,
            message: `Setting "${label}" (${path}): value "${setting.value}" is not available: ${r.messages.join(' ') || r.matched.map((x) => x.condition).join(', ')}`,
          })
        }
      }
    }
  }
  return errors
}

/** A copy of the tree with every `password` setting's value replaced by `replacement`. */
export function redactSettings(settings: SettingsTree, replacement = '********'): SettingsTree {
  const copy = JSON.parse(JSON.stringify(settings)) as SettingsTree
  const walk = (o: any) => {
    if (!o || typeof o !== 'object') return
    if (o.type === 'password' && 'value' in o && o.value !== '' && o.value !== null) o.value = replacement
    for (const v of Object.values(o)) walk(v)
  }
  walk(copy)
  return copy
}
