/**
 * Nodes: the environment's nodes with their roles, and nodes added from what the pools' XAPI reports (a VM of a
 * pool, recorded as `data.pool` + `data.vm`, how the integration finds the compute VM) or reached over SSH or on
 * this machine, or picked from the machines of a pool whose access the server knows (a lab's hosts, with the access
 * records `lab up` would register: GET /pools/:pool/node-candidates). Roles are checkboxes; a role that conflicts with one the node has (either side's `conflicts`), or
 * whose restriction holds, is disabled with the reason — the shared checkRoleAssignment, which the server runs
 * again on every change. Each node shows its HIMN status and opens its interface configuration (NodeNetwork.tsx).
 */
import { useEffect, useRef, useState, type FormEvent } from 'react'
import { checkRoleAssignment, type RoleMeta } from '@xenstack/restrictions'
import { api, errorText } from '../api.js'
import { clientModels } from '../models.js'
import { HimnStatus, Interfaces, VirtualIps } from './NodeNetwork.js'
import { ColumnHeads, ErrorAlert, PoolVmItems, type PoolVm } from '../widgets.js'

interface NodeRow {
  name: string
  roles: string[]
  status?: string
  data?: Record<string, any>
}
interface Candidate {
  name: string
  kind: string
  source: string
  data: Record<string, unknown>
}
interface PoolRow {
  name: string
  status: string
  error?: string
  inventory?: {
    hosts: { name: string; address: string }[]
    vms: PoolVm[]
  } | null
}

export function Nodes({ env }: { env: string }) {
  const [nodes, setNodes] = useState<NodeRow[]>([])
  const [roles, setRoles] = useState<Record<string, RoleMeta>>({})
  const [models, setModels] = useState<any>({})
  const [pools, setPools] = useState<PoolRow[]>([])
  const [error, setError] = useState('')
  const [status, setStatus] = useState('')
  const [loaded, setLoaded] = useState(false)
  const [editing, setEditing] = useState('')
  const e = encodeURIComponent(env)
  // Loads overlap (the first one and the one after adding a node): only the newest one's answer is shown.
  const generation = useRef(0)

  const load = async () => {
    const mine = ++generation.current
    const info = await api('GET', `/environments/${e}`)
    const [release, plugins, settings, poolList] = await Promise.all([
      api('GET', `/releases/${encodeURIComponent(info.release)}`),
      api<{ name: string; roles: string[] }[]>('GET', '/plugins'),
      api('GET', `/environments/${e}/settings`),
      api<PoolRow[]>('GET', '/pools'),
    ])
    // Plugins' roles are listed by name only; the server checks their own conflicts when one is assigned.
    const enabled = (info.plugins ?? []).filter((p: any) => p.enabled).map((p: any) => p.name)
    const pluginRoles = plugins.filter((p) => enabled.includes(p.name)).flatMap((p) => p.roles)
    const inventories = await Promise.all(
      poolList.map((p) => api<PoolRow>('GET', `/pools/${encodeURIComponent(p.name)}`)),
    )
    if (mine !== generation.current) return
    setRoles({ ...Object.fromEntries(pluginRoles.map((r) => [r, {}])), ...release.roles })
    setModels(clientModels(settings, info, release))
    setNodes(info.nodes)
    setPools(inventories)
    setLoaded(true)
  }
  useEffect(() => {
    load().catch((x) => setError(errorText(x)))
  }, [env])

  const setNodeRoles = async (node: string, next: string[]) => {
    setError('')
    setStatus('')
    // Shown at once (a checkbox answers its click), put back when the server refuses.
    const before = nodes.find((n) => n.name === node)?.roles ?? []
    const show = (roles: string[]) => setNodes((ns) => ns.map((n) => (n.name === node ? { ...n, roles } : n)))
    show(next)
    try {
      await api('PUT', `/environments/${e}/nodes/${encodeURIComponent(node)}`, { roles: next })
      setStatus(`Roles of ${node}: ${next.join(', ') || 'none'}`)
    } catch (x) {
      show(before)
      setError(errorText(x))
    }
  }
  const remove = async (node: string) => {
    try {
      await api('DELETE', `/environments/${e}/nodes/${encodeURIComponent(node)}`)
      setNodes((ns) => ns.filter((n) => n.name !== node))
    } catch (x) {
      setError(errorText(x))
    }
  }

  /** Why `role` cannot be added to the node (conflict, restriction), or '' when it can. */
  const blockedWhy = (n: NodeRow, role: string): string => {
    try {
      const problems = checkRoleAssignment(roles, [{ name: n.name, roles: [...n.roles, role] }], models)
      return problems
        .filter((p) => p.severity === 'error' && ['conflict', 'restriction', 'unknown'].includes(p.kind))
        .map((p) => p.message)
        .join(' ')
    } catch {
      return ''
    }
  }

  return (
    <div className="nodes">
      <h2>Nodes</h2>
      {nodes.length === 0 && <p>No nodes yet: add one below.</p>}
      {nodes.length > 0 && (
        <table aria-label="Nodes and roles">
          <ColumnHeads labels={['Node', 'Access', 'Roles', 'HIMN']} actions />
          <tbody>
            {nodes.map((n) => (
              <tr key={n.name}>
                <th scope="row">{n.name}</th>
                <td>{access(n)}</td>
                <td>
                  <fieldset className="roles">
                    <legend className="sr-only">Roles of {n.name}</legend>
                    {Object.entries(roles).map(([r, meta]) => {
                      const on = n.roles.includes(r)
                      const why = on ? '' : blockedWhy(n, r)
                      const id = `role-${n.name}-${r}`
                      return (
                        <span key={r} className={why ? 'role blocked' : 'role'}>
                          <input
                            type="checkbox"
                            id={id}
                            checked={on}
                            disabled={!!why}
                            aria-describedby={why ? `${id}-why` : undefined}
                            onChange={(ev) =>
                              setNodeRoles(n.name, ev.target.checked ? [...n.roles, r] : n.roles.filter((x) => x !== r))
                            }
                          />
                          <label htmlFor={id} aria-label={`${meta.name ?? r} on ${n.name}`}>
                            {meta.name ?? r}
                          </label>
                          {why && (
                            <span id={`${id}-why`} className="why" title={why}>
                              {why}
                            </span>
                          )}
                        </span>
                      )
                    })}
                  </fieldset>
                </td>
                <td>
                  <HimnStatus env={env} node={n.name} />
                </td>
                <td>
                  <button type="button" onClick={() => setEditing(n.name)} aria-label={`Interfaces of ${n.name}`}>
                    Interfaces
                  </button>{' '}
                  <button type="button" onClick={() => remove(n.name)} aria-label={`Remove node ${n.name}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {status && <p role="status">{status}</p>}
      <ErrorAlert error={error} />
      {editing && <Interfaces env={env} node={editing} key={editing} onClose={() => setEditing('')} />}
      <VirtualIps env={env} />
      <AddNode env={env} pools={pools} ready={loaded} onAdded={() => load().catch((x) => setError(errorText(x)))} />
      <h2>Discovered through XAPI</h2>
      {pools.length === 0 && (
        <p>
          No pool yet: <a href="#/pools">add one</a> by its master's XAPI URL.
        </p>
      )}
      {pools.map((p) => (
        <section key={p.name} aria-label={`Pool ${p.name}`}>
          <h3>
            Pool {p.name} <small>({p.status})</small>
          </h3>
          {p.error && <p className="error">{p.error}</p>}
          <p>Hosts: {p.inventory?.hosts.map((h) => `${h.name} (${h.address})`).join(', ') || 'none'}</p>
          <ul aria-label={`VMs of ${p.name}`}>
            <PoolVmItems vms={p.inventory?.vms} />
          </ul>
        </section>
      ))}
    </div>
  )
}

function access(n: NodeRow): string {
  const d = n.data ?? {}
  const parts = []
  if (d.local) parts.push('this machine')
  if (d.ssh?.host) parts.push(`ssh ${d.ssh.user ?? 'root'}@${d.ssh.host}`)
  if (d.pool) parts.push(`pool ${d.pool}${d.vm ? `, VM ${d.vm}` : ''}`)
  return parts.join('; ') || 'no access recorded'
}

function AddNode(props: { env: string; pools: PoolRow[]; ready: boolean; onAdded: () => void }) {
  const { env, pools, ready, onAdded } = props
  const [name, setName] = useState('')
  const [how, setHow] = useState<'vm' | 'known' | 'ssh' | 'local'>('vm')
  const [pool, setPool] = useState('')
  const [vm, setVm] = useState('')
  const [host, setHost] = useState('')
  const [identity, setIdentity] = useState('')
  const [error, setError] = useState('')
  const vms = pools.find((p) => p.name === pool)?.inventory?.vms ?? []
  // machines of the chosen pool whose access the server knows (a lab's hosts), with the data to add them with
  const [candidates, setCandidates] = useState<Candidate[]>([])
  const [candidate, setCandidate] = useState('')
  useEffect(() => {
    setCandidates([])
    setCandidate('')
    if (how !== 'known' || !pool) return
    let current = true
    api<Candidate[]>('GET', `/pools/${encodeURIComponent(pool)}/node-candidates`)
      .then((c) => current && setCandidates(c))
      .catch((x) => current && setError(errorText(x)))
    return () => {
      current = false
    }
  }, [how, pool])
  const chosen = candidates.find((c) => c.name === candidate)
  const submit = async (ev: FormEvent) => {
    ev.preventDefault()
    setError('')
    if (how === 'known' && !chosen) return setError('Choose a machine of the pool')
    const data: Record<string, unknown> =
      how === 'known'
        ? chosen!.data
        : how === 'local'
          ? { local: true }
          : how === 'ssh'
            ? { ssh: { host, identityFile: identity } }
            : { pool, vm, ...(host ? { ssh: { host, identityFile: identity } } : {}) }
    try {
      await api('POST', `/environments/${encodeURIComponent(env)}/nodes`, { name, roles: [], data })
      setName('')
      setCandidates((c) => c.filter((x) => x !== chosen))
      setCandidate('')
      onAdded()
    } catch (x) {
      setError(errorText(x))
    }
  }
  return (
    <form onSubmit={submit} aria-label="Add a node" className="form">
      <h2>Add a node</h2>
      <label htmlFor="node-name">Node name</label>
      <input id="node-name" value={name} onChange={(e) => setName(e.target.value)} required />
      <fieldset>
        <legend>Reached</legend>
        {(
          [
            ['vm', 'A VM of a pool (found through XAPI)'],
            ['known', "A machine of a pool whose access the server knows (a lab's hosts)"],
            ['ssh', 'Over SSH'],
            ['local', 'On this machine'],
          ] as const
        ).map(([v, l]) => (
          <span key={v}>
            <input type="radio" name="how" id={`how-${v}`} checked={how === v} onChange={() => setHow(v)} />
            <label htmlFor={`how-${v}`}>{l}</label>
          </span>
        ))}
      </fieldset>
      {how === 'vm' && (
        <>
          <label htmlFor="node-pool">Pool</label>
          <select id="node-pool" value={pool} onChange={(e) => setPool(e.target.value)}>
            <option value="">—</option>
            {pools.map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
          <label htmlFor="node-vm">VM</label>
          <select id="node-vm" value={vm} onChange={(e) => setVm(e.target.value)}>
            <option value="">—</option>
            {vms.map((v) => (
              <option key={v.uuid} value={v.uuid}>
                {v.name} ({v.powerState})
              </option>
            ))}
          </select>
        </>
      )}
      {how === 'known' && (
        <>
          <label htmlFor="node-known-pool">Pool</label>
          <select id="node-known-pool" value={pool} onChange={(e) => setPool(e.target.value)}>
            <option value="">—</option>
            {pools.map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
          <label htmlFor="node-machine">Machine</label>
          <select
            id="node-machine"
            value={candidate}
            onChange={(e) => {
              setCandidate(e.target.value)
              if (e.target.value) setName(e.target.value)
            }}
          >
            <option value="">{pool && !candidates.length ? 'none known' : '—'}</option>
            {candidates.map((c) => (
              <option key={c.name} value={c.name}>
                {c.name} ({c.kind}, {c.source})
              </option>
            ))}
          </select>
        </>
      )}
      {(how === 'vm' || how === 'ssh') && (
        <>
          <label htmlFor="node-host">SSH address{how === 'vm' ? ' (optional)' : ''}</label>
          <input id="node-host" value={host} onChange={(e) => setHost(e.target.value)} required={how === 'ssh'} />
          <label htmlFor="node-identity">SSH private key file on the server</label>
          <input
            id="node-identity"
            value={identity}
            onChange={(e) => setIdentity(e.target.value)}
            required={how === 'ssh' || !!host}
          />
        </>
      )}
      <ErrorAlert error={error} />
      <button type="submit" disabled={!ready}>
        Add node
      </button>
    </form>
  )
}
