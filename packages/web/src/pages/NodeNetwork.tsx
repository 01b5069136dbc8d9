/**
 * A node's network on the Nodes page: its HIMN status (what the server reads through XAPI and, when it can reach the
 * node, inside the guest) and Fuel's interface configuration — the logical networks dragged onto the node's NICs,
 * saved through the API, which refuses a network on no NIC or on two, a NIC the node does not have and the HIMN's NIC.
 */
import { useEffect, useRef, useState, type DragEvent } from 'react'
import { api, errorText } from '../api.js'

interface HimnReport {
  applicable: boolean
  reason?: string
  vif?: { device: string; mac: string; attached: boolean } | null
  xenstoreMac?: string | null
  status?: string
  agentIp?: string
  guest?: { interface: string | null; ipv4: string[] } | { error: string }
}

const nodePath = (env: string, node: string) =>
  `/environments/${encodeURIComponent(env)}/nodes/${encodeURIComponent(node)}`

/** One line saying whether the node's VM has its HIMN VIF plugged, with MAC and the guest's address when known. */
export function HimnStatus({ env, node }: { env: string; node: string }) {
  const [report, setReport] = useState<HimnReport | null>(null)
  const [error, setError] = useState('')
  const load = () => {
    setError('')
    api<HimnReport>('GET', `${nodePath(env, node)}/himn`).then(setReport, (x) => setError(errorText(x)))
  }
  useEffect(load, [env, node])
  if (error) return <span className="error">{error}</span>
  if (!report) return <span aria-busy="true">checking…</span>
  return (
    <span data-testid={`himn-${node}`}>
      {himnText(report)}{' '}
      {report.applicable && (
        <button type="button" className="link" onClick={load} aria-label={`Refresh HIMN of ${node}`}>
          ↻
        </button>
      )}
    </span>
  )
}

function himnText(r: HimnReport): string {
  if (!r.applicable) return 'no HIMN (not a VM of a pool)'
  if (!r.vif) return `no HIMN VIF: ${r.status}`
  const parts = [`${r.vif.attached ? 'plugged' : 'not plugged'}: VIF ${r.vif.device}, MAC ${r.vif.mac}`]
  if (r.xenstoreMac !== r.vif.mac) parts.push(`xenstore MAC ${r.xenstoreMac ?? 'missing'}`)
  const g = r.guest
  if (g && 'error' in g) parts.push(`guest not reached: ${g.error}`)
  else if (g && g.interface) parts.push(`in the guest ${g.interface} ${g.ipv4.join(', ') || 'without an address'}`)
  else if (g) parts.push('no interface with this MAC in the guest yet')
  if (r.agentIp) parts.push(`guest agent reports ${r.agentIp}`)
  return parts.join('; ')
}

interface Nic {
  name: string
  mac: string
  network?: string
  attached?: boolean
  ipv4?: string[]
  himn: boolean
}
interface NodeInterfaces {
  source: 'xapi' | 'node'
  nics: Nic[]
  networks: string[]
  assignments: Record<string, string>
}

const UNASSIGNED = ''

/** The NICs as drop targets, the logical networks as chips to drag onto them; Save sends the result. */
export function Interfaces({ env, node, onClose }: { env: string; node: string; onClose: () => void }) {
  const [info, setInfo] = useState<NodeInterfaces | null>(null)
  // network → NIC ('' while on no NIC)
  const [placed, setPlaced] = useState<Record<string, string>>({})
  const [dragging, setDragging] = useState('')
  const [error, setError] = useState('')
  const [status, setStatus] = useState('')
  const panel = useRef<HTMLElement>(null)
  // opened below the nodes table: brought into view
  useEffect(() => {
    // a block body: Chromium's scrollIntoView returns a promise, which React would take for a cleanup function
    void panel.current?.scrollIntoView({ block: 'nearest' })
  }, [info !== null])
  const show = (i: NodeInterfaces) => {
    setInfo(i)
    setPlaced(Object.fromEntries(i.networks.map((n) => [n, i.assignments[n] ?? UNASSIGNED])))
  }
  useEffect(() => {
    api<NodeInterfaces>('GET', `${nodePath(env, node)}/interfaces`).then(show, (x) => setError(errorText(x)))
  }, [env, node])

  const drop = (nic: string) => (ev: DragEvent) => {
    ev.preventDefault()
    const network = ev.dataTransfer.getData('text/plain') || dragging
    setDragging('')
    if (!network || !(network in placed)) return
    setStatus('')
    setPlaced((p) => ({ ...p, [network]: nic }))
  }
  const save = async () => {
    if (!info) return
    setError('')
    setStatus('')
    const nics = Object.fromEntries(
      info.nics.map((n) => [n.name, info.networks.filter((net) => placed[net] === n.name)]),
    )
    try {
      show(await api<NodeInterfaces>('PUT', `${nodePath(env, node)}/interfaces`, { nics }))
      setStatus(`Interfaces of ${node} saved.`)
    } catch (x) {
      setError(errorText(x))
    }
  }

  const chips = (nic: string) =>
    (info?.networks ?? [])
      .filter((n) => placed[n] === nic)
      .map((n) => (
        <span
          key={n}
          className="chip"
          draggable
          role="listitem"
          aria-label={`${n} network`}
          onDragStart={(ev) => {
            ev.dataTransfer.setData('text/plain', n)
            ev.dataTransfer.effectAllowed = 'move'
            setDragging(n)
          }}
          onDragEnd={() => setDragging('')}
        >
          {n}
        </span>
      ))
  const target = (nic: string, disabled: boolean) =>
    disabled ? {} : { onDragOver: (ev: DragEvent) => ev.preventDefault(), onDrop: drop(nic) }

  return (
    <section className="interfaces" aria-label={`Interfaces of ${node}`} ref={panel}>
      <h3>Interfaces of {node}</h3>
      {!info && !error && <p aria-busy="true">Reading the NICs…</p>}
      {info && (
        <>
          <p className="hint">
            Drag each network onto the NIC that carries it. NICs{' '}
            {info.source === 'xapi' ? "from the VM's VIFs in XAPI" : 'read on the node'}.
          </p>
          <div className="nic unassigned" role="list" aria-label="Networks not on a NIC" {...target(UNASSIGNED, false)}>
            <strong>Not on a NIC</strong>
            {chips(UNASSIGNED)}
          </div>
          {info.nics.map((n) => (
            <div
              key={n.name}
              className={n.himn ? 'nic himn' : 'nic'}
              role="list"
              aria-label={`NIC ${n.name}`}
              {...target(n.name, n.himn)}
            >
              <strong>{n.name}</strong>{' '}
              <small>
                {n.mac}
                {n.network ? ` · ${n.network}` : ''}
                {n.ipv4?.length ? ` · ${n.ipv4.join(', ')}` : ''}
                {n.attached === false ? ' · not plugged' : ''}
                {n.himn ? ' · HIMN, configured by xenstack' : ''}
              </small>
              {chips(n.name)}
            </div>
          ))}
          <button type="button" onClick={save}>
            Save interfaces
          </button>{' '}
          <button type="button" onClick={onClose}>
            Close
          </button>
        </>
      )}
      {status && <p role="status">{status}</p>}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </section>
  )
}
