/** Printing helpers: every command that prints data prints JSON instead with `--json`. */
export interface OutputOptions {
  json?: boolean
}

/** Prints `data` as one JSON document with `--json`, otherwise calls `human` to print it for people. */
export function emit<T>(opts: OutputOptions, data: T, human: (data: T) => void): void {
  if (opts.json) process.stdout.write(JSON.stringify(data, null, 2) + '\n')
  else human(data)
}

/** Renders rows as an aligned text table with a header line. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)))
  const line = (values: string[]) =>
    values
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd()
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')
}

function formatCell(v: unknown): string {
  if (v === undefined || v === null) return ''
  if (typeof v === 'object') return JSON.stringify(v)
  return String(v)
}
