/** XAPI's XML-RPC result envelope (§3.1). */
export type Envelope<T = unknown> = { Status: 'Success'; Value: T } | { Status: 'Failure'; ErrorDescription: string[] }

export declare function success<T>(value: T): Envelope<T>
export declare function failure(code: string, ...params: unknown[]): Envelope<never>
/** Unwraps an envelope decoded from the wire; throws EnvelopeError for anything that is not one. */
export declare function unwrapEnvelope(
  value: unknown,
): { ok: true; value: unknown } | { ok: false; errorDescription: string[] }
