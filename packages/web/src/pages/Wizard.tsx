/**
 * The environment wizard, Fuel's panes: name and release, compute, networking, storage, additional services.
 * Component choices run @xenstack/restrictions' component logic — the server's — so an incompatible choice is
 * disabled with the reason next to it, and the final selection is validated before it is sent (the server checks
 * it again and its answer is shown when it refuses).
 */
import { useEffect, useMemo, useState } from 'react'
import {
  componentAvailability,
  componentRegistry,
  componentType,
  mergeComponents,
  validateSelection,
  validateSettings,
  type Component,
  type SettingsTree,
} from '@xenstack/restrictions'
import { api, ApiError, errorText } from '../api.js'
import { clientModels } from '../models.js'
import { go } from '../route.js'
import { Field } from './Settings.js'

interface ReleaseSummary {
  name: string
  version: string
  description: string
}
interface PluginSummary {
  name: string
  version: string
  releases: { version: string }[]
  components: Component[]
  attributes?: Record<string, any>
}

const PANES = [
  { id: 'name', title: 'Name and release' },
  { id: 'hypervisor', title: 'Compute' },
  { id: 'network', title: 'Networking' },
  { id: 'storage', title: 'Storage' },
  { id: 'additional_service', title: 'Additional services' },
  { id: 'finish', title: 'Create' },
] as const

export function Wizard() {
  const [releases, setReleases] = useState<ReleaseSummary[]>([])
  const [plugins, setPlugins] = useState<PluginSummary[]>([])
  const [name, setName] = useState('')
  const [release, setRelease] = useState('')
  const [components, setComponents] = useState<Component[]>([])
  const [releaseInfo, setReleaseInfo] = useState<{ name: string; version: string; settings: SettingsTree }>()
  /** Values typed for settings the selection needs before it can be created (path.value → value). */
  const [values, setValues] = useState<Record<string, unknown>>({})
  const [requiredTypes, setRequiredTypes] = useState<string[]>([])
  const [selected, setSelected] = useState<string[]>([])
  const [pane, setPane] = useState(0)
  const [error, setError] = useState('')
  const [problems, setProblems] = useState<string[]>([])

  useEffect(() => {
    Promise.all([api<ReleaseSummary[]>('GET', '/releases'), api<PluginSummary[]>('GET', '/plugins')]).then(
      ([r, p]) => {
        setReleases(r)
        setPlugins(p)
        if (r[0]) setRelease(r[0].version)
      },
      (e) => setError(errorText(e)),
    )
  }, [])

  // The release's components plus those of the plugins made for it, merged as the server merges them.
  useEffect(() => {
    if (!release) return
    api<{
      name: string
      version: string
      settings: SettingsTree
      components: Component[]
      requiredComponentTypes?: string[]
    }>('GET', `/releases/${encodeURIComponent(release)}`).then(
      (r) => {
        const forRelease = plugins.filter((p) => p.releases.some((x) => x.version === release))
        const all = mergeComponents(
          r.components,
          forRelease.map((p) => ({ plugin: p.name, components: p.components })),
        )
        setComponents(all)
        setReleaseInfo(r as any)
        setRequiredTypes(r.requiredComponentTypes ?? [])
        setSelected(all.filter((c) => c.default).map((c) => c.name))
      },
      (e) => setError(errorText(e)),
    )
  }, [release, plugins])

  const registry = useMemo(() => componentRegistry(components), [components])
  const violations = useMemo(
    () => validateSelection(registry, selected, { requiredTypes }),
    [registry, selected, requiredTypes],
  )
  // The settings the new environment would have (release + plugins enabled by the selection, with the values
  // typed here): those that do not validate must be given now, or the server refuses the environment.
  const needed = useMemo(() => {
    if (!releaseInfo) return { tree: {} as SettingsTree, errors: [] as { path: string; message: string }[] }
    const tree: SettingsTree = JSON.parse(JSON.stringify(releaseInfo.settings ?? {}))
    for (const p of plugins) {
      const provides = p.components.some((c) => selected.includes(c.name))
      if (provides && p.attributes)
        tree[p.name] = {
          ...JSON.parse(JSON.stringify(p.attributes)),
          metadata: { ...(p.attributes.metadata ?? {}), enabled: true, class: 'plugin' },
        }
    }
    for (const [path, v] of Object.entries(values)) {
      const [g, k] = path.split('.')
      if (tree[g]?.[k]) tree[g][k].value = v
    }
    const models = clientModels(tree, { name }, { name: releaseInfo.name, version: releaseInfo.version })
    let errors: { path: string; message: string }[] = []
    try {
      errors = validateSettings(tree, models)
    } catch {
      errors = []
    }
    return { tree, errors, models }
  }, [releaseInfo, plugins, selected, values, name])
  const [neededPaths, setNeededPaths] = useState<string[]>([])
  useEffect(() => {
    // Fields stay on screen once asked for, even after they become valid.
    const add = needed.errors.map((e) => e.path).filter((p) => p.includes('.') && !neededPaths.includes(p))
    if (add.length) setNeededPaths([...neededPaths, ...add])
  }, [needed])
  const current = PANES[pane]
  const nameProblem = !name
    ? 'Give the environment a name'
    : !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)
      ? 'Use letters, digits, "-", "_" and "." (starting with a letter or digit)'
      : ''

  const toggle = (c: string, on: boolean) =>
    setSelected((s) => (on ? [...s.filter((x) => x !== c), c] : s.filter((x) => x !== c)))

  const create = async () => {
    setError('')
    setProblems([])
    try {
      const settings = Object.fromEntries(Object.entries(values).map(([p, v]) => [`${p}.value`, v]))
      await api('POST', '/environments', { name, release, components: selected, settings })
      go({ page: 'environment', env: name, tab: 'settings' })
    } catch (e) {
      setError(errorText(e))
      if (e instanceof ApiError) setProblems(e.problems.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))))
    }
  }

  return (
    <section aria-labelledby="wizard-title" className="wizard">
      <h1 id="wizard-title">New environment</h1>
      <ol className="steps" aria-label="Wizard steps">
        {PANES.map((p, i) => (
          <li key={p.id} aria-current={i === pane ? 'step' : undefined}>
            {p.title}
          </li>
        ))}
      </ol>
      <h2>{current.title}</h2>
      {current.id === 'name' && (
        <div className="form">
          <label htmlFor="env-name">Name</label>
          <input
            id="env-name"
            value={name}
            onChange={(e) => setName(e.target.value)}
            aria-invalid={!!name && !!nameProblem}
            aria-describedby="env-name-msg"
          />
          <p id="env-name-msg" className={name && nameProblem ? 'error' : 'hint'}>
            {name && nameProblem}
          </p>
          <label htmlFor="env-release">Release</label>
          <select id="env-release" value={release} onChange={(e) => setRelease(e.target.value)}>
            {releases.map((r) => (
              <option key={r.version} value={r.version}>
                {r.name} ({r.version})
              </option>
            ))}
          </select>
          <p className="hint">{releases.find((r) => r.version === release)?.description}</p>
        </div>
      )}
      {current.id !== 'name' && current.id !== 'finish' && (
        <fieldset>
          <legend>{current.title} components</legend>
          {components
            .filter((c) => componentType(c.name) === current.id)
            .map((c) => {
              const isOn = selected.includes(c.name)
              const a = componentAvailability(registry, selected, c.name)
              const blocked = !isOn && a.availability === 'incompatible'
              const id = `c-${c.name.replace(/[^a-z0-9]/gi, '-')}`
              return (
                <div key={c.name} className={`component ${blocked ? 'blocked' : ''}`}>
                  <input
                    type="checkbox"
                    id={id}
                    checked={isOn}
                    disabled={blocked}
                    onChange={(e) => toggle(c.name, e.target.checked)}
                    aria-describedby={`${id}-why`}
                  />
                  <label htmlFor={id}>{c.label ?? c.name}</label>
                  <span id={`${id}-why`} className={blocked ? 'why' : 'hint'}>
                    {blocked
                      ? a.messages.join(' ')
                      : [c.description, a.availability === 'compatible' ? '(compatible)' : '']
                          .filter(Boolean)
                          .join(' ')}
                  </span>
                </div>
              )
            })}
          <TypeViolations list={violations.filter((v) => componentType(v.component) === current.id)} />
        </fieldset>
      )}
      {current.id === 'finish' && (
        <div>
          <dl>
            <dt>Name</dt>
            <dd>{name}</dd>
            <dt>Release</dt>
            <dd>{release}</dd>
            <dt>Components</dt>
            <dd>{selected.map((s) => registry.get(s)?.label ?? s).join(', ')}</dd>
          </dl>
          <TypeViolations list={violations} />
          {neededPaths.length > 0 && (
            <fieldset aria-label="Settings needed to create the environment">
              <legend>Settings needed now</legend>
              {neededPaths.map((p) => {
                const [g, k] = p.split('.')
                const s = needed.tree[g]?.[k]
                if (!s) return null
                return (
                  <Field
                    key={p}
                    path={p}
                    s={s}
                    models={needed.models}
                    disabled={false}
                    errors={needed.errors.filter((e) => e.path === p).map((e) => e.message)}
                    onChange={(path, v) => setValues((vs) => ({ ...vs, [path.replace(/\.value$/, '')]: v }))}
                  />
                )
              })}
            </fieldset>
          )}
          <button
            type="button"
            onClick={create}
            disabled={!!nameProblem || violations.length > 0 || needed.errors.length > 0}
          >
            Create environment
          </button>
        </div>
      )}
      {error && (
        <div role="alert" className="error">
          <p>{error}</p>
          {problems.length > 0 && (
            <ul>
              {problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="wizard-nav">
        <button type="button" onClick={() => setPane(pane - 1)} disabled={pane === 0}>
          Back
        </button>
        <button
          type="button"
          onClick={() => setPane(pane + 1)}
          disabled={pane === PANES.length - 1 || (current.id === 'name' && !!nameProblem)}
        >
          Next
        </button>
      </div>
    </section>
  )
}

function TypeViolations({ list }: { list: { message: string }[] }) {
  if (!list.length) return null
  return (
    <ul className="violations" aria-label="Problems with this selection">
      {list.map((v) => (
        <li key={v.message}>{v.message}</li>
      ))}
    </ul>
  )
}
