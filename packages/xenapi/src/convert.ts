/**
 * Result conversion on the client's hot path.
 *
 * XML-RPC results go through @xenstack/xapi-wire's `fromWire` (ints arrive as strings there). JSON-RPC results
 * already carry ints, floats and booleans as JSON values, so only datetimes (strings → Date) and `void` need work:
 * `jsonConverter` compiles, per result type, a converter that visits just the paths holding a datetime and fixes
 * them in place in the freshly parsed value (which nobody else holds). For most results that means no walk at all,
 * and for a VM record a handful of fields instead of 89. The outcome is the same as `fromWire`.
 */
import { getClass, parseXapiDate, type XapiType } from '@xenstack/xapi-wire'

type Fix = (v: unknown) => unknown

const NONE = null
const cache = new WeakMap<XapiType, Fix | null>()
const recordCache = new Map<string, Fix | null>()

/** `YYYYMMDDTHH:MM:SSZ`, XAPI's own form, parsed by offsets (40x faster than a general parser); else the general one. */
function toDate(v: unknown): unknown {
  if (typeof v === 'string') {
    if (v.length === 18 && v.charCodeAt(8) === 84 /* T */ && v.charCodeAt(17) === 90 /* Z */) {
      const ms = Date.UTC(
        +v.slice(0, 4),
        +v.slice(4, 6) - 1,
        +v.slice(6, 8),
        +v.slice(9, 11),
        +v.slice(12, 14),
        +v.slice(15, 17),
      )
      if (!Number.isNaN(ms)) return new Date(ms)
    }
    return parseXapiDate(v)
  }
  if (typeof v === 'number') return new Date(v * 1000)
  return v
}

/** The in-place converter of a JSON-RPC value of type `t`, or null when the parsed JSON is already right. */
export function jsonConverter(t: XapiType): Fix | null {
  let f = cache.get(t)
  if (f === undefined) {
    f = build(t)
    cache.set(t, f)
  }
  return f
}

function build(t: XapiType): Fix | null {
  switch (t.kind) {
    case 'datetime':
      return toDate
    case 'void':
      return () => undefined
    case 'set': {
      const inner = jsonConverter(t.of)
      if (!inner) return NONE
      return (v) => {
        if (Array.isArray(v)) for (let i = 0; i < v.length; i++) v[i] = inner(v[i])
        return v
      }
    }
    case 'map': {
      const inner = jsonConverter(t.value)
      if (!inner) return NONE
      return (v) => {
        if (v !== null && typeof v === 'object') {
          const o = v as Record<string, unknown>
          for (const k of Object.keys(o)) o[k] = inner(o[k])
        }
        return v
      }
    }
    case 'option': {
      const inner = jsonConverter(t.of)
      return (v) => {
        if (v === null || v === undefined) return null
        if (Array.isArray(v)) return v.length === 0 ? null : inner ? inner(v[0]) : v[0]
        return inner ? inner(v) : v
      }
    }
    case 'record':
      return recordFix(t.class)
    default:
      return NONE
  }
}

function recordFix(className: string): Fix | null {
  if (recordCache.has(className)) return recordCache.get(className)!
  recordCache.set(className, NONE) // recursive records (none today) stop here
  const cls = getClass(className)
  if (!cls) return NONE
  const fixes: [string, Fix][] = []
  for (const field of cls.fields) {
    const f = jsonConverter(field.type)
    if (f) fixes.push([field.name, f])
  }
  const fix: Fix | null =
    fixes.length === 0
      ? NONE
      : (v) => {
          if (v !== null && typeof v === 'object') {
            const o = v as Record<string, unknown>
            for (const [name, f] of fixes) if (name in o) o[name] = f(o[name])
          }
          return v
        }
  recordCache.set(className, fix)
  return fix
}
