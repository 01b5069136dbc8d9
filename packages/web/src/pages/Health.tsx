/**
 * Health check: the test sets that apply to the environment (fuel-ostf's API under /api/health), run the chosen
 * ones, follow the runs live on the environment's health event stream, stop a run; a failure shows its message,
 * the failing step and the evidence the check collected.
 */
import { useEffect, useState } from 'react'
import { api, errorText, eventStream } from '../api.js'
import { ColumnHeads, ErrorAlert } from '../widgets.js'

interface TestSet {
  id: string
  name: string
}
interface Test {
  id: string
  testset: string
  name: string
  description?: string
  message?: string
  step?: number | null
  status: string
  taken?: number | null
  evidence?: unknown
}
interface Run {
  id: number | string
  testset: string
  status: string
  tests: Test[]
}

export function Health({ env }: { env: string }) {
  const e = encodeURIComponent(env)
  const [sets, setSets] = useState<TestSet[]>([])
  const [chosen, setChosen] = useState<string[]>([])
  const [tests, setTests] = useState<Test[]>([])
  const [runs, setRuns] = useState<Record<string, Run>>({})
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)

  useEffect(() => {
    Promise.all([
      api<TestSet[]>('GET', `/api/health/v1/testsets/${e}`),
      api<Test[]>('GET', `/api/health/v1/tests/${e}`),
    ]).then(
      ([s, t]) => {
        setSets(s)
        setTests(t)
      },
      (x) => setError(errorText(x)),
    )
    const es = eventStream(`/environments/${e}/health/events`)
    es.addEventListener('snapshot', (m) => {
      const s = JSON.parse((m as MessageEvent).data) as { runs: Run[] }
      setRuns(Object.fromEntries(s.runs.map((r) => [r.testset, r])))
    })
    es.addEventListener('run', (m) => {
      const r = JSON.parse((m as MessageEvent).data) as Run
      setRuns((rs) => ({ ...rs, [r.testset]: r }))
    })
    return () => es.close()
  }, [env])

  const start = async () => {
    setBusy(true)
    setError('')
    try {
      const started = await api<Run[]>(
        'POST',
        '/api/health/v1/testruns',
        chosen.map((testset) => ({ testset, metadata: { cluster_id: env } })),
      )
      // A short run can end, and its end be heard on the event stream, before this answer (the run as it started)
      // arrives: an ended run heard is kept.
      setRuns((rs) => {
        const next = { ...rs }
        for (const r of started) {
          const heard = rs[r.testset]
          if (!(heard && heard.id === r.id && heard.status !== 'running')) next[r.testset] = r
        }
        return next
      })
    } catch (x) {
      setError(errorText(x))
    } finally {
      setBusy(false)
    }
  }
  const stop = async (r: Run) => {
    try {
      await api('PUT', '/api/health/v1/testruns', [{ id: r.id, status: 'stopped' }])
    } catch (x) {
      setError(errorText(x))
    }
  }

  return (
    <div className="health">
      <fieldset>
        <legend>Test sets</legend>
        {sets.map((s) => (
          <span key={s.id} className="testset">
            <input
              type="checkbox"
              id={`set-${s.id}`}
              checked={chosen.includes(s.id)}
              onChange={(ev) => setChosen((c) => (ev.target.checked ? [...c, s.id] : c.filter((x) => x !== s.id)))}
            />
            <label htmlFor={`set-${s.id}`}>{s.name}</label>
          </span>
        ))}
      </fieldset>
      <button type="button" onClick={start} disabled={busy || chosen.length === 0}>
        Run tests
      </button>
      <ErrorAlert error={error} />
      {sets.map((s) => {
        const r = runs[s.id]
        const list = r ? r.tests : tests.filter((t) => t.testset === s.id)
        return (
          <section key={s.id} aria-label={`Test set ${s.name}`}>
            <h2>
              {s.name} <small data-testid={`run-status-${s.id}`}>{r ? `run ${r.id}: ${r.status}` : 'not run'}</small>
            </h2>
            {r && r.status === 'running' && (
              <button type="button" onClick={() => stop(r)}>
                Stop {s.name}
              </button>
            )}
            <table aria-label={`Tests of ${s.name}`}>
              <ColumnHeads labels={['Test', 'Status', 'Time']} />
              <tbody>
                {list.map((t) => (
                  <tr key={t.id} className={`status-${t.status}`}>
                    <td>
                      {t.name}
                      {(t.status === 'failure' || t.status === 'error' || t.status === 'disabled') && t.message && (
                        <div className="test-message">
                          <p>{t.message}</p>
                          {t.evidence != null && (
                            <details>
                              <summary>Evidence</summary>
                              <pre>
                                {typeof t.evidence === 'string' ? t.evidence : JSON.stringify(t.evidence, null, 2)}
                              </pre>
                            </details>
                          )}
                        </div>
                      )}
                    </td>
                    <td>{t.status}</td>
                    <td>{t.taken != null ? `${Number(t.taken).toFixed(1)} s` : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )
      })}
    </div>
  )
}
