/**
 * The HTTP layer for XAPI's HTTP handlers (disk import/export, XVA transfer): one undici Pool (keep-alive sockets)
 * per pool-master origin, with XAPI's TLS choices — system CAs (default), a custom CA, a pinned SHA-256 certificate
 * fingerprint, or `insecure: true` (warned once). RPC calls go through http1.ts, which makes the same TLS choices.
 */
import type { TLSSocket } from 'node:tls'
import { Pool, buildConnector } from 'undici'
import type { Logger } from './errors.js'

export interface TlsOptions {
  /** PEM CA certificate(s) to trust instead of the system store. */
  ca?: string | Buffer | (string | Buffer)[]
  /**
   * Pin the server certificate by its SHA-256 fingerprint (hex, with or without colons, any case; an optional
   * `sha256/` prefix). When set, the CA chain is not consulted: only that certificate is accepted.
   */
  fingerprint?: string
  /** Skip certificate verification entirely. Logged as a warning once per origin. */
  insecure?: boolean
}

export interface HttpOptions {
  tls?: TlsOptions
  /** Idle keep-alive sockets are closed after this many ms (default 30 s). */
  keepAliveTimeout?: number
  /** Upper bound on sockets to one host (default: unlimited; the session layer bounds calls in flight). */
  connections?: number | null
}

const warnedInsecure = new Set<string>()

/** `insecure: true` is said out loud, once per host for the life of the process. */
export function warnInsecureOnce(host: string, logger: Logger): void {
  if (warnedInsecure.has(host)) return
  warnedInsecure.add(host)
  logger.warn(`TLS certificate verification is DISABLED for ${host} (insecure: true)`)
}

export function normaliseFingerprint(fp: string): string {
  return fp
    .replace(/^sha256[/:]/i, '')
    .replace(/[^0-9a-f]/gi, '')
    .toLowerCase()
}

/** Thrown (as a socket error) when a pinned fingerprint does not match the certificate the server presented. */
export class CertificatePinError extends Error {
  override readonly name = 'CertificatePinError'
  readonly code = 'ERR_XENAPI_CERT_PIN_MISMATCH'
  constructor(
    readonly host: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`TLS certificate of ${host} has SHA-256 fingerprint ${actual}, expected the pinned ${expected}`)
  }
}

/**
 * The TLS choice for one https origin, made the same way for both HTTP stacks: the node:tls options, and the
 * normalised pin when the certificate is pinned (the pin replaces the CA chain, so the chain is not verified).
 */
export interface TlsChoice {
  options: { rejectUnauthorized: boolean; ca?: TlsOptions['ca'] }
  pin?: string
}

export function tlsChoice(host: string, tls: TlsOptions, logger: Logger): TlsChoice {
  if (tls.fingerprint) {
    const pin = normaliseFingerprint(tls.fingerprint)
    if (pin.length !== 64) {
      throw new Error(`tls.fingerprint: expected a SHA-256 fingerprint (64 hex digits), got ${tls.fingerprint}`)
    }
    return { options: { rejectUnauthorized: false }, pin }
  }
  if (tls.insecure) {
    warnInsecureOnce(host, logger)
    return { options: { rejectUnauthorized: false } }
  }
  return { options: tls.ca ? { ca: tls.ca, rejectUnauthorized: true } : { rejectUnauthorized: true } }
}

/** The error for a peer whose certificate is not the pinned one; undefined when it is. */
export function pinMismatch(host: string, pin: string, socket: TLSSocket): CertificatePinError | undefined {
  const actual = normaliseFingerprint(socket.getPeerCertificate?.()?.fingerprint256 ?? '')
  return actual === pin ? undefined : new CertificatePinError(host, pin, actual || '(none)')
}

/** Builds the undici Pool for one origin (`http://host:port` or `https://…`). */
export function createPool(origin: string, options: HttpOptions, logger: Logger): Pool {
  const url = new URL(origin)
  let connect: buildConnector.connector | buildConnector.BuildOptions | undefined
  if (url.protocol === 'https:') {
    const { options: tlsOptions, pin } = tlsChoice(url.host, options.tls ?? {}, logger)
    if (pin !== undefined) {
      // No TLS session resumption: a resumed session presents no certificate to check.
      const base = buildConnector({ ...tlsOptions, maxCachedSessions: 0 })
      connect = (opts, callback) => {
        base(opts, (err, socket) => {
          if (err || !socket) return callback(err ?? new Error('TLS connect failed'), null)
          const mismatch = pinMismatch(url.host, pin, socket as TLSSocket)
          if (mismatch) {
            socket.destroy()
            return callback(mismatch, null)
          }
          callback(null, socket)
        })
      }
    } else {
      connect = tlsOptions
    }
  }
  return new Pool(url.origin, {
    connections: options.connections ?? null,
    pipelining: 1,
    keepAliveTimeout: options.keepAliveTimeout ?? 30_000,
    ...(connect ? { connect } : {}),
  })
}

/** Replaces the host of a URL, keeping scheme and port (used for HOST_IS_SLAVE). IPv6 literals get brackets. */
export function swapHost(url: string, host: string): string {
  const u = new URL(url)
  u.hostname = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return u.origin
}
