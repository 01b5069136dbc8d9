/** Pools: add one by its master's XAPI URL and credentials; what XAPI reports, kept current by its events. */
import { useEffect, useState, type FormEvent } from 'react'
import { api, errorText, eventStream } from '../api.js'
import { ErrorAlert, PoolVmItems, type PoolVm } from '../widgets.js'

interface Pool {
  name: string
  url: string
  username: string
  status: string
  error?: string
  inventory?: {
    hosts: { uuid: string; name: string; address: string; version?: string }[]
    vms: PoolVm[]
    networks: { uuid: string; name: string; bridge: string }[]
    srs: { uuid: string; name: string; type: string; shared: boolean }[]
  } | null
}

export function Pools() {
  const [pools, setPools] = useState<Pool[]>([])
  const [error, setError] = useState('')
  const load = async () => {
    const list = await api<Pool[]>('GET', '/pools')
    setPools(await Promise.all(list.map((p) => api<Pool>('GET', `/pools/${encodeURIComponent(p.name)}`))))
  }
  useEffect(() => {
    load().catch((e) => setError(errorText(e)))
  }, [])
  // Each pool's event stream: reload on any add/update/remove XAPI reports.
  useEffect(() => {
    const streams = pools.map((p) => {
      const es = eventStream(`/pools/${encodeURIComponent(p.name)}/events`)
      let t: ReturnType<typeof setTimeout> | undefined
      const refresh = () => {
        clearTimeout(t)
        t = setTimeout(() => load().catch(() => {}), 300)
      }
      for (const ev of ['add', 'update', 'remove', 'status']) es.addEventListener(ev, refresh)
      return es
    })
    return () => streams.forEach((s) => s.close())
  }, [pools.map((p) => p.name).join('\n')])

  return (
    <section aria-labelledby="pools-title">
      <h1 id="pools-title">Pools</h1>
      <ErrorAlert error={error} />
      {pools.map((p) => (
        <section key={p.name} aria-label={`Pool ${p.name}`}>
          <h2>
            {p.name}{' '}
            <small>
              {p.url} — {p.status}
            </small>
          </h2>
          {p.error && <p className="error">{p.error}</p>}
          <h3>Hosts</h3>
          <ul>
            {p.inventory?.hosts.map((h) => (
              <li key={h.uuid}>
                {h.name} ({h.address}) {h.version ?? ''}
              </li>
            ))}
          </ul>
          <h3>VMs</h3>
          <ul>
            <PoolVmItems vms={p.inventory?.vms} />
          </ul>
          <h3>Networks and storage</h3>
          <p>{p.inventory?.networks.map((n) => `${n.name} (${n.bridge})`).join(', ')}</p>
          <p>{p.inventory?.srs.map((s) => `${s.name} (${s.type}${s.shared ? ', shared' : ''})`).join(', ')}</p>
        </section>
      ))}
      <AddPool onAdded={() => load().catch((e) => setError(errorText(e)))} />
    </section>
  )
}

function AddPool({ onAdded }: { onAdded: () => void }) {
  const [f, setF] = useState({ name: '', url: '', username: 'root', password: '', verify: true })
  const [error, setError] = useState('')
  const submit = async (ev: FormEvent) => {
    ev.preventDefault()
    setError('')
    try {
      const { verify, ...rest } = f
      await api('POST', '/pools', { ...rest, tls: { verify } })
      setF({ ...f, name: '', url: '', password: '' })
      onAdded()
    } catch (e) {
      setError(errorText(e))
    }
  }
  const field = (k: 'name' | 'url' | 'username' | 'password', label: string, type = 'text') => (
    <>
      <label htmlFor={`pool-${k}`}>{label}</label>
      <input
        id={`pool-${k}`}
        type={type}
        value={f[k]}
        autoComplete={type === 'password' ? 'new-password' : 'off'}
        onChange={(e) => setF({ ...f, [k]: e.target.value })}
        required
      />
    </>
  )
  return (
    <form onSubmit={submit} aria-label="Add a pool" className="form">
      <h2>Add a pool</h2>
      {field('name', 'Pool name')}
      {field('url', "Master's XAPI URL")}
      {field('username', 'Username')}
      {field('password', 'Password', 'password')}
      <span>
        <input
          type="checkbox"
          id="pool-verify"
          checked={f.verify}
          onChange={(e) => setF({ ...f, verify: e.target.checked })}
        />
        <label htmlFor="pool-verify">Verify the TLS certificate</label>
      </span>
      <ErrorAlert error={error} />
      <button type="submit">Add pool</button>
    </form>
  )
}
