/** An API error as XAPI reports it: a code and string parameters (`ErrorDescription = [code, ...params]`). */
export class XapiError extends Error {
  readonly code: string
  readonly params: string[]
  constructor(code: string, ...params: unknown[]) {
    const ps = params.map((p) => (typeof p === 'string' ? p : p === undefined ? '' : String(p)))
    super(`${code}(${ps.join(', ')})`)
    this.name = 'XapiError'
    this.code = code
    this.params = ps
  }
  /** `[code, ...params]`, every element a string. */
  get errorDescription(): string[] {
    return [this.code, ...this.params]
  }
}

/** Maps anything thrown inside a handler to XAPI's error vector (§4.5: anything else is INTERNAL_ERROR). */
export function toErrorDescription(e: unknown): string[] {
  if (e instanceof XapiError) return e.errorDescription
  const msg = e instanceof Error ? e.message : String(e)
  return ['INTERNAL_ERROR', msg]
}
