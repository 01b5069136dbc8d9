/**
 * Secrets at rest: AES-256-GCM with a random 96-bit IV per value and a 32-byte key kept in `<data-dir>/secret.key`
 * (created 0600, never printed). Encrypted values are strings `enc:v1:<base64 iv|tag|ciphertext>` so they can sit
 * inside JSON columns; anything printed goes through `redact` first.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { chmodSync, closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export const SECRET_PREFIX = 'enc:v1:'
export const REDACTED = '********'

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** Loads the key file of a data directory, creating it (0600) on first use. */
  static forDataDir(dataDir: string): SecretBox {
    const file = join(dataDir, 'secret.key')
    if (!existsSync(file)) {
      try {
        const fd = openSync(file, 'wx', 0o600)
        writeSync(fd, randomBytes(32).toString('base64') + '\n')
        closeSync(fd)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
    }
    const mode = statSync(file).mode & 0o777
    if (mode & 0o077) chmodSync(file, 0o600)
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64')
    if (key.length !== 32) {
      throw new Error(`${file}: expected a base64-encoded 32-byte key (AES-256), found ${key.length} bytes`)
    }
    return new SecretBox(key)
  }

  static isEncrypted(v: unknown): v is string {
    return typeof v === 'string' && v.startsWith(SECRET_PREFIX)
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.key, iv)
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
    return SECRET_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')
  }

  decrypt(value: string): string {
    if (!SecretBox.isEncrypted(value)) throw new Error('not an encrypted value (expected enc:v1:…)')
    const raw = Buffer.from(value.slice(SECRET_PREFIX.length), 'base64')
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12))
    decipher.setAuthTag(raw.subarray(12, 28))
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
    } catch {
      throw new Error(
        "cannot decrypt a stored secret: the data directory's secret.key is not the key it was written with",
      )
    }
  }
}

/** Applies `fn` to the value of every `type: password` setting of a settings tree (copy; input untouched). */
export function mapPasswords(tree: unknown, fn: (value: string) => string): any {
  if (Array.isArray(tree)) return tree.map((x) => mapPasswords(x, fn))
  if (!tree || typeof tree !== 'object') return tree
  const o = tree as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) out[k] = mapPasswords(v, fn)
  if (o.type === 'password' && typeof o.value === 'string' && o.value !== '') out.value = fn(o.value)
  return out
}

/** A copy with every password value replaced by `********` (what logs, errors and `--json` output show). */
export const redactPasswords = (tree: unknown): any => mapPasswords(tree, () => REDACTED)
