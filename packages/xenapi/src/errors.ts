/**
 * Errors raised by the client. Three families, so callers can tell them apart with `instanceof`:
 *  - XenAPIError: XAPI answered with a failure (`[code, ...params]`), e.g. HANDLE_INVALID.
 *  - XapiTransportError (and XapiTimeoutError): the call never got an XAPI answer (socket, HTTP status, TLS,
 *    unparsable body, timeout).
 *  - plugin errors (PluginVersionMismatchError, PluginRetriesExceededError) built on top of the first two.
 * Every message and `params` array passes through the connection's Redactor, so a password never appears.
 */

/** The XAPI error codes callers most often branch on (see xapi-protocol.md §12). */
export const ErrorCode = {
  SESSION_INVALID: 'SESSION_INVALID',
  SESSION_AUTHENTICATION_FAILED: 'SESSION_AUTHENTICATION_FAILED',
  HOST_IS_SLAVE: 'HOST_IS_SLAVE',
  HANDLE_INVALID: 'HANDLE_INVALID',
  UUID_INVALID: 'UUID_INVALID',
  MESSAGE_METHOD_UNKNOWN: 'MESSAGE_METHOD_UNKNOWN',
  MESSAGE_PARAMETER_COUNT_MISMATCH: 'MESSAGE_PARAMETER_COUNT_MISMATCH',
  MESSAGE_REMOVED: 'MESSAGE_REMOVED',
  VM_BAD_POWER_STATE: 'VM_BAD_POWER_STATE',
  VM_IS_TEMPLATE: 'VM_IS_TEMPLATE',
  OPERATION_NOT_ALLOWED: 'OPERATION_NOT_ALLOWED',
  OTHER_OPERATION_IN_PROGRESS: 'OTHER_OPERATION_IN_PROGRESS',
  MAP_DUPLICATE_KEY: 'MAP_DUPLICATE_KEY',
  EVENTS_LOST: 'EVENTS_LOST',
  EVENT_FROM_TOKEN_PARSE_FAILURE: 'EVENT_FROM_TOKEN_PARSE_FAILURE',
  TASK_CANCELLED: 'TASK_CANCELLED',
  INTERNAL_ERROR: 'INTERNAL_ERROR',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  SR_FULL: 'SR_FULL',
  VDI_IN_USE: 'VDI_IN_USE',
  VDI_IO_ERROR: 'VDI_IO_ERROR',
  DEVICE_ALREADY_ATTACHED: 'DEVICE_ALREADY_ATTACHED',
  DEVICE_ALREADY_DETACHED: 'DEVICE_ALREADY_DETACHED',
  XENAPI_MISSING_PLUGIN: 'XENAPI_MISSING_PLUGIN',
  XENAPI_PLUGIN_FAILURE: 'XENAPI_PLUGIN_FAILURE',
  XENAPI_PLUGIN_EXCEPTION: 'XENAPI_PLUGIN_EXCEPTION',
  UNKNOWN_XENAPI_PLUGIN_FUNCTION: 'UNKNOWN_XENAPI_PLUGIN_FUNCTION',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** XAPI answered the call with a failure. */
export class XenAPIError extends Error {
  override readonly name = 'XenAPIError'
  constructor(
    /** XAPI's error code, e.g. `HANDLE_INVALID`. */
    readonly code: string,
    /** The error's parameters, as strings (secrets redacted). */
    readonly params: readonly string[],
    /** The wire method that failed, e.g. `VM.start` (or `task.result of Async.VM.start`). */
    readonly method: string,
    /** The pool address the call went to. */
    readonly url?: string,
  ) {
    super(`${method}: ${code}${params.length ? ` ${JSON.stringify(params)}` : ''}${url ? ` (from ${url})` : ''}`)
  }
}

/** The call did not get an XAPI answer: connection, TLS, HTTP status or unparsable body. */
export class XapiTransportError extends Error {
  override readonly name: string = 'XapiTransportError'
  constructor(
    message: string,
    readonly method: string,
    readonly url: string,
    /** Set when the server answered with an unexpected HTTP status. */
    readonly statusCode?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
  /** The underlying system error code (`ECONNRESET`, `ECONNREFUSED`, …) when there is one. */
  get errno(): string | undefined {
    let c: unknown = this.cause
    for (let i = 0; i < 4 && c; i++) {
      const code = (c as { code?: unknown }).code
      if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
      c = (c as { cause?: unknown }).cause
    }
    return undefined
  }
}

/** The call took longer than its timeout; the request was aborted. */
export class XapiTimeoutError extends XapiTransportError {
  override readonly name = 'XapiTimeoutError'
  constructor(
    method: string,
    url: string,
    readonly timeoutMs: number,
  ) {
    super(`${method}: no answer from ${url} within ${timeoutMs} ms (call timeout)`, method, url)
  }
}

/** `checkPluginVersion` found an incompatible or unreadable plugin version. */
export class PluginVersionMismatchError extends Error {
  override readonly name = 'PluginVersionMismatchError'
  constructor(
    readonly plugin: string,
    readonly host: string,
    readonly required: string,
    readonly found: string,
  ) {
    super(
      `plugin ${plugin} on host ${host}: version ${JSON.stringify(found)} is not compatible with ${required} ` +
        `(expected the same major version and a minor version >= ${required.split('.')[1] ?? '0'})`,
    )
  }
}

/** `callPluginWithRetry` ran out of attempts on a retryable plugin failure. */
export class PluginRetriesExceededError extends Error {
  override readonly name = 'PluginRetriesExceededError'
  constructor(
    readonly plugin: string,
    readonly fn: string,
    readonly attempts: number,
    options: { cause: unknown },
  ) {
    super(`plugin ${plugin} function ${fn}: still failing after ${attempts} attempts`, options)
  }
}

/** Methods whose positional parameters carry secrets: index (after session_id is stripped) → redacted. */
const SECRET_POSITIONS: Record<string, number[]> = {
  'session.login_with_password': [1],
  'session.slave_local_login_with_password': [1],
  'session.change_password': [0, 1],
  'pool.join': [2],
  'pool.join_force': [2],
  'host.call_plugin': [],
}

export const REDACTED = '******'

/**
 * Keeps the secrets a connection knows (its password) and removes them from anything that may be logged or thrown:
 * known password positions, any map key containing "password", and any string containing a known secret.
 */
export class Redactor {
  // ES private: never shown by util.inspect or JSON.stringify of an object holding the redactor.
  readonly #secrets = new Set<string>()

  add(secret: string | undefined): void {
    if (secret && secret.length >= 1) this.#secrets.add(secret)
  }

  /** Replaces every occurrence of a known secret in a string. */
  text(s: string): string {
    let out = s
    for (const secret of this.#secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED)
    return out
  }

  /** Parameters of `method` (without the session) made safe to log. */
  params(method: string, params: readonly unknown[]): unknown[] {
    const bare = method.startsWith('Async.') ? method.slice(6) : method
    const positions = SECRET_POSITIONS[bare] ?? []
    return params.map((p, i) => (positions.includes(i) ? REDACTED : this.value(p)))
  }

  value(v: unknown, depth = 0): unknown {
    if (typeof v === 'string') return this.text(v)
    if (depth > 8 || v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return v.map((x) => this.value(x, depth + 1))
    if (v instanceof Date) return v
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) out[k] = /password|secret/i.test(k) ? REDACTED : this.value(x, depth + 1)
    return out
  }

  error(e: unknown): unknown {
    if (e instanceof Error && this.#secrets.size) {
      const m = this.text(e.message)
      if (m !== e.message) Object.defineProperty(e, 'message', { value: m, configurable: true, writable: true })
      if (e.stack) Object.defineProperty(e, 'stack', { value: this.text(e.stack), configurable: true, writable: true })
    }
    return e
  }
}

/** Where the client writes its warnings and debug lines. Every line is redacted before it gets here. */
export interface Logger {
  debug?(msg: string): void
  warn(msg: string): void
}

export const defaultLogger: Logger = {
  warn: (msg) => process.stderr.write(`[xenapi] warning: ${msg}\n`),
}
