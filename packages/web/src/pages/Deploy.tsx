/**
 * Deploy: a dry run shows, per node, every task that would run or be skipped (with why) and each native task's
 * resource diffs — nothing changes. Deploy starts the engine and follows the environment's event stream: the
 * snapshot, then task statuses, per-node and overall progress, and output lines. A task's log opens on click;
 * Stop asks for a graceful stop, Resume re-runs what did not succeed. A failure shows its node, task, failing
 * step, exit code and output tail.
 */
import { useEffect, useRef, useState } from 'react'
import { api, ApiError, errorText, eventStream } from '../api.js'
import { ColumnHeads, ErrorAlert } from '../widgets.js'

interface TaskRow {
  key: string
  node: string
  task: string
  status: string
  attempt?: number
  reason?: string | null
  error?: TaskError | null
}
interface TaskError {
  node: string
  task: string
  step?: string
  exitCode?: number
  message: string
  tail?: string[]
}
interface DryRun {
  nodes: {
    name: string
    tasks: {
      task: string
      type: string
      action: string
      reason?: string
      detail?: string
      changes?: { resource: string; result: string; diff?: string }[]
      error?: string
    }[]
  }[]
  tasks: { total: number; run: number; skipped: number }
  changes: number
  notes?: string[]
}
interface Summary {
  deployment: number
  status: string
  reason?: string
  tasks: { total: number; succeeded: number; failed: number; skipped: number }
  errors: TaskError[]
}

const STRUCTURAL = /^(_sync$)/

export function Deploy({ env }: { env: string }) {
  const e = encodeURIComponent(env)
  const [dry, setDry] = useState<DryRun | null>(null)
  const [busy, setBusy] = useState('')
  const [error, setError] = useState('')
  const [deploying, setDeploying] = useState(false)
  const [deploymentId, setDeploymentId] = useState<number | null>(null)
  const [summary, setSummary] = useState<Summary | null>(null)
  const [tasks, setTasks] = useState<Record<string, TaskRow>>({})
  const [nodeProgress, setNodeProgress] = useState<Record<string, number>>({})
  const [progress, setProgress] = useState(0)
  const [log, setLog] = useState<{
    node: string
    task: string
    output: string[]
    status: string
    error?: TaskError
  } | null>(null)
  const idRef = useRef<number | null>(null)

  // Several loads overlap (snapshot, start, end events): only the newest one's answer is shown, so a slow
  // answer from while it ran cannot replace the final state.
  const generation = useRef(0)
  // Task events newer than a load's request win over what that load answers (it may have been read before them).
  const eventCount = useRef(0)
  const lastEvent = useRef(new Map<string, number>())
  // The same numbering for 'deployment' events, per deployment: a start's answer must not mark as running a
  // deployment whose end was heard while the answer was on its way (a resume with little left can end before its
  // POST is answered).
  const lastDeploymentEvent = useRef(new Map<number, number>())
  const loadDeployment = async (id: number) => {
    const mine = ++generation.current
    const asked = eventCount.current
    const d = await api(`GET`, `/deployments/${id}`)
    if (mine !== generation.current) return
    idRef.current = id
    setDeploymentId(id)
    setSummary(d)
    setTasks((current) =>
      Object.fromEntries(
        (d.tasks as TaskRow[]).map((t) => [
          t.key,
          (lastEvent.current.get(t.key) ?? -1) >= asked && current[t.key] ? { ...t, ...current[t.key] } : t,
        ]),
      ),
    )
    const total: Record<string, [number, number]> = {}
    for (const t of d.tasks as TaskRow[]) {
      if (STRUCTURAL.test(t.node)) continue
      const c = (total[t.node] ??= [0, 0])
      c[1]++
      if (['succeeded', 'skipped', 'failed', 'dep_failed'].includes(t.status)) c[0]++
    }
    setNodeProgress(
      Object.fromEntries(Object.entries(total).map(([n, [a, b]]) => [n, b ? Math.round((100 * a) / b) : 100])),
    )
  }

  // The event stream: live while the page is open.
  useEffect(() => {
    const es = eventStream(`/environments/${e}/events`)
    es.addEventListener('snapshot', (m) => {
      const s = JSON.parse((m as MessageEvent).data)
      setDeploying(!!s.deploying)
      if (s.deployment) void loadDeployment(s.deployment.deployment).catch(() => {})
    })
    es.addEventListener('deployment', (m) => {
      const d = JSON.parse((m as MessageEvent).data)
      lastDeploymentEvent.current.set(d.deployment, eventCount.current++)
      if (d.status === 'running') {
        setDeploying(true)
        void loadDeployment(d.deployment).catch(() => {})
      } else {
        setDeploying(false)
        void loadDeployment(d.deployment).catch(() => {})
        if (d.status === 'error' && d.reason) setError(d.reason)
      }
    })
    es.addEventListener('task', (m) => {
      const t = JSON.parse((m as MessageEvent).data)
      if (idRef.current !== null && t.deployment !== idRef.current) void loadDeployment(t.deployment).catch(() => {})
      lastEvent.current.set(t.key, eventCount.current++)
      setTasks((ts) => ({ ...ts, [t.key]: { ...(ts[t.key] ?? {}), ...t } }))
    })
    es.addEventListener('progress', (m) => {
      const p = JSON.parse((m as MessageEvent).data)
      setNodeProgress((np) => ({ ...np, [p.node]: p.nodeProgress }))
      setProgress(p.progress)
    })
    es.addEventListener('log', (m) => {
      const l = JSON.parse((m as MessageEvent).data)
      setLog((cur) =>
        cur && cur.node === l.node && cur.task === l.task ? { ...cur, output: [...cur.output, l.line] } : cur,
      )
    })
    return () => es.close()
  }, [env])

  const run = async (label: string, fn: () => Promise<void>) => {
    setBusy(label)
    setError('')
    try {
      await fn()
    } catch (x) {
      setError(errorText(x))
    } finally {
      setBusy('')
    }
  }
  const dryRun = () =>
    run('dry run', async () => {
      setDry(await api<DryRun>('POST', `/environments/${e}/deployments`, { dryRun: true }))
    })
  /** Sends a start (deploy or resume); running until an event says otherwise, unless one already has. */
  const start = async (send: () => Promise<{ deployment: number }>) => {
    const asked = eventCount.current
    const r = await whenFree(send)
    // Events heard since the request was sent (its 'running', maybe its end) already set `deploying` right.
    if ((lastDeploymentEvent.current.get(r.deployment) ?? -1) < asked) setDeploying(true)
    await loadDeployment(r.deployment)
  }
  const deploy = () =>
    run('deploy', async () => {
      setDry(null)
      setProgress(0)
      await start(() => api('POST', `/environments/${e}/deployments`, {}))
    })
  const stop = () => run('stop', () => api('POST', `/environments/${e}/deployments/stop`))
  const resume = () => run('resume', () => start(() => api('POST', `/environments/${e}/deployments/resume`)))
  const openLog = async (t: TaskRow) => {
    if (deploymentId === null) return
    try {
      const l = await api(
        'GET',
        `/deployments/${deploymentId}/nodes/${encodeURIComponent(t.node)}/tasks/${encodeURIComponent(t.task)}/log`,
      )
      setLog({ node: t.node, task: t.task, output: l.output, status: l.status, error: l.error ?? undefined })
    } catch (x) {
      setError(errorText(x))
    }
  }

  const rows = Object.values(tasks).filter((t) => !STRUCTURAL.test(t.node) && !/_(start|end)$/.test(t.task))
  const nodes = [...new Set(rows.map((t) => t.node))]
  const finished = summary && !deploying
  const overall = deploying ? progress : finished && summary?.status === 'succeeded' ? 100 : progress

  return (
    <div className="deploy">
      <div className="actions" role="toolbar" aria-label="Deployment">
        <button type="button" onClick={dryRun} disabled={!!busy || deploying}>
          Dry run
        </button>
        <button type="button" onClick={deploy} disabled={!!busy || deploying}>
          Deploy
        </button>
        <button type="button" onClick={stop} disabled={!deploying}>
          Stop
        </button>
        <button type="button" onClick={resume} disabled={deploying || !summary || summary.status === 'ready'}>
          Resume
        </button>
      </div>
      {busy && <p role="status">Working: {busy}…</p>}
      <ErrorAlert error={error} />
      {dry && <DryRunView dry={dry} />}
      {summary && (
        <section aria-label="Deployment progress">
          <h2>
            Deployment #{summary.deployment}:{' '}
            <span data-testid="deployment-status">{deploying ? 'running' : summary.status}</span>
          </h2>
          <label htmlFor="overall-progress">Overall progress</label>
          <progress id="overall-progress" max={100} value={overall}>
            {overall}%
          </progress>
          {summary.reason && !deploying && <p>{summary.reason}</p>}
          {nodes.map((n) => (
            <section key={n} aria-label={`Node ${n}`} className="node-progress">
              <h3>{n}</h3>
              <label htmlFor={`np-${n}`}>Progress of {n}</label>
              <progress id={`np-${n}`} max={100} value={nodeProgress[n] ?? 0}>
                {nodeProgress[n] ?? 0}%
              </progress>
              <table aria-label={`Tasks of ${n}`}>
                <ColumnHeads labels={['Task', 'Status', 'Reason']} />
                <tbody>
                  {rows
                    .filter((t) => t.node === n)
                    .map((t) => (
                      <tr key={t.key} className={`status-${t.status}`}>
                        <td>
                          <button
                            type="button"
                            className="link"
                            onClick={() => openLog(t)}
                            aria-label={`Log of ${t.task} on ${n}`}
                          >
                            {t.task}
                          </button>
                        </td>
                        <td>{t.status}</td>
                        <td>{t.reason ?? ''}</td>
                      </tr>
                    ))}
                </tbody>
              </table>
            </section>
          ))}
          {!deploying && summary.errors?.length > 0 && (
            <section aria-label="Errors" className="errors">
              <h3>Errors</h3>
              {summary.errors.map((x) => (
                <ErrorView key={`${x.node}/${x.task}`} e={x} />
              ))}
            </section>
          )}
        </section>
      )}
      {log && (
        <section role="dialog" aria-label={`Log of ${log.task} on ${log.node}`} className="log">
          <h3>
            {log.task} on {log.node} — {tasks[`${log.node}/${log.task}`]?.status ?? log.status}
          </h3>
          {log.error && <ErrorView e={log.error} />}
          <pre>{log.output.join('\n') || '(no output)'}</pre>
          <button type="button" onClick={() => setLog(null)}>
            Close log
          </button>
        </section>
      )}
    </div>
  )
}

/**
 * Starts a deployment. The server announces a deployment's end a moment before it lets a new one start, so a
 * click right after the end can meet "is running": asked again for a few seconds before that is shown.
 */
async function whenFree<T>(start: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5000
  for (;;) {
    try {
      return await start()
    } catch (x) {
      if (!(x instanceof ApiError && x.status === 409 && /is running/.test(x.message)) || Date.now() > deadline) throw x
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

function ErrorView({ e }: { e: TaskError }) {
  return (
    <div className="task-error" role="group" aria-label={`Error of ${e.task} on ${e.node}`}>
      <p>
        <strong>
          {e.node} / {e.task}
        </strong>
        {e.step ? ` — failing step: ${e.step}` : ''}
        {e.exitCode !== undefined ? ` (exit code ${e.exitCode})` : ''}
      </p>
      <p>{e.message}</p>
      {e.tail && e.tail.length > 0 && <pre aria-label="Output tail">{e.tail.join('\n')}</pre>}
    </div>
  )
}

function DryRunView({ dry }: { dry: DryRun }) {
  return (
    <section aria-label="Dry run" className="dry-run">
      <h2>Dry run: nothing was changed</h2>
      <p>
        {dry.tasks.run} tasks would run, {dry.tasks.skipped} skipped; {dry.changes} changes.
      </p>
      {dry.notes?.map((n) => (
        <p key={n} className="hint">
          {n}
        </p>
      ))}
      {dry.nodes.map((n) => (
        <details key={n.name} open>
          <summary>{n.name}</summary>
          <ul aria-label={`Dry run of ${n.name}`}>
            {n.tasks.map((t) => (
              <li key={t.task} className={`action-${t.action}`}>
                <span>{t.action === 'run' ? 'run' : 'skip'}</span> <code>{t.task}</code>
                {t.reason ? ` — ${t.reason}` : ''}
                {t.detail ? <code className="detail"> {t.detail}</code> : null}
                {t.error && <span className="error"> {t.error}</span>}
                {t.changes && t.changes.length > 0 && (
                  <ul>
                    {t.changes.map((c) => (
                      <li key={c.resource} className={`change-${c.result}`}>
                        {c.result === 'changed' ? '~' : '='} {c.resource}
                        {c.diff && <pre className="diff">{c.diff}</pre>}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            ))}
          </ul>
        </details>
      ))}
    </section>
  )
}
