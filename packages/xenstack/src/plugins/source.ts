/**
 * YAML with source positions. Every plugin and release file is parsed with the `yaml` package's
 * parseDocument + LineCounter so that any problem found later (schema, graph, restriction) can name the file,
 * line and column of the value it is about, not just its path.
 *
 * YAML 1.1 is used because Fuel read these files with PyYAML (1.1): `yes`/`no`/`on`/`off` are booleans and
 * `!!pairs`/`!!omap`/`!!set` (used by fuel-web's release fixtures) are understood.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml'

export type DocPath = (string | number)[]

/** One problem in a file: where it is, the path inside the document, what was found and what was expected. */
export interface Issue {
  severity: 'error' | 'warning'
  file: string
  line: number
  column: number
  /** Path inside the document, e.g. `attributes.password.regex.source` or `[2].requires[0]`. */
  path: string
  message: string
  found?: string
  expected?: string
}

export function formatPath(path: DocPath): string {
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p
  return s || '(document)'
}

/** `file:line:column: path: message (expected X, found Y)` — the one-line form every issue is printed in. */
export function formatIssue(i: Issue): string {
  const parts = [
    i.expected !== undefined ? `expected ${i.expected}` : '',
    i.found !== undefined ? `found ${i.found}` : '',
  ]
  const detail = parts.some(Boolean) ? ` (${parts.filter(Boolean).join(', ')})` : ''
  return `${i.file}:${i.line}:${i.column}: ${i.severity === 'warning' ? 'warning: ' : ''}${i.path}: ${i.message}${detail}`
}

/** Thrown when a plugin or release is invalid; carries every issue. */
export class ValidationError extends Error {
  constructor(
    readonly subject: string,
    readonly issues: Issue[],
  ) {
    const errors = issues.filter((i) => i.severity === 'error')
    super(
      `${subject} is invalid: ${errors.length} error${errors.length === 1 ? '' : 's'}\n` +
        errors.map((i) => '  ' + formatIssue(i)).join('\n'),
    )
    this.name = 'ValidationError'
  }
}

/** Shows a value briefly for "found …" (never more than 60 characters). */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (v === null) return 'null'
  if (Array.isArray(v)) return `a list (${v.length} item${v.length === 1 ? '' : 's'})`
  if (typeof v === 'object') return `a map with keys ${Object.keys(v).slice(0, 6).join(', ') || '(none)'}`
  const s = JSON.stringify(v)
  return `${typeof v} ${s.length > 60 ? s.slice(0, 57) + '...' : s}`
}

export class YamlSource {
  constructor(
    /** The name used in messages (relative path of the file). */
    readonly file: string,
    readonly text: string,
    readonly doc: Document.Parsed,
    readonly lines: LineCounter,
    readonly data: unknown,
  ) {}

  /** Line and column (1-based) of the node at `path`, or of its closest existing ancestor. */
  locate(path: DocPath, key = false): { line: number; column: number } {
    let node: unknown = this.doc.contents
    let offset = (node as YamlNode | null)?.range?.[0] ?? 0
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg))
        if (!pair) break
        const keyNode = pair.key as YamlNode | null
        if (key && seg === path[path.length - 1] && keyNode?.range) {
          offset = keyNode.range[0]
          break
        }
        node = pair.value
        const r = (pair.value as YamlNode | null)?.range ?? keyNode?.range
        if (r) offset = r[0]
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as YamlNode | undefined
        if (!item) break
        node = item
        if (item.range) offset = item.range[0]
      } else break
    }
    const { line, col } = this.lines.linePos(offset)
    return { line, column: col }
  }

  issue(
    path: DocPath,
    message: string,
    extra: { found?: string; expected?: string; severity?: 'error' | 'warning'; atKey?: boolean } = {},
  ): Issue {
    const { line, column } = this.locate(path, extra.atKey)
    return {
      severity: extra.severity ?? 'error',
      file: this.file,
      line,
      column,
      path: formatPath(path),
      message,
      found: extra.found,
      expected: extra.expected,
    }
  }
}

/** Parses YAML; syntax errors come back as issues with their positions (data is then undefined). */
export function parseYaml(file: string, text: string): { source?: YamlSource; issues: Issue[] } {
  const lines = new LineCounter()
  const doc = parseDocument(text, {
    lineCounter: lines,
    version: '1.1',
    prettyErrors: false,
    uniqueKeys: true,
    merge: true,
  })
  const issues: Issue[] = []
  for (const e of doc.errors) {
    const { line, col } = lines.linePos(e.pos[0])
    issues.push({
      severity: 'error',
      file,
      line,
      column: col,
      path: '(document)',
      message: `YAML syntax error: ${e.message.split('\n')[0]}`,
      expected: 'valid YAML',
    })
  }
  for (const w of doc.warnings) {
    const { line, col } = lines.linePos(w.pos[0])
    issues.push({ severity: 'warning', file, line, column: col, path: '(document)', message: w.message.split('\n')[0] })
  }
  if (doc.errors.length) return { issues }
  // toJS throws for an alias to an anchor defined later and for alias bombs (exponential expansion); both are
  // the file's problem, reported at the document's start (the yaml library gives no position for them).
  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 1000 })
  } catch (e) {
    issues.push({
      severity: 'error',
      file,
      line: 1,
      column: 1,
      path: '(document)',
      message: `YAML error: ${(e as Error).message.split('\n')[0]}`,
      expected: 'valid YAML',
    })
    return { issues }
  }
  return { source: new YamlSource(file, text, doc, lines, data), issues }
}
