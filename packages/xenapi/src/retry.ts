/**
 * What the session layer retries, and the counters it keeps of it.
 *
 * XAPI pools fail in a few recognisable ways: a session that expired (SESSION_INVALID), a master that moved
 * (HOST_IS_SLAVE), a connection reset or refused, an HTTP 5xx page instead of an answer, and calls that are merely
 * slow. The first two are answered by XAPI and handled by logging in again / following the master. The transport
 * failures are retried with a short exponential backoff — but only when repeating the call cannot do something twice:
 *
 *  - `refused` (ECONNREFUSED): the request never reached the server; every call is retried — once the pool has
 *    answered this client (before that, a refusal means a wrong address or a host that is down, and fails at once).
 *  - `http5xx` (HTTP 500 or 503 without XAPI's envelope): XAPI answers a call it dispatched inside the envelope, even
 *    a failure, so a bare 500/503 page means the call was not run; every call is retried.
 *  - `reset` (ECONNRESET, EPIPE, the server closing the socket, or a 502/504 from a proxy): the request was sent and
 *    may have run. Only calls that are safe to repeat are retried — reads (`*.get_*`), logins, logouts, events, and
 *    calls the caller marks `idempotent` (a plugin that only reads). Any other call fails with
 *    XapiCallOutcomeUnknownError, and the caller (a deployment task that checks before it acts) decides.
 *
 * Timeouts are not retried: a call that took longer than its timeout may still be running on the server.
 */
import { XapiTimeoutError, XapiTransportError } from './errors.js'

export const RETRY_KINDS = ['SESSION_INVALID', 'HOST_IS_SLAVE', 'reset', 'http5xx', 'refused'] as const
export type RetryKind = (typeof RETRY_KINDS)[number]

export interface RetryOptions {
  /** Logins again per call after SESSION_INVALID (default 3). */
  sessionRetries?: number
  /** Retries per call after a transport failure it is safe to retry (default 4). */
  transportRetries?: number
  /** First backoff delay in ms, doubled per retry up to 2 s (default 100). */
  backoffMs?: number
  /** A call slower than this (ms) is counted in `slowCalls` (default 1 500). */
  slowCallMs?: number
}

/** How often each kind of failure was retried, plus how many calls were slow (what a reliability report prints). */
export interface RetryStats {
  retries: Record<RetryKind, number>
  /** Calls that failed after retrying, or could not be retried, by kind. */
  gaveUp: Record<RetryKind, number>
  slowCalls: number
}

export function emptyRetryStats(): RetryStats {
  const zero = () => Object.fromEntries(RETRY_KINDS.map((k) => [k, 0])) as Record<RetryKind, number>
  return { retries: zero(), gaveUp: zero(), slowCalls: 0 }
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])
// A socket the server closed before the whole answer: the RPC pool's own code (http1.ts) and undici's (streaming)
const CLOSED_CODES = new Set(['ERR_XENAPI_SOCKET_CLOSED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])

function codesOf(e: unknown): string[] {
  const out: string[] = []
  let c: unknown = e
  for (let i = 0; i < 5 && c; i++) {
    const code = (c as { code?: unknown }).code
    if (typeof code === 'string') out.push(code)
    c = (c as { cause?: unknown }).cause
  }
  return out
}

/** The transport failure kind of an error the transport threw; undefined when it is not one to retry. */
export function transportFailureKind(e: unknown): 'reset' | 'http5xx' | 'refused' | undefined {
  if (!(e instanceof XapiTransportError) || e instanceof XapiTimeoutError) return undefined
  if (e.statusCode !== undefined) {
    if (e.statusCode === 500 || e.statusCode === 503) return 'http5xx'
    if (e.statusCode === 502 || e.statusCode === 504) return 'reset'
    return undefined
  }
  const codes = codesOf(e.cause)
  if (codes.includes('ECONNREFUSED')) return 'refused'
  if (codes.some((c) => RESET_CODES.has(c) || CLOSED_CODES.has(c))) return 'reset'
  return undefined
}

const REPEATABLE_METHODS = new Set([
  'session.login_with_password',
  'session.slave_local_login_with_password',
  'session.logout',
  'session.local_logout',
  'event.from',
  'event.next',
  'event.register',
  'event.unregister',
])

/** True when running `method` twice has the effect of running it once (reads, logins, events). */
export function isRepeatable(method: string): boolean {
  const bare = method.startsWith('Async.') ? method.slice(6) : method
  if (REPEATABLE_METHODS.has(bare) || bare.startsWith('system.')) return true
  const name = bare.slice(bare.lastIndexOf('.') + 1)
  return name.startsWith('get_')
}

/** Delay before retry number `n` (1-based): base, 2×base, 4×base … capped at 2 s, with ±25 % jitter. */
export function backoffDelay(n: number, baseMs: number): number {
  const d = Math.min(baseMs * 2 ** (n - 1), 2_000)
  return Math.round(d * (0.75 + Math.random() * 0.5))
}

/** The call was sent, the connection failed before the answer, and the call is not safe to repeat. */
export class XapiCallOutcomeUnknownError extends XapiTransportError {
  override readonly name = 'XapiCallOutcomeUnknownError'
  constructor(method: string, url: string, cause: unknown) {
    super(
      `${method}: the connection to ${url} failed after the call was sent (${(cause as Error)?.message ?? String(cause)}); ` +
        `the call may or may not have run on the pool, so it was not repeated (it changes state): read the state ` +
        `back before trying again`,
      method,
      url,
      undefined,
      { cause },
    )
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(t)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
