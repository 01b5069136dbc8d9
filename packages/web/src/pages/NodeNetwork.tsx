/**
 * A node's network on the Nodes page: its HIMN status (what the server reads through XAPI and, when it can reach the
 * node, inside the guest) and Fuel's interface configuration — the logical networks dragged onto the node's NICs,
 * saved through the API, which refuses a network on no NIC or on two, a NIC the node does not have and the HIMN's NIC.
 * And the environment's virtual IPs (the public one is nova's noVNC address on the compute nodes).
 */
import { useEffect, useRef, useState, type DragEvent, type FormEvent } from 'react'
import { api, ApiError, errorText } from '../api.js'
import { ErrorAlert } from '../widgets.js'

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
  // a network moved with the keys keeps the focus in its new place
  const refocus = useRef('')
  useEffect(() => {
    if (!refocus.current) return
    panel.current?.querySelector<HTMLElement>(`[data-network="${refocus.current}"]`)?.focus()
    refocus.current = ''
  })
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
          data-network={n}
          onDragStart={(ev) => {
            ev.dataTransfer.setData('text/plain', n)
            ev.dataTransfer.effectAllowed = 'move'
            setDragging(n)
          }}
          onDragEnd={() => setDragging('')}
          tabIndex={0}
          aria-describedby="chip-keys"
          onKeyDown={(ev) => {
            // the keyboard's way: up/down moves the network to the previous/next NIC that can take it
            const step = ev.key === 'ArrowDown' ? 1 : ev.key === 'ArrowUp' ? -1 : 0
            if (!step) return
            ev.preventDefault()
            const targets = [UNASSIGNED, ...(info?.nics ?? []).filter((x) => !x.himn).map((x) => x.name)]
            const next = targets[(targets.indexOf(nic) + step + targets.length) % targets.length]
            setStatus('')
            refocus.current = n
            setPlaced((p) => ({ ...p, [n]: next }))
          }}
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
          <p className="hint" id="chip-keys">
            Drag each network onto the NIC that carries it (or focus it and press the up and down arrow keys). NICs{' '}
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
      <ErrorAlert error={error} />
    </section>
  )
}

interface Vips {
  publicVip: string | null
  managementVip: string | null
}

const VIP_FIELDS = [
  ['publicVip', 'Public VIP', "where users reach the environment (nova's noVNC URL)"],
  ['managementVip', 'Management VIP', 'where services reach the controllers'],
] as const

/** The environment's virtual IPs (Fuel's Networks tab); the server's refusal is put on the field it names. */
export function VirtualIps({ env }: { env: string }) {
  const [values, setValues] = useState<Record<string, string>>({ publicVip: '', managementVip: '' })
  const [invalid, setInvalid] = useState<Record<string, string>>({})
  const [status, setStatus] = useState('')
  const path = `/environments/${encodeURIComponent(env)}/vips`
  const show = (v: Vips) => setValues({ publicVip: v.publicVip ?? '', managementVip: v.managementVip ?? '' })
  useEffect(() => {
    api<Vips>('GET', path).then(show, (x) => setInvalid({ form: errorText(x) }))
  }, [env])
  const save = async (ev: FormEvent) => {
    ev.preventDefault()
    setInvalid({})
    setStatus('')
    try {
      show(await api<Vips>('PUT', path, values))
      setStatus('Virtual IPs saved.')
    } catch (x) {
      const field = x instanceof ApiError ? (x.field ?? '').replace(/^body\./, '') : ''
      setInvalid({ [VIP_FIELDS.some(([k]) => k === field) ? field : 'form']: errorText(x) })
    }
  }
  return (
    <form onSubmit={save} aria-label="Virtual IPs" className="form">
      <h2>Virtual IPs</h2>
      {VIP_FIELDS.map(([key, label, hint]) => (
        <span key={key} className="field">
          <label htmlFor={`vip-${key}`}>{label}</label>
          <input
            id={`vip-${key}`}
            value={values[key]}
            onChange={(e) => setValues((v) => ({ ...v, [key]: e.target.value }))}
            aria-invalid={!!invalid[key]}
            aria-describedby={`vip-${key}-hint${invalid[key] ? ` vip-${key}-error` : ''}`}
          />
          <span id={`vip-${key}-hint`} className="hint">
            {hint}
          </span>
          {invalid[key] && (
            <span id={`vip-${key}-error`} className="field-errors">
              {invalid[key]}
            </span>
          )}
        </span>
      ))}
      <ErrorAlert error={invalid.form} />
      {status && <p role="status">{status}</p>}
      <button type="submit">Save virtual IPs</button>
    </form>
  )
}
