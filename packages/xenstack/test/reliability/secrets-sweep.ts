// The secrets sweep's search: every encoding a secret could be written in, and a counter of the places searched and
// what was found there (by kind of place), used by the secrets*.test.ts files.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Files bigger than this are not read (none of the places a secret could be written comes close). */
export const MAX_FILE = 64 << 20

export interface Secret {
  what: string
  value: string
}
export interface Needle {
  secret: string
  encoding: string
  bytes: Buffer
  text: string
}

/** A secret as it could appear: plain, JSON-escaped, URL-encoded, hex, base64/base64url at each of 3 alignments. */
export function needlesOf(s: Secret): Needle[] {
  const out = new Map<string, string>()
  const add = (encoding: string, text: string) => {
    if (text.length >= 8 && !out.has(text)) out.set(text, encoding)
  }
  add('plain', s.value)
  add('JSON-escaped', JSON.stringify(s.value).slice(1, -1))
  add('URL-encoded', encodeURIComponent(s.value))
  add('form-encoded', new URLSearchParams({ x: s.value }).toString().slice(2))
  add('hex', Buffer.from(s.value).toString('hex'))
  for (const kind of ['base64', 'base64url'] as const) {
    for (let k = 0; k < 3; k++) {
      // k bytes before the secret shift it inside base64's 3-byte groups; keep only the groups made of secret bytes
      const bytes = Buffer.concat([Buffer.alloc(k, 0x20), Buffer.from(s.value)])
      const enc = bytes.toString(kind)
      add(`${kind}@${k}`, enc.slice(k ? 4 : 0, Math.floor(bytes.length / 3) * 4))
    }
  }
  return [...out].map(([text, encoding]) => ({ secret: s.what, encoding, text, bytes: Buffer.from(text) }))
}

export const ENCODINGS = [
  'plain',
  'JSON-escaped',
  'URL-encoded',
  'form-encoded',
  'hex',
  'base64 (3 alignments)',
  'base64url (3 alignments)',
]

export interface Finding {
  place: string
  secret: string
  encoding: string
}

/** Counts the places searched and what was found, by kind of place. */
export class Sweep {
  readonly places: Record<string, number> = {}
  readonly bytes: Record<string, number> = {}
  readonly findings: Finding[] = []
  /** The files searched, by kind (for the report). */
  readonly filesSearched: Record<string, string[]> = {}
  readonly allowed: Finding[] = []
  constructor(
    private readonly needles: Needle[],
    private readonly isAllowed: (place: string, f: Needle) => boolean = () => false,
  ) {}

  search(kind: string, place: string, content: string | Buffer): void {
    this.places[kind] = (this.places[kind] ?? 0) + 1
    this.bytes[kind] = (this.bytes[kind] ?? 0) + content.length
    for (const n of this.needles) {
      const hit = typeof content === 'string' ? content.includes(n.text) : content.includes(n.bytes)
      if (!hit) continue
      const f = { place: `${kind}: ${place}`, secret: n.secret, encoding: n.encoding }
      if (this.isAllowed(place, n)) this.allowed.push(f)
      else this.findings.push(f)
    }
  }

  /** Every regular file under `dir` (not following links), with `skip` for subtrees searched elsewhere. */
  files(kind: string, dir: string, opts: { since?: number; skip?: (path: string) => boolean } = {}): void {
    const walk = (d: string) => {
      let entries: string[]
      try {
        entries = readdirSync(d)
      } catch {
        return
      }
      for (const e of entries) {
        const p = join(d, e)
        if (opts.skip?.(p)) continue
        let st
        try {
          st = statSync(p, { throwIfNoEntry: false })
        } catch {
          continue
        }
        if (!st) continue
        if (st.isDirectory()) walk(p)
        else if (st.isFile() && st.size <= MAX_FILE && (opts.since === undefined || st.mtimeMs >= opts.since)) {
          let data: Buffer
          try {
            data = readFileSync(p)
          } catch {
            continue
          }
          this.search(kind, p, data)
          ;(this.filesSearched[kind] ??= []).push(`${p} (${data.length} bytes)`)
        }
      }
    }
    walk(dir)
  }
}
