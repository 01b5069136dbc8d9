/**
 * A small line diff for showing what a resource will change in a text file (config files are small).
 * Lines that a `hide` predicate marks as secret are shown with their value replaced.
 */

const MAX_CELLS = 4_000_000

export interface DiffOptions {
  /** Lines of unchanged context around each change (default 1). */
  context?: number
  /** Rewrites a line for display (e.g. redacts a password value). */
  show?: (line: string) => string
}

/** `- old` / `+ new` lines with a little context; `@@ line N` marks where each hunk starts. */
export function lineDiff(before: string, after: string, options: DiffOptions = {}): string[] {
  const show = options.show ?? ((l: string) => l)
  const ctxLines = options.context ?? 1
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n')
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n')
  if (a.length * b.length > MAX_CELLS) return [`~ content differs (${a.length} → ${b.length} lines)`]
  // LCS table from the end.
  const n = a.length
  const m = b.length
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
  type Op = { kind: ' ' | '-' | '+'; text: string; line: number }
  const ops: Op[] = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ kind: ' ', text: a[i], line: j + 1 })
      i++
      j++
    } else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      ops.push({ kind: '+', text: b[j], line: j + 1 })
      j++
    } else {
      ops.push({ kind: '-', text: a[i], line: j + 1 })
      i++
    }
  }
  const keep = new Array<boolean>(ops.length).fill(false)
  ops.forEach((op, k) => {
    if (op.kind === ' ') return
    for (let d = Math.max(0, k - ctxLines); d <= Math.min(ops.length - 1, k + ctxLines); d++) keep[d] = true
  })
  const out: string[] = []
  let last = -2
  ops.forEach((op, k) => {
    if (!keep[k]) return
    if (k !== last + 1) out.push(`@@ line ${op.line}`)
    out.push(`${op.kind} ${show(op.text)}`)
    last = k
  })
  if (before !== '' && after !== '' && before.endsWith('\n') !== after.endsWith('\n'))
    out.push('~ final newline differs')
  return out
}
