/** The shell: login with the API token, then the navigation and the page the hash names. */
import { useEffect, useState, type FormEvent } from 'react'
import { api, clearToken, errorText, getToken, onUnauthorized, setToken } from './api.js'
import { ENV_TABS, href, useRoute } from './route.js'
import { Environments } from './pages/Environments.js'
import { Wizard } from './pages/Wizard.js'
import { Settings } from './pages/Settings.js'
import { Nodes } from './pages/Nodes.js'
import { Deploy } from './pages/Deploy.js'
import { Health } from './pages/Health.js'
import { Plugins } from './pages/Plugins.js'
import { Pools } from './pages/Pools.js'

export function App() {
  const [token, setTok] = useState(getToken())
  const [notes, setNotes] = useState<string[]>([])
  useEffect(
    () =>
      onUnauthorized(() => {
        clearToken()
        setTok(null)
      }),
    [],
  )
  useEffect(() => {
    if (token)
      api<{ notes: string[] }>('GET', '/status').then(
        (s) => setNotes(s.notes ?? []),
        () => {},
      )
  }, [token])
  if (!token) return <Login onLogin={(t) => setTok(t)} />
  return (
    <div className="shell">
      <header>
        <span className="brand">xenstack</span>
        <nav aria-label="Main">
          <a href="#/">Environments</a>
          <a href="#/new">New environment</a>
          <a href="#/pools">Pools</a>
          <a href="#/plugins">Plugins</a>
        </nav>
        <button
          type="button"
          onClick={() => {
            clearToken()
            setTok(null)
          }}
        >
          Log out
        </button>
      </header>
      {notes.length > 0 && (
        <aside className="notes" aria-label="What cannot run here">
          <ul>
            {notes.map((n) => (
              <li key={n}>{n}</li>
            ))}
          </ul>
        </aside>
      )}
      <main>
        <Page />
      </main>
    </div>
  )
}

function Page() {
  const route = useRoute()
  switch (route.page) {
    case 'wizard':
      return <Wizard />
    case 'plugins':
      return <Plugins />
    case 'pools':
      return <Pools />
    case 'environment':
      return (
        <section aria-label={`Environment ${route.env}`}>
          <h1>Environment {route.env}</h1>
          <nav className="tabs" aria-label="Environment">
            {ENV_TABS.map((t) => (
              <a
                key={t}
                href={href({ page: 'environment', env: route.env, tab: t })}
                aria-current={route.tab === t ? 'page' : undefined}
              >
                {t[0].toUpperCase() + t.slice(1)}
              </a>
            ))}
          </nav>
          {route.tab === 'settings' && <Settings env={route.env} key={route.env} />}
          {route.tab === 'nodes' && <Nodes env={route.env} key={route.env} />}
          {route.tab === 'deploy' && <Deploy env={route.env} key={route.env} />}
          {route.tab === 'health' && <Health env={route.env} key={route.env} />}
        </section>
      )
    default:
      return <Environments />
  }
}

function Login({ onLogin }: { onLogin: (t: string) => void }) {
  const [value, setValue] = useState('')
  const [error, setError] = useState('')
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    try {
      // Checked against the server before it is kept: a wrong token is said at once.
      await api('GET', '/status', undefined, { token: value.trim() })
      setToken(value.trim())
      onLogin(value.trim())
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <main className="login">
      <h1>xenstack</h1>
      <form onSubmit={submit} aria-label="Log in">
        <label htmlFor="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          aria-invalid={!!error}
          aria-describedby={error ? 'token-error' : undefined}
        />
        <p className="hint">The token was printed when the server first started (xst_…).</p>
        {error && (
          <p id="token-error" role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit">Log in</button>
      </form>
    </main>
  )
}
