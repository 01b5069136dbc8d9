/** The environments list: status, last deployment, links to each environment's tabs. */
import { useEffect, useState } from 'react'
import { api, errorText } from '../api.js'
import { href } from '../route.js'
import { ColumnHeads } from '../widgets.js'

interface EnvSummary {
  name: string
  release: string
  components: string[]
  nodes: { name: string; roles: string[] }[]
  deploying: boolean
  lastDeployment: { id: number; status: string } | null
}

export function Environments() {
  const [envs, setEnvs] = useState<EnvSummary[] | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    api<EnvSummary[]>('GET', '/environments').then(setEnvs, (e) => setError(errorText(e)))
  }, [])
  return (
    <section aria-labelledby="envs-title">
      <h1 id="envs-title">Environments</h1>
      {error && <p role="alert">{error}</p>}
      {envs && envs.length === 0 && (
        <p>
          No environment yet. <a href="#/new">Create one</a>.
        </p>
      )}
      {envs && envs.length > 0 && (
        <table>
          <ColumnHeads labels={['Name', 'Release', 'Components', 'Nodes', 'Last deployment']} />
          <tbody>
            {envs.map((e) => (
              <tr key={e.name}>
                <td>
                  <a href={href({ page: 'environment', env: e.name, tab: 'settings' })}>{e.name}</a>
                </td>
                <td>{e.release}</td>
                <td>{e.components.join(', ')}</td>
                <td>{e.nodes.length}</td>
                <td>
                  {e.deploying
                    ? 'deploying'
                    : e.lastDeployment
                      ? `#${e.lastDeployment.id} ${e.lastDeployment.status}`
                      : 'never deployed'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
