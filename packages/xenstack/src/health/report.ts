/**
 * Reports of health runs: JSON (the API's run objects plus a summary) and JUnit XML (one <testsuite> per test set,
 * one <testcase> per test; failures and errors carry the `Step N failed: …` message and the evidence), so CI
 * systems show a failed check like any failed test.
 */
import { runJson } from './api.js'
import type { RunRecord, TestStatus } from './types.js'

export type StatusCounts = Record<TestStatus, number> & { total: number }

export function countStatuses(runs: readonly RunRecord[]): StatusCounts {
  const c: StatusCounts = {
    total: 0,
    wait_running: 0,
    running: 0,
    success: 0,
    failure: 0,
    error: 0,
    skipped: 0,
    stopped: 0,
    disabled: 0,
  }
  for (const r of runs)
    for (const t of r.tests) {
      c.total++
      c[t.status]++
    }
  return c
}

/** A run set passes when no test failed, errored or was stopped. */
export const runsPassed = (runs: readonly RunRecord[]): boolean => {
  const c = countStatuses(runs)
  return c.failure === 0 && c.error === 0 && c.stopped === 0 && c.running === 0 && c.wait_running === 0
}

export function jsonReport(environment: string, runs: readonly RunRecord[]) {
  return { environment, ok: runsPassed(runs), summary: countStatuses(runs), runs: runs.map(runJson) }
}

const xml = (s: string): string =>
  s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    // XML 1.0 forbids most control characters, even escaped
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '')

const seconds = (startedAt: string | null, endedAt: string | null): number =>
  startedAt && endedAt ? Math.max(0, (Date.parse(endedAt) - Date.parse(startedAt)) / 1000) : 0

export function junitReport(environment: string, runs: readonly RunRecord[]): string {
  const all = countStatuses(runs)
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xml(`xenstack health ${environment}`)}" tests="${all.total}" failures="${all.failure}" ` +
      `errors="${all.error + all.stopped}" skipped="${all.skipped + all.disabled}" ` +
      `time="${runs.reduce((s, r) => s + seconds(r.startedAt, r.endedAt), 0).toFixed(3)}">`,
  ]
  for (const r of runs) {
    const c = countStatuses([r])
    lines.push(
      `  <testsuite name="${xml(r.testset)}" id="${xml(r.id)}" tests="${c.total}" failures="${c.failure}" ` +
        `errors="${c.error + c.stopped}" skipped="${c.skipped + c.disabled}" time="${seconds(r.startedAt, r.endedAt).toFixed(3)}" ` +
        `timestamp="${xml(r.startedAt)}">`,
    )
    for (const t of r.tests) {
      const open = `    <testcase classname="${xml(`${environment}.${r.testset}`)}" name="${xml(t.id)}" time="${(t.taken ?? 0).toFixed(3)}">`
      const evidence = t.evidence.length ? xml(JSON.stringify(t.evidence, null, 2)) : ''
      const body: string[] = []
      if (t.status === 'failure')
        body.push(`      <failure message="${xml(t.message)}" type="failure">${evidence}</failure>`)
      else if (t.status === 'error' || t.status === 'stopped')
        body.push(`      <error message="${xml(t.message || t.status)}" type="${t.status}">${evidence}</error>`)
      else if (t.status === 'skipped' || t.status === 'disabled')
        body.push(`      <skipped message="${xml(`${t.status}: ${t.message}`)}"/>`)
      else if (t.status !== 'success')
        body.push(`      <error message="${xml(`not finished: ${t.status}`)}" type="${t.status}"/>`)
      if (t.status === 'success' && (t.message || evidence))
        body.push(`      <system-out>${xml([t.message, evidence].filter(Boolean).join('\n'))}</system-out>`)
      lines.push(body.length ? `${open}\n${body.join('\n')}\n    </testcase>` : open.replace(/>$/, '/>'))
    }
    lines.push('  </testsuite>')
  }
  lines.push('</testsuites>', '')
  return lines.join('\n')
}
