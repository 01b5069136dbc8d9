/**
 * API tokens: created at the server's first start (printed once), kept only as a salted SHA-256 hash in the state
 * store (`api_tokens`, migration 0300). A token is `xst_<id>_<secret>`: the id finds the row, the 32-byte random
 * secret is what is hashed. A slow hash (scrypt) buys nothing for a 256-bit random secret and would cost every
 * request; the salt keeps two stores' hashes of one token apart. Comparison is in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { StateStore } from '../state/store.js'
import type { Migration } from '../state/migrations.js'

export const SERVER_MIGRATIONS: Migration[] = [
  {
    id: '0300_api_tokens',
    statements: [
      `CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        salt TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT
      )`,
    ],
  },
]

interface TokenRow {
  id: string
  name: string
  salt: string
  hash: string
  created_at: string
  last_used_at: string | null
}

const TOKEN = /^xst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/

/** How long a checked token's row is trusted without reading it again (a revocation elsewhere takes this long). */
export const CACHE_MS = 1000

const digest = (salt: string, secret: string): Buffer =>
  createHash('sha256').update(salt).update('\0').update(secret).digest()

export interface TokenInfo {
  id: string
  name: string
  createdAt: string
  lastUsedAt?: string
}

export class TokenStore {
  /**
   * Ids checked recently with their hash, so a request costs one hash and no query. Entries live CACHE_MS only: a
   * token revoked or rotated out by another process (`xenstack server token`, a second server on the same store)
   * must stop working here too, not only in the process that removed its row.
   */
  private readonly cache = new Map<string, { salt: string; hash: Buffer; at: number }>()

  constructor(private readonly store: StateStore) {
    store.migrate(SERVER_MIGRATIONS)
  }

  count(): number {
    return (this.store.db.prepare('SELECT COUNT(*) AS n FROM api_tokens').get() as { n: number }).n
  }

  list(): TokenInfo[] {
    return (this.store.db.prepare('SELECT * FROM api_tokens ORDER BY created_at').all() as TokenRow[]).map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: r.created_at,
      ...(r.last_used_at ? { lastUsedAt: r.last_used_at } : {}),
    }))
  }

  /** Makes a token and returns it: the only time it exists in plain text. */
  create(name = 'default'): string {
    const id = randomBytes(8).toString('hex')
    const secret = randomBytes(32).toString('base64url')
    const salt = randomBytes(16).toString('hex')
    this.store.db
      .prepare('INSERT INTO api_tokens (id, name, salt, hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(id, name, salt, digest(salt, secret).toString('hex'), new Date().toISOString())
    return `xst_${id}_${secret}`
  }

  /** A token at first start: returns the new token, or undefined when one exists already. */
  ensure(): string | undefined {
    return this.store.transaction(() => (this.count() === 0 ? this.create('first start') : undefined))
  }

  /** True when `presented` is a valid token. */
  verify(presented: string | undefined): boolean {
    const m = presented ? TOKEN.exec(presented) : null
    // Unknown shapes still cost a hash, so timing says nothing about which part was wrong.
    const id = m?.[1] ?? ''
    const now = Date.now()
    let entry = this.cache.get(id)
    if (entry && now - entry.at > CACHE_MS) {
      this.cache.delete(id)
      entry = undefined
    }
    if (!entry && m) {
      const row = this.store.db.prepare('SELECT salt, hash FROM api_tokens WHERE id = ?').get(id) as
        { salt: string; hash: string } | undefined
      if (row) {
        entry = { salt: row.salt, hash: Buffer.from(row.hash, 'hex'), at: now }
        this.cache.set(id, entry)
      }
    }
    const expected = entry?.hash ?? Buffer.alloc(32)
    const actual = digest(entry?.salt ?? 'none', m?.[2] ?? '')
    return timingSafeEqual(expected, actual) && !!entry && !!m
  }

  /** Replaces every token of this name by a new one (the main job's token: one valid at a time). */
  rotate(name: string): string {
    return this.store.transaction(() => {
      for (const r of this.store.db.prepare('SELECT id FROM api_tokens WHERE name = ?').all(name) as { id: string }[])
        this.revoke(r.id)
      return this.create(name)
    })
  }

  revoke(id: string): boolean {
    this.cache.delete(id)
    return this.store.db.prepare('DELETE FROM api_tokens WHERE id = ?').run(id).changes > 0
  }
}

/** The token of a request: `Authorization: Bearer …`, or `?access_token=` on event streams (EventSource cannot
 * send headers). */
export function presentedToken(
  headers: Record<string, unknown>,
  query: unknown,
  allowQuery: boolean,
): string | undefined {
  const auth = headers.authorization
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)$/i.exec(auth)
    return m?.[1]
  }
  if (allowQuery && query && typeof query === 'object') {
    const t = (query as Record<string, unknown>).access_token
    if (typeof t === 'string') return t
  }
  return undefined
}
