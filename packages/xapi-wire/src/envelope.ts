/** XAPI's XML-RPC result envelope (§3.1). */
export type Envelope<T = unknown> = { Status: 'Success'; Value: T } | { Status: 'Failure'; ErrorDescription: string[] }

export class EnvelopeError extends Error {
  override name = 'EnvelopeError'
}

export function success<T>(value: T): Envelope<T> {
  return { Status: 'Success', Value: value }
}

/** A failure envelope; every element of ErrorDescription is a string, as XAPI sends it. */
export function failure(code: string, ...params: unknown[]): Envelope<never> {
  return { Status: 'Failure', ErrorDescription: [code, ...params.map((p) => String(p))] }
}

/** Unwraps an envelope decoded from the wire; throws EnvelopeError for anything that is not one. */
export function unwrapEnvelope(
  value: unknown,
): { ok: true; value: unknown } | { ok: false; errorDescription: string[] } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new EnvelopeError(
      `expected a {Status, Value} struct from XAPI, got ${Array.isArray(value) ? 'an array' : typeof value}`,
    )
  }
  const e = value as Record<string, unknown>
  if (e.Status === 'Success') {
    if (!('Value' in e)) throw new EnvelopeError('a Success envelope without a Value member')
    return { ok: true, value: e.Value }
  }
  if (e.Status === 'Failure') {
    const d = e.ErrorDescription
    if (!Array.isArray(d)) throw new EnvelopeError('a Failure envelope without an ErrorDescription array')
    return { ok: false, errorDescription: d.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))) }
  }
  throw new EnvelopeError(`expected Status "Success" or "Failure" in a XAPI envelope, got ${JSON.stringify(e.Status)}`)
}
