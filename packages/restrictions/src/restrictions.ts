/**
 * Restrictions: the three forms Fuel accepts, the actions hide / disable / none, and the check that refuses
 * a settings change that would switch off (or otherwise break) something an enabled setting depends on.
 */
import { Expression, type Models } from './expression.js'

export type RestrictionAction = 'disable' | 'hide' | 'none'

/** A restriction in its full form. */
export interface Restriction {
  condition: string
  action: RestrictionAction
  message?: string
  strict: boolean
}

/** Any of Fuel's three forms: a string, `{condition: message}`, or the full object. */
export type RestrictionInput =
  | string
  | { condition: string; action?: RestrictionAction; message?: string; strict?: boolean }
  | Record<string, string>

/** Thrown for a restriction whose shape is wrong (not for a bad expression: that is ExpressionSyntaxError). */
export class RestrictionShapeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RestrictionShapeError'
  }
}

const ACTIONS = new Set(['disable', 'hide', 'none'])

/** Normalizes one restriction to the full form (default action `disable`, default strict `true`). */
export function normalizeRestriction(input: unknown): Restriction {
  if (typeof input === 'string') return { condition: input, action: 'disable', strict: true }
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const o = input as Record<string, unknown>
    if ('condition' in o) {
      if (typeof o.condition !== 'string') {
        throw new RestrictionShapeError(
          `restriction "condition" must be a string, found ${JSON.stringify(o.condition)}`,
        )
      }
      const action = (o.action ?? 'disable') as string
      if (!ACTIONS.has(action)) {
        throw new RestrictionShapeError(`restriction action must be one of disable, hide, none; found "${action}"`)
      }
      if (o.message !== undefined && typeof o.message !== 'string') {
        throw new RestrictionShapeError(`restriction "message" must be a string`)
      }
      if (o.strict !== undefined && typeof o.strict !== 'boolean') {
        throw new RestrictionShapeError(`restriction "strict" must be true or false`)
      }
      return {
        condition: o.condition,
        action: action as RestrictionAction,
        message: o.message as string | undefined,
        strict: (o.strict as boolean | undefined) ?? true,
      }
    }
    const keys = Object.keys(o)
    if (keys.length === 1 && (typeof o[keys[0]] === 'string' || o[keys[0]] === null)) {
      return {
        condition: keys[0],
        action: 'disable',
        message: (o[keys[0]] as string | null) ?? undefined,
        strict: true,
      }
    }
  }
  throw new RestrictionShapeError(
    `a restriction must be a string, a map {condition: message} or an object {condition, action, message, strict}; found ${JSON.stringify(input)}`,
  )
}

export function normalizeRestrictions(list: unknown): Restriction[] {
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) return [normalizeRestriction(list)]
  return list.map(normalizeRestriction)
}

const expressions = new Map<string, Expression>()
/** Parses with a cache (the same conditions are evaluated again and again by the UI). */
export function compile(condition: string, strict = true): Expression {
  const key = `${strict ? 's' : 'n'}${condition}`
  let e = expressions.get(key)
  if (!e) {
    e = new Expression(condition, strict)
    if (expressions.size > 5000) expressions.clear()
    expressions.set(key, e)
  }
  return e
}

export interface RestrictionsResult {
  /** True when at least one restriction (of the requested action, if any) holds. */
  result: boolean
  /** The messages of the restrictions that hold, in order. */
  messages: string[]
  /** The restrictions that hold. */
  matched: Restriction[]
}

/** Evaluates restrictions (optionally only those with `action`) against models, like fuel-ui's checkRestrictions. */
export function checkRestrictions(list: unknown, models: Models, action?: RestrictionAction): RestrictionsResult {
  const matched = normalizeRestrictions(list).filter(
    (r) => (action === undefined || r.action === action) && compile(r.condition, r.strict).evaluate(models),
  )
  return { result: matched.length > 0, messages: matched.flatMap((r) => (r.message ? [r.message] : [])), matched }
}

/** The settings tree (`attributes.editable` in nailgun): group → {metadata, setting → {value, …}}. */
export type SettingsTree = Record<string, Record<string, any>>

/** Something enabled that would break: which setting, its label, the condition that would hold and its message. */
export interface BlockingDependency {
  /** Dotted path of the dependent item: `group.setting` or `group` (a toggleable group or plugin). */
  dependent: string
  label: string
  condition: string
  message?: string
}

function setPath(tree: SettingsTree, path: string, value: unknown): SettingsTree {
  const copy = JSON.parse(JSON.stringify(tree)) as SettingsTree
  const keys = path.split('.')
  let cur: any = copy
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === null || typeof cur[k] !== 'object') cur[k] = {}
    cur = cur[k]
  }
  cur[keys.at(-1)!] = value
  return copy
}

/** Every enabled item: toggleable groups/plugins with `metadata.enabled`, and checkboxes whose value is true. */
export function enabledItems(settings: SettingsTree): { path: string; label: string; restrictions: unknown }[] {
  const out: { path: string; label: string; restrictions: unknown }[] = []
  for (const [group, body] of Object.entries(settings)) {
    if (!body || typeof body !== 'object') continue
    const meta = body.metadata ?? {}
    const groupEnabled = !(meta.toggleable || meta.class === 'plugin') || meta.enabled === true
    if ((meta.toggleable || meta.class === 'plugin') && meta.enabled === true) {
      out.push({ path: group, label: meta.label ?? group, restrictions: meta.restrictions })
    }
    if (!groupEnabled) continue
    for (const [key, s] of Object.entries(body)) {
      if (key === 'metadata' || !s || typeof s !== 'object') continue
      if (s.type === 'checkbox' && s.value === true) {
        out.push({ path: `${group}.${key}`, label: s.label ?? key, restrictions: s.restrictions })
      }
    }
  }
  return out
}

/**
 * The check behind "you cannot switch this off": applies `settings.<path> = value` to a copy and returns every
 * enabled item (checkbox or toggleable group/plugin) that has a `disable` restriction reading that path which
 * holds after the change but not before. An empty list means the change is allowed. The same rule covers Fuel's
 * two directions: switching off a checkbox an enabled setting requires, and changing a value (e.g. libvirt_type
 * to kvm) that an enabled plugin's metadata restrictions forbid.
 */
export function checkSettingChange(
  settings: SettingsTree,
  path: string,
  value: unknown,
  models: Models = {},
): BlockingDependency[] {
  const items = enabledItems(settings).filter((item) => !(path === item.path || path.startsWith(`${item.path}.`)))
  return newlyHolding(items, settings, path, value, models)
}

/**
 * fuel-ui's checkDependentRoles: the roles assigned to nodes (`rolesInUse`) whose `disable` restrictions read
 * `settings.<path>` and would hold after the change. `roles` is the release's (and plugins') roles metadata.
 */
export function checkSettingChangeForRoles(
  settings: SettingsTree,
  path: string,
  value: unknown,
  roles: Record<string, { name?: string; restrictions?: unknown }>,
  rolesInUse: string[],
  models: Models = {},
): BlockingDependency[] {
  const items = [...new Set(rolesInUse)]
    .filter((r) => roles[r])
    .map((r) => ({ path: `role:${r}`, label: roles[r].name ?? r, restrictions: roles[r].restrictions }))
  return newlyHolding(items, settings, path, value, models)
}

function newlyHolding(
  items: { path: string; label: string; restrictions: unknown }[],
  settings: SettingsTree,
  path: string,
  value: unknown,
  models: Models,
): BlockingDependency[] {
  const after = setPath(settings, path, value)
  const before: Models = { ...models, settings }
  const next: Models = { ...models, settings: after }
  const changed = `settings:${path}`
  const out: BlockingDependency[] = []
  for (const item of items) {
    for (const r of normalizeRestrictions(item.restrictions)) {
      if (r.action !== 'disable') continue
      const e = compile(r.condition, r.strict)
      const reads = e.paths().some((p) => p === changed || changed.startsWith(`${p}.`) || p.startsWith(`${changed}.`))
      if (!reads) continue
      let held = false
      try {
        held = e.evaluate(before)
      } catch {
        held = false
      }
      if (!held && e.evaluate(next)) {
        out.push({ dependent: item.path, label: item.label, condition: r.condition, message: r.message })
      }
    }
  }
  return out
}

/** Human message for a refused change: `Cannot change "<label>": "<dependent>" is enabled and requires …`. */
export function describeBlocking(changedLabel: string, blocking: BlockingDependency[]): string {
  return blocking
    .map(
      (b) =>
        `Cannot change "${changedLabel}": "${b.label}" is enabled and would be disabled by "${b.condition}"` +
        (b.message ? ` (${b.message})` : ''),
    )
    .join('; ')
}
