/**
 * Editing INI files the way OpenStack's (oslo.config) parser reads them, changing only the lines that must change:
 * comments, blank lines, order and unrelated keys are kept byte for byte.
 *
 * Rules: `[section]` headers; `key = value` or `key: value` lines starting in column 0; lines starting with
 * whitespace continue the previous value; `#`/`;` lines are comments. A section may appear more than once (oslo
 * merges them; the last value of a key wins), so `iniGet` returns the last value across all occurrences, and
 * `iniSet` writes the last occurrence and drops the earlier duplicates of that key. `DEFAULT` is the explicit
 * `[DEFAULT]` section; keys before the first header belong to the pseudo-section `''`.
 */

interface Line {
  text: string
  section: string
  kind: 'header' | 'key' | 'continuation' | 'comment' | 'blank'
  key?: string
  /** For keys: the text up to and including the separator and its following spaces. */
  prefix?: string
  value?: string
}

const HEADER = /^\s*\[([^\]]*)\]\s*(?:[#;].*)?$/
const KEY = /^([^\s=:#;[][^=:]*?)(\s*[=:]\s*)(.*)$/

function parse(text: string): Line[] {
  const raw = text === '' ? [] : text.replace(/\n$/, '').split('\n')
  let section = ''
  const lines: Line[] = []
  for (const t of raw) {
    const h = HEADER.exec(t)
    if (h) {
      section = h[1].trim()
      lines.push({ text: t, section, kind: 'header' })
      continue
    }
    if (/^\s*$/.test(t)) {
      lines.push({ text: t, section, kind: 'blank' })
      continue
    }
    if (/^\s*[#;]/.test(t)) {
      lines.push({ text: t, section, kind: 'comment' })
      continue
    }
    if (/^\s/.test(t)) {
      const prev = [...lines].reverse().find((l) => l.kind !== 'blank')
      if (prev && (prev.kind === 'key' || prev.kind === 'continuation')) {
        lines.push({ text: t, section, kind: 'continuation', key: prev.key })
        continue
      }
    }
    const k = KEY.exec(t)
    if (k) {
      lines.push({ text: t, section, kind: 'key', key: k[1].trim(), prefix: k[1] + k[2], value: k[3].trimEnd() })
      continue
    }
    // A bare word (e.g. `key` without a value) is a key with an empty value for our purposes.
    lines.push({ text: t, section, kind: 'key', key: t.trim(), prefix: t.trim() + ' = ', value: '' })
  }
  return lines
}

function render(lines: Line[], hadTrailingNewline: boolean): string {
  if (lines.length === 0) return ''
  return lines.map((l) => l.text).join('\n') + (hadTrailingNewline ? '\n' : '\n')
}

/** Indexes of a key's lines (the key line and its continuation lines) in sections named `section`. */
function occurrences(lines: Line[], section: string, key: string): number[][] {
  const out: number[][] = []
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]
    if (l.kind !== 'key' || l.section !== section || l.key !== key) continue
    const span = [i]
    let j = i + 1
    while (j < lines.length && (lines[j].kind === 'continuation' || lines[j].kind === 'blank')) {
      if (lines[j].kind === 'continuation') span.push(j)
      else if (!(j + 1 < lines.length && lines[j + 1].kind === 'continuation')) break
      j++
    }
    out.push(span)
  }
  return out
}

/** The effective value of a key (the last one), with continuation lines joined by `\n`; undefined when absent. */
export function iniGet(text: string, section: string, key: string): string | undefined {
  const lines = parse(text)
  const occ = occurrences(lines, section, key)
  const last = occ.at(-1)
  if (!last) return undefined
  return last.map((i) => (lines[i].kind === 'key' ? (lines[i].value ?? '') : lines[i].text.trim())).join('\n')
}

/** The sections in file order (duplicates listed once). */
export function iniSections(text: string): string[] {
  return [
    ...new Set(
      parse(text)
        .filter((l) => l.kind === 'header')
        .map((l) => l.section),
    ),
  ]
}

export function iniSet(text: string, section: string, key: string, value: string): string {
  if (value.includes('\n')) throw new Error(`ini [${section}] ${key}: multi-line values are not supported`)
  if (/[=:[\]\s#;]/.test(key) || key === '') throw new Error(`ini [${section}] ${key}: not a valid key name`)
  const lines = parse(text)
  const occ = occurrences(lines, section, key)
  const drop = new Set<number>()
  if (occ.length > 0) {
    const last = occ[occ.length - 1]
    const keyLine = lines[last[0]]
    keyLine.text = `${keyLine.prefix}${value}`
    keyLine.value = value
    for (const i of last.slice(1)) drop.add(i)
    for (const span of occ.slice(0, -1)) for (const i of span) drop.add(i)
    return render(
      lines.filter((_, i) => !drop.has(i)),
      text.endsWith('\n'),
    )
  }
  const newLine: Line = { text: `${key} = ${value}`, section, kind: 'key', key, prefix: `${key} = `, value }
  const headers = lines.map((l, i) => (l.kind === 'header' && l.section === section ? i : -1)).filter((i) => i >= 0)
  const inPseudo = section === '' && lines.length > 0
  if (headers.length > 0 || inPseudo) {
    // The last occurrence of the section runs from its header to the next header.
    const start = headers.length > 0 ? headers[headers.length - 1] : -1
    let end = start + 1
    while (end < lines.length && lines[end].kind !== 'header') end++
    // After a commented-out default of the same key (as in OpenStack's sample configs) when there is one.
    const commented = new RegExp(`^\\s*[#;]\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*[=:]`)
    let at = -1
    for (let i = start + 1; i < end; i++) if (commented.test(lines[i].text)) at = i + 1
    if (at < 0) {
      at = start + 1
      for (let i = start + 1; i < end; i++) if (lines[i].kind === 'key' || lines[i].kind === 'continuation') at = i + 1
    }
    lines.splice(at, 0, newLine)
    return render(lines, true)
  }
  const block: Line[] = [{ text: `[${section}]`, section, kind: 'header' }, newLine]
  if (section === 'DEFAULT') {
    // oslo convention: [DEFAULT] first. Insert before the first header (after the file's opening comments).
    const first = lines.findIndex((l) => l.kind === 'header')
    if (first >= 0) {
      lines.splice(first, 0, ...block, { text: '', section, kind: 'blank' })
      return render(lines, true)
    }
  }
  if (lines.length > 0 && lines[lines.length - 1].kind !== 'blank') lines.push({ text: '', section: '', kind: 'blank' })
  lines.push(...block)
  return render(lines, true)
}

export function iniRemove(text: string, section: string, key: string): string {
  const lines = parse(text)
  const drop = new Set(occurrences(lines, section, key).flat())
  if (drop.size === 0) return text
  return render(
    lines.filter((_, i) => !drop.has(i)),
    text.endsWith('\n'),
  )
}
