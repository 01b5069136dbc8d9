/**
 * Components: the cluster wizard's registry (hypervisors, networks, storage, additional services).
 *
 * Semantics — one definition for the server and the UI:
 *   - Names: `type:part(:part)*`. A pattern matches part by part; a `*` part matches exactly one part, except as
 *     the last part where it matches one or more parts (so `hypervisor:*` matches `hypervisor:xenserver` and
 *     `network:neutron:*` matches `network:neutron:ml2:vlan`). This agrees with nailgun's prefix match and
 *     fuel-ui's ComponentPattern on every name that exists.
 *   - `incompatible: [{name, message}]`: a selection containing this component and any match of `name` is
 *     invalid; the violation carries `message` (or `description`, or a generated sentence when both are empty).
 *   - `requires` has two forms (mixing them in one component is an error):
 *       predicate form  `- one_of|any_of|none_of|all_of: {items: [patterns], message, message_invalid}`:
 *                       one_of = exactly one item matched by the other selected components, any_of = at least
 *                       one, none_of = none, all_of = every item matched. `message_invalid` is used when an
 *                       item matches no component in the registry at all (the requirement cannot be met).
 *       list form       `- {name, message}`: read as nailgun read it — the entries are grouped by component
 *                       type and each group is one `any_of` (at least one match per type). fuel-ui read the
 *                       list as `all_of`, which made lists of alternatives (two hypervisors) unsatisfiable;
 *                       xenstack's UI and server both use the definition above.
 *   - `compatible`: advisory only (the wizard shows "compatible" instead of "available").
 *   - `bind`: side effects of selecting the component: `"model:path"` sets true, `{"model:path": value}` or
 *     `["model:path", value]` sets the value.
 *   - A plugin may not define a component name that the release or another plugin already defines.
 */
import { valuesEqual } from './expression.js'

export interface ComponentRef {
  name: string
  message?: string
  description?: string
}

export type PredicateKind = 'one_of' | 'any_of' | 'none_of' | 'all_of'

export interface Predicate {
  kind: PredicateKind
  items: string[]
  message?: string
  message_invalid?: string
}

export interface Component {
  name: string
  label?: string
  description?: string
  default?: boolean
  weight?: number
  compatible?: ComponentRef[]
  incompatible?: ComponentRef[]
  requires?: unknown[]
  bind?: unknown
  /** Who defines it: `release` or the plugin's name. */
  source?: string
}

export const COMPONENT_TYPES = ['hypervisor', 'network', 'storage', 'additional_service'] as const

export const componentType = (name: string): string => name.split(':')[0]

/** True when `pattern` (possibly with `*` parts) matches the component name. */
export function matchComponentName(pattern: string, name: string): boolean {
  const p = pattern.split(':')
  const n = name.split(':')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '*') {
      if (i === p.length - 1) return n.length > i
      if (n[i] === undefined) return false
      continue
    }
    if (p[i] !== n[i]) return false
  }
  return p.length === n.length
}

export class ComponentDefinitionError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ComponentDefinitionError'
  }
}

/** The component's requirements as predicates (list form converted as documented above). */
export function requirementsOf(c: Component): Predicate[] {
  const list = c.requires ?? []
  if (!Array.isArray(list)) throw new ComponentDefinitionError(`component "${c.name}": "requires" must be a list`)
  const predicates: Predicate[] = []
  const legacy: ComponentRef[] = []
  for (const entry of list) {
    if (entry && typeof entry === 'object' && 'name' in entry) {
      legacy.push(entry as ComponentRef)
      continue
    }
    const keys = entry && typeof entry === 'object' ? Object.keys(entry) : []
    const kind = keys[0] as PredicateKind
    if (keys.length !== 1 || !['one_of', 'any_of', 'none_of', 'all_of'].includes(kind)) {
      throw new ComponentDefinitionError(
        `component "${c.name}": a "requires" entry must be {name, message} or one of one_of/any_of/none_of/all_of, found ${JSON.stringify(entry)}`,
      )
    }
    const body = (entry as Record<string, any>)[kind] ?? {}
    if (!Array.isArray(body.items) || body.items.some((i: unknown) => typeof i !== 'string')) {
      throw new ComponentDefinitionError(`component "${c.name}": "requires.${kind}.items" must be a list of names`)
    }
    predicates.push({ kind, items: body.items, message: body.message, message_invalid: body.message_invalid })
  }
  if (legacy.length && predicates.length) {
    throw new ComponentDefinitionError(
      `component "${c.name}": "requires" mixes the list form ({name}) and the predicate form (one_of/any_of/none_of/all_of)`,
    )
  }
  const byType = new Map<string, ComponentRef[]>()
  for (const r of legacy) byType.set(componentType(r.name), [...(byType.get(componentType(r.name)) ?? []), r])
  for (const refs of byType.values()) {
    const messages = refs.map((r) => r.message || r.description).filter((m): m is string => !!m)
    predicates.push({ kind: 'any_of', items: refs.map((r) => r.name), message: messages.join(' ') || undefined })
  }
  return predicates
}

export type ViolationKind = 'unknown' | 'incompatible' | 'requires' | 'required_type'

export interface Violation {
  kind: ViolationKind
  /** The component whose rule is violated (or the missing type for `required_type`). */
  component: string
  /** The other component involved, for `incompatible`. */
  other?: string
  message: string
}

const labelOf = (registry: Map<string, Component>, name: string) => registry.get(name)?.label || name

/** Index a list of components by name (throws on a duplicate name with both sources named). */
export function componentRegistry(components: Component[]): Map<string, Component> {
  const m = new Map<string, Component>()
  for (const c of components) {
    const prev = m.get(c.name)
    if (prev) {
      throw new ComponentDefinitionError(
        `Plugin ${c.source ?? '?'} is overlapping with ${prev.source ?? 'release'}: component "${c.name}" is already defined by ${prev.source ?? 'the release'}`,
      )
    }
    m.set(c.name, c)
  }
  return m
}

/**
 * Merges the release's components with the plugins' ones; a plugin reusing a name is refused
 * (`Plugin X is overlapping with Y: …`, as nailgun's AlreadyExists).
 */
export function mergeComponents(
  release: Component[],
  plugins: { plugin: string; components: Component[] }[],
): Component[] {
  const all = [
    ...release.map((c) => ({ ...c, source: c.source ?? 'release' })),
    ...plugins.flatMap((p) => p.components.map((c) => ({ ...c, source: p.plugin }))),
  ]
  componentRegistry(all)
  return all
}

/** Validates a selection and returns every violation (an empty list means it is valid). */
export function validateSelection(
  components: Component[] | Map<string, Component>,
  selected: string[],
  options: { requiredTypes?: string[] } = {},
): Violation[] {
  const registry = components instanceof Map ? components : componentRegistry(components)
  const violations: Violation[] = []
  const chosen = [...new Set(selected)]
  for (const name of chosen) {
    if (!registry.has(name)) {
      violations.push({
        kind: 'unknown',
        component: name,
        message: `Unknown component "${name}" (expected one of ${[...registry.keys()].join(', ')})`,
      })
    }
  }
  const known = chosen.filter((n) => registry.has(n))
  for (const name of known) {
    const c = registry.get(name)!
    for (const inc of c.incompatible ?? []) {
      for (const other of known) {
        if (other === name || !matchComponentName(inc.name, other)) continue
        violations.push({
          kind: 'incompatible',
          component: name,
          other,
          message:
            inc.message ||
            inc.description ||
            `${labelOf(registry, name)} (${name}) is incompatible with ${labelOf(registry, other)} (${other})`,
        })
      }
    }
    for (const p of requirementsOf(c)) {
      const others = known.filter((o) => o !== name)
      const matchedItems = p.items.filter((item) => others.some((o) => matchComponentName(item, o)))
      const matches = others.filter((o) => p.items.some((item) => matchComponentName(item, o)))
      const ok =
        p.kind === 'one_of'
          ? matches.length === 1
          : p.kind === 'any_of'
            ? matches.length >= 1
            : p.kind === 'none_of'
              ? matches.length === 0
              : matchedItems.length === p.items.length
      if (ok) continue
      const unsatisfiable =
        p.kind !== 'none_of' && p.items.every((item) => ![...registry.keys()].some((n) => matchComponentName(item, n)))
      const fallback =
        p.kind === 'none_of'
          ? `${labelOf(registry, name)} (${name}) cannot be used with ${matches.join(', ')}`
          : `${labelOf(registry, name)} (${name}) requires ${p.kind === 'all_of' ? 'all' : p.kind === 'one_of' ? 'exactly one' : 'at least one'} of: ${p.items.join(', ')}`
      violations.push({
        kind: 'requires',
        component: name,
        message: (unsatisfiable && p.message_invalid) || p.message || fallback,
      })
    }
  }
  for (const type of options.requiredTypes ?? []) {
    if (!known.some((n) => componentType(n) === type)) {
      violations.push({ kind: 'required_type', component: type, message: `Select at least one ${type} component` })
    }
  }
  return violations
}

/** Availability of a candidate next to the current selection, for the wizard. */
export function componentAvailability(
  components: Component[] | Map<string, Component>,
  selected: string[],
  candidate: string,
): { availability: 'incompatible' | 'compatible' | 'available'; messages: string[] } {
  const registry = components instanceof Map ? components : componentRegistry(components)
  const c = registry.get(candidate)
  if (!c) return { availability: 'incompatible', messages: [`Unknown component "${candidate}"`] }
  const messages: string[] = []
  for (const other of selected.filter((s) => s !== candidate && registry.has(s))) {
    const o = registry.get(other)!
    for (const inc of c.incompatible ?? [])
      if (matchComponentName(inc.name, other))
        messages.push(inc.message || inc.description || `Incompatible with ${labelOf(registry, other)}`)
    for (const inc of o.incompatible ?? [])
      if (matchComponentName(inc.name, candidate))
        messages.push(inc.message || inc.description || `Incompatible with ${labelOf(registry, other)}`)
  }
  if (messages.length) return { availability: 'incompatible', messages }
  const compatible = (c.compatible ?? []).some((r) => selected.some((s) => matchComponentName(r.name, s)))
  return { availability: compatible ? 'compatible' : 'available', messages }
}

export interface Binding {
  component: string
  /** `model:dotted.path` */
  target: string
  value: unknown
}

/** The bindings of one component, normalized from Fuel's forms. */
export function bindingsOf(c: Component): Binding[] {
  if (c.bind === undefined || c.bind === null) return []
  const list = Array.isArray(c.bind) ? c.bind : [c.bind]
  return list.flatMap((b): Binding[] => {
    if (typeof b === 'string') return [{ component: c.name, target: b, value: true }]
    if (Array.isArray(b) && b.length === 2 && typeof b[0] === 'string') {
      return [{ component: c.name, target: b[0], value: b[1] }]
    }
    if (b && typeof b === 'object') {
      return Object.entries(b).map(([target, value]) => ({ component: c.name, target, value }))
    }
    throw new ComponentDefinitionError(`component "${c.name}": unsupported bind entry ${JSON.stringify(b)}`)
  })
}

/**
 * Applies the bindings of the selected components to `models` (in place) and returns what was set.
 * Two selected components binding one target to different values is an error.
 */
export function applyBindings(
  components: Component[] | Map<string, Component>,
  selected: string[],
  models: Record<string, any>,
): Binding[] {
  const registry = components instanceof Map ? components : componentRegistry(components)
  const applied: Binding[] = []
  for (const name of selected) {
    const c = registry.get(name)
    if (!c) continue
    for (const b of bindingsOf(c)) {
      const clash = applied.find((a) => a.target === b.target && !valuesEqual(a.value, b.value))
      if (clash) {
        throw new ComponentDefinitionError(
          `components "${clash.component}" and "${b.component}" bind ${b.target} to different values (${JSON.stringify(clash.value)} and ${JSON.stringify(b.value)})`,
        )
      }
      const i = b.target.indexOf(':')
      if (i < 1) throw new ComponentDefinitionError(`component "${c.name}": bind target "${b.target}" has no model`)
      const model = b.target.slice(0, i)
      const keys = b.target.slice(i + 1).split('.')
      let cur = (models[model] ??= {})
      for (const k of keys.slice(0, -1)) cur = cur[k] ??= {}
      cur[keys.at(-1)!] = b.value
      applied.push(b)
    }
  }
  return applied
}
