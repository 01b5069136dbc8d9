/**
 * Settings tabs rendered from the release's and enabled plugins' attributes (the environment's settings tree):
 * one tab per `metadata.group`, a section per attribute group, a control per type. Hide restrictions remove a
 * field, disable restrictions disable it with their messages; passwords are masked (the server only ever sends
 * `********`, and only edited fields are sent back). Saving validates with the shared validator first, then the
 * server checks again; every message lands on its field.
 */
import { useEffect, useMemo, useState } from 'react'
import { validateSettings, type SettingsTree } from '@xenstack/restrictions'
import { api, ApiError, errorText } from '../api.js'
import { clientModels, restricted } from '../models.js'

type Setting = Record<string, any>

const GROUP_ORDER = ['general', 'security', 'compute', 'network', 'storage', 'logging', 'openstack_services', 'other']

const clone = <T,>(v: T): T => JSON.parse(JSON.stringify(v)) as T

export function Settings({ env }: { env: string }) {
  const [saved, setSaved] = useState<SettingsTree | null>(null)
  const [tree, setTree] = useState<SettingsTree | null>(null)
  const [envInfo, setEnvInfo] = useState<{ name: string; release: string; cluster?: Record<string, unknown> }>()
  const [release, setRelease] = useState<{ name: string; version: string; operatingSystem?: string }>()
  const [changes, setChanges] = useState<Record<string, unknown>>({})
  const [fieldErrors, setFieldErrors] = useState<Record<string, string[]>>({})
  const [status, setStatus] = useState('')
  const [error, setError] = useState('')
  const [tab, setTab] = useState('')

  const load = async () => {
    const e = await api('GET', `/environments/${encodeURIComponent(env)}`)
    const [s, r] = await Promise.all([
      api<SettingsTree>('GET', `/environments/${encodeURIComponent(env)}/settings`),
      api('GET', `/releases/${encodeURIComponent(e.release)}`),
    ])
    setEnvInfo(e)
    setRelease(r)
    setSaved(s)
    setTree(clone(s))
    setChanges({})
  }
  useEffect(() => {
    load().catch((e) => setError(errorText(e)))
  }, [env])

  const models = useMemo(
    () => (tree && envInfo && release ? clientModels(tree, envInfo, release) : null),
    [tree, envInfo, release],
  )
  if (error && !tree) return <p role="alert">{error}</p>
  if (!tree || !models) return <p>Loading settings…</p>

  const groups = Object.entries(tree)
    .filter(([, body]) => body && typeof body === 'object')
    .map(([name, body]) => ({ name, body, meta: (body.metadata ?? {}) as Setting }))
    .filter((g) => !restricted(g.meta.restrictions, models, 'hide').result)
  const tabs = [...new Set(groups.map((g) => (g.meta.group as string) ?? 'other'))].sort(
    (a, b) => rank(a) - rank(b) || a.localeCompare(b),
  )
  const activeTab = tabs.includes(tab) ? tab : tabs[0]

  const set = (path: string, value: unknown) => {
    const [group, key, ...rest] = path.split('.')
    const next = clone(tree)
    const target = next[group][key] as Setting
    if (rest.length === 1) target[rest[0]] = value
    setTree(next)
    setChanges((c) => ({ ...c, [path]: value }))
    setFieldErrors((f) => ({ ...f, [`${group}.${key}`]: [] }))
    setStatus('')
  }

  const save = async () => {
    setError('')
    setStatus('')
    // Unchanged passwords are only known as ******** here: the server validates them, not this page.
    const untouchedPasswords = (p: string) =>
      (p.split('.').length === 2 && getAt(tree, p)?.type === 'password' && !(`${p}.value` in changes)) as boolean
    const local = validateSettings(tree, models).filter((e) => !untouchedPasswords(e.path))
    if (local.length) {
      setFieldErrors(byPath(local.map((e) => ({ path: e.path, message: e.message }))))
      setError('Settings not saved: see the messages on the fields.')
      return
    }
    try {
      const next = await api<SettingsTree>('PUT', `/environments/${encodeURIComponent(env)}/settings`, { changes })
      setSaved(next)
      setTree(clone(next))
      setChanges({})
      setFieldErrors({})
      setStatus('Settings saved.')
    } catch (e) {
      const problems = e instanceof ApiError ? e.problems.map(String) : []
      setError(`Settings not saved: ${errorText(e)}`)
      setFieldErrors(byPath(problems.map((m) => ({ path: pathIn(m, tree), message: m }))))
    }
  }

  return (
    <div className="settings">
      <div role="tablist" aria-label="Settings groups">
        {tabs.map((t) => (
          <button key={t} type="button" role="tab" aria-selected={t === activeTab} onClick={() => setTab(t)}>
            {label(t)}
          </button>
        ))}
      </div>
      <div role="tabpanel" aria-label={label(activeTab)}>
        {groups
          .filter((g) => ((g.meta.group as string) ?? 'other') === activeTab)
          .sort((a, b) => (a.meta.weight ?? 0) - (b.meta.weight ?? 0))
          .map((g) => (
            <Group key={g.name} name={g.name} body={g.body} models={models} errors={fieldErrors} onChange={set} />
          ))}
      </div>
      <div className="actions">
        <button type="button" onClick={save} disabled={Object.keys(changes).length === 0}>
          Save settings
        </button>
        <button
          type="button"
          onClick={() => {
            setTree(clone(saved!))
            setChanges({})
            setFieldErrors({})
          }}
          disabled={Object.keys(changes).length === 0}
        >
          Cancel changes
        </button>
      </div>
      {status && <p role="status">{status}</p>}
      {error && (
        <div role="alert" className="error">
          {error}
          {fieldErrors[''] && (
            <ul>
              {fieldErrors[''].map((m) => (
                <li key={m}>{m}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  )
}

function Group(props: {
  name: string
  body: Setting
  models: any
  errors: Record<string, string[]>
  onChange: (path: string, value: unknown) => void
}) {
  const { name, body, models, errors, onChange } = props
  const meta = (body.metadata ?? {}) as Setting
  const toggleable = meta.toggleable === true || meta.class === 'plugin'
  const groupDisabled = restricted(meta.restrictions, models, 'disable')
  const enabled = !toggleable || meta.enabled === true
  const entries = Object.entries(body)
    .filter(([k, s]) => k !== 'metadata' && s && typeof s === 'object' && typeof (s as Setting).type === 'string')
    .map(([k, s]) => [k, s as Setting] as const)
    .filter(([, s]) => s.type !== 'hidden' && !restricted(s.restrictions, models, 'hide').result)
    .sort((a, b) => (a[1].weight ?? 0) - (b[1].weight ?? 0))
  const titleId = `g-${name}`
  return (
    <section className="group" aria-labelledby={titleId}>
      <h3 id={titleId}>{meta.label ?? name}</h3>
      {toggleable && (
        <div className="field">
          <input
            type="checkbox"
            id={`${name}.metadata.enabled`}
            checked={meta.enabled === true}
            disabled={groupDisabled.result && meta.enabled !== true}
            onChange={(e) => onChange(`${name}.metadata.enabled`, e.target.checked)}
          />
          <label htmlFor={`${name}.metadata.enabled`}>Enable {meta.label ?? name}</label>
        </div>
      )}
      {groupDisabled.result && <p className="why">{groupDisabled.messages.join(' ')}</p>}
      <FieldErrors id={`${name}-errors`} list={errors[name]} />
      {enabled &&
        entries.map(([key, s]) => (
          <Field
            key={key}
            path={`${name}.${key}`}
            s={s}
            models={models}
            disabled={groupDisabled.result}
            errors={errors[`${name}.${key}`]}
            onChange={onChange}
          />
        ))}
    </section>
  )
}

export function Field(props: {
  path: string
  s: Setting
  models: any
  disabled: boolean
  errors?: string[]
  onChange: (path: string, value: unknown) => void
}) {
  const { path, s, models, errors, onChange } = props
  const id = path
  const dis = restricted(s.restrictions, models, 'disable')
  const disabled = props.disabled || dis.result
  const describedBy = [`${id}-desc`, errors?.length ? `${id}-errors` : ''].filter(Boolean).join(' ')
  const common = {
    id,
    disabled,
    'aria-invalid': errors?.length ? true : undefined,
    'aria-describedby': describedBy,
  } as const
  const value = s.value
  let control
  switch (s.type) {
    case 'checkbox':
      control = (
        <input
          {...common}
          type="checkbox"
          checked={value === true}
          onChange={(e) => onChange(`${path}.value`, e.target.checked)}
        />
      )
      break
    case 'radio':
    case 'select':
      control = (
        <select {...common} value={String(value ?? '')} onChange={(e) => onChange(`${path}.value`, e.target.value)}>
          {(s.values ?? []).map((v: Setting) => {
            const r = restricted(v.restrictions, models, 'disable')
            return (
              <option key={v.data} value={v.data} disabled={r.result} title={r.messages.join(' ')}>
                {v.label ?? v.data}
                {r.result ? ` — ${r.messages.join(' ')}` : ''}
              </option>
            )
          })}
        </select>
      )
      break
    case 'number':
      control = (
        <input
          {...common}
          type="number"
          value={value ?? ''}
          onChange={(e) => onChange(`${path}.value`, e.target.value === '' ? null : Number(e.target.value))}
        />
      )
      break
    case 'textarea':
    case 'file':
      control = <textarea {...common} value={value ?? ''} onChange={(e) => onChange(`${path}.value`, e.target.value)} />
      break
    case 'text_list':
    case 'textarea_list':
      control = (
        <textarea
          {...common}
          value={Array.isArray(value) ? value.join('\n') : ''}
          onChange={(e) =>
            onChange(
              `${path}.value`,
              e.target.value.split('\n').filter((x) => x !== ''),
            )
          }
        />
      )
      break
    case 'password':
      control = (
        <input
          {...common}
          type="password"
          autoComplete="new-password"
          value={value ?? ''}
          onFocus={(e) => e.target.select()}
          onChange={(e) => onChange(`${path}.value`, e.target.value)}
        />
      )
      break
    case 'text':
      control = (
        <input
          {...common}
          type="text"
          value={value ?? ''}
          onChange={(e) => onChange(`${path}.value`, e.target.value)}
        />
      )
      break
    default:
      control = <code {...common}>{JSON.stringify(value)}</code>
  }
  return (
    <div className={`field ${s.type}`}>
      <label htmlFor={id}>{s.label ?? path}</label>
      {control}
      <p id={`${id}-desc`} className="hint">
        {[s.description, dis.result ? dis.messages.join(' ') : ''].filter(Boolean).join(' ')}
      </p>
      <FieldErrors id={`${id}-errors`} list={errors} />
    </div>
  )
}

function FieldErrors({ id, list }: { id: string; list?: string[] }) {
  if (!list?.length) return null
  return (
    <ul id={id} className="field-errors">
      {list.map((m) => (
        <li key={m}>{m}</li>
      ))}
    </ul>
  )
}

const rank = (g: string) => (GROUP_ORDER.indexOf(g) === -1 ? GROUP_ORDER.length : GROUP_ORDER.indexOf(g))
const label = (g: string) => g.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase())

function getAt(tree: SettingsTree, path: string): Setting | undefined {
  const [g, k] = path.split('.')
  return tree[g]?.[k]
}

function byPath(list: { path: string; message: string }[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const { path, message } of list) (out[path] ??= []).push(message)
  return out
}

/** The `group.setting` a server message names (`… (group.setting): …`), else '' (shown with the form's error). */
function pathIn(message: string, tree: SettingsTree): string {
  for (const m of message.matchAll(/\(([^()\s.]+)\.([^()\s.]+)\)/g)) if (tree[m[1]]?.[m[2]]) return `${m[1]}.${m[2]}`
  for (const m of message.matchAll(/\b([a-z0-9_]+)\.([a-z0-9_]+)\b/g)) if (tree[m[1]]?.[m[2]]) return `${m[1]}.${m[2]}`
  return ''
}
