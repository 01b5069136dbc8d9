/**
 * Pinned SSH host keys. A key is trusted only if it is pinned here; trust on first use is an explicit choice of the
 * caller (it pins the key it saw); a host presenting a key other than the pinned one is refused.
 *
 * `FileKnownHostsStore` reads and writes OpenSSH's known_hosts format (plain and hashed host names, `[host]:port`),
 * so a known_hosts written by the lab or by `ssh-keyscan` can be used as is. The interface is small so the state
 * store can hold the pins later.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { appendFile, mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'

export interface HostKey {
  /** Key type as in the key blob, e.g. `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`. */
  type: string
  /** The raw public key blob (the base64 part of a known_hosts line, decoded). */
  blob: Buffer
}

export interface KnownHostsStore {
  /** Every key pinned for this host and port. */
  lookup(host: string, port: number): Promise<HostKey[]>
  /** Pins a key for this host and port. */
  pin(host: string, port: number, key: HostKey): Promise<void>
}

/** OpenSSH-style fingerprint, `SHA256:<base64 without padding>`. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/** The key type named at the start of an SSH public key blob. */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) throw new Error('SSH host key blob is too short')
  const len = blob.readUInt32BE(0)
  if (len > 64 || 4 + len > blob.length) throw new Error('SSH host key blob has no valid key type')
  return blob.subarray(4, 4 + len).toString('ascii')
}

export function hostKeyFromBlob(blob: Buffer): HostKey {
  return { type: keyTypeOf(blob), blob }
}

/** The host field OpenSSH uses: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function matchesPattern(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|')
    if (!salt || !hash) return false
    const h = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64')
    return h === hash
  }
  if (pattern.includes('*') || pattern.includes('?')) {
    const re = new RegExp(
      '^' +
        pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.') +
        '$',
    )
    return re.test(name)
  }
  return pattern === name
}

/** Parses known_hosts text; returns the keys matching host:port. Lines naming `@cert-authority` are ignored. */
export function parseKnownHosts(text: string, host: string, port: number): HostKey[] {
  const name = knownHostsName(host, port)
  const keys: HostKey[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith('@')) continue
    const [hosts, type, b64] = line.split(/\s+/)
    if (!hosts || !type || !b64) continue
    const patterns = hosts.split(',')
    const negated = patterns.some((p) => p.startsWith('!') && matchesPattern(p.slice(1), name))
    if (negated || !patterns.some((p) => matchesPattern(p, name))) continue
    const blob = Buffer.from(b64, 'base64')
    keys.push({ type, blob })
  }
  return keys
}

export class FileKnownHostsStore implements KnownHostsStore {
  #writing: Promise<void> = Promise.resolve()

  constructor(
    readonly path: string,
    private readonly options: { hashHostNames?: boolean } = {},
  ) {}

  async lookup(host: string, port: number): Promise<HostKey[]> {
    await this.#writing
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new Error(`known hosts file ${this.path}: cannot read: ${(e as Error).message}`)
    }
    return parseKnownHosts(text, host, port)
  }

  pin(host: string, port: number, key: HostKey): Promise<void> {
    let name = knownHostsName(host, port)
    if (this.options.hashHostNames) {
      const salt = randomBytes(20)
      name = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`
    }
    const line = `${name} ${key.type} ${key.blob.toString('base64')}\n`
    this.#writing = this.#writing.then(async () => {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 })
      await appendFile(this.path, line, { mode: 0o600 })
    })
    return this.#writing
  }
}

/** Pins held in memory (tests, or a caller that persists them itself). */
export class MemoryKnownHostsStore implements KnownHostsStore {
  readonly #keys = new Map<string, HostKey[]>()

  async lookup(host: string, port: number): Promise<HostKey[]> {
    return [...(this.#keys.get(knownHostsName(host, port)) ?? [])]
  }

  async pin(host: string, port: number, key: HostKey): Promise<void> {
    const name = knownHostsName(host, port)
    this.#keys.set(name, [...(this.#keys.get(name) ?? []), key])
  }
}

export class UnknownHostKeyError extends Error {
  constructor(
    readonly host: string,
    readonly presented: string,
  ) {
    super(
      `${host}: host key ${presented} is not pinned; refusing to connect. ` +
        `Verify the fingerprint out of band, then pin it (known hosts store) or connect once with trustOnFirstUse.`,
    )
    this.name = 'UnknownHostKeyError'
  }
}

export class HostKeyMismatchError extends Error {
  constructor(
    readonly host: string,
    readonly expected: string[],
    readonly presented: string,
  ) {
    super(
      `${host}: HOST KEY CHANGED — refusing to connect. Pinned: ${expected.join(', ')}; presented: ${presented}. ` +
        `If the host was really reinstalled, remove the old pin and verify the new fingerprint out of band.`,
    )
    this.name = 'HostKeyMismatchError'
  }
}
