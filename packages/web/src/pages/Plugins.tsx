/** Plugins: installed plugins and versions, install from an archive file (sent as the request body), remove. */
import { useEffect, useState, type FormEvent } from 'react'
import { api, errorText } from '../api.js'
import { ColumnHeads, ErrorAlert } from '../widgets.js'

interface Plugin {
  name: string
  version: string
  title: string
  description: string
  releases: { version: string }[]
  components: { name: string; label?: string }[]
  roles: string[]
  installedAt: string
}

export function Plugins() {
  const [list, setList] = useState<Plugin[]>([])
  const [error, setError] = useState('')
  const [status, setStatus] = useState('')
  const [file, setFile] = useState<File | null>(null)
  const load = () => api<Plugin[]>('GET', '/plugins').then(setList, (e) => setError(errorText(e)))
  useEffect(() => {
    void load()
  }, [])

  const install = async (ev: FormEvent) => {
    ev.preventDefault()
    if (!file) return
    setError('')
    setStatus('')
    try {
      const p = await api<Plugin>('POST', '/plugins', undefined, {
        raw: await file.arrayBuffer(),
        contentType: 'application/gzip',
      })
      setStatus(`Installed ${p.name} ${p.version}.`)
      await load()
    } catch (e) {
      setError(`Not installed: ${errorText(e)}`)
    }
  }
  const remove = async (p: Plugin) => {
    setError('')
    setStatus('')
    try {
      await api('DELETE', `/plugins/${encodeURIComponent(p.name)}/${encodeURIComponent(p.version)}`)
      setStatus(`Removed ${p.name} ${p.version}.`)
      await load()
    } catch (e) {
      setError(`Not removed: ${errorText(e)}`)
    }
  }

  return (
    <section aria-labelledby="plugins-title">
      <h1 id="plugins-title">Plugins</h1>
      <table aria-label="Installed plugins">
        <ColumnHeads labels={['Plugin', 'Version', 'Releases', 'Components']} actions />
        <tbody>
          {list.map((p) => (
            <tr key={`${p.name}-${p.version}`}>
              <th scope="row" title={p.description}>
                {p.title} <small>({p.name})</small>
              </th>
              <td>{p.version}</td>
              <td>{p.releases.map((r) => r.version).join(', ')}</td>
              <td>{p.components.map((c) => c.label ?? c.name).join(', ')}</td>
              <td>
                <button type="button" onClick={() => remove(p)} aria-label={`Remove ${p.name} ${p.version}`}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={install} aria-label="Install a plugin">
        <label htmlFor="plugin-file">Plugin archive (.tar.gz or .fp)</label>
        <input
          id="plugin-file"
          type="file"
          accept=".gz,.tgz,.fp"
          onChange={(e) => setFile(e.target.files?.[0] ?? null)}
        />
        <button type="submit" disabled={!file}>
          Install
        </button>
      </form>
      {status && <p role="status">{status}</p>}
      <ErrorAlert error={error} />
    </section>
  )
}
