/**
 * Reading an OpenStack configuration file as oslo.config does, strictly enough to report what it would choke on:
 * every line is blank, a comment (`#`, `;`), a `[section]`, `key = value` (or `key: value`), or a continuation
 * line (indented, after a key). The last occurrence of a key wins, as in oslo.config.
 */
export interface ParsedIni {
  /** section → key → value (last wins). */
  sections: Map<string, Map<string, string>>
  /** `line N: <text>` for every line oslo.config would refuse. */
  errors: string[]
}

export function parseIni(text: string): ParsedIni {
  const sections = new Map<string, Map<string, string>>()
  const errors: string[] = []
  let section: string | undefined
  let lastKey: string | undefined
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '')
    if (!line.trim() || /^\s*[#;]/.test(line)) return
    if (/^\s/.test(line) && lastKey !== undefined && section !== undefined) {
      const m = sections.get(section)!
      m.set(lastKey, `${m.get(lastKey)}\n${line.trim()}`)
      return
    }
    const header = /^\[([^\]]+)\]\s*$/.exec(line)
    if (header) {
      section = header[1]!.trim()
      if (!sections.has(section)) sections.set(section, new Map())
      lastKey = undefined
      return
    }
    const kv = /^([^=:\s][^=:]*?)\s*[=:]\s*(.*)$/.exec(line)
    if (kv && section !== undefined) {
      sections.get(section)!.set(kv[1]!, kv[2]!.trim())
      lastKey = kv[1]
      return
    }
    errors.push(
      `line ${i + 1}: ${JSON.stringify(line.length > 80 ? line.slice(0, 80) + '…' : line)} ${
        kv ? 'is a key before any [section]' : 'is neither a [section], a key = value nor a comment'
      }`,
    )
  })
  return { sections, errors }
}
