/**
 * The REST client: every call carries the API token kept in sessionStorage (gone when the tab closes), and a
 * failed call throws an ApiError with the server's message, the field it names and every problem it lists, so
 * pages can put messages on the right fields.
 */
const TOKEN_KEY = 'xenstack.token'

export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY)
export const setToken = (t: string): void => sessionStorage.setItem(TOKEN_KEY, t)
export const clearToken = (): void => sessionStorage.removeItem(TOKEN_KEY)

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly problems: unknown[] = [],
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

/** Listeners told when the server answers 401 (the token was revoked or replaced): the app shows the login. */
const unauthorized = new Set<() => void>()
export const onUnauthorized = (fn: () => void): (() => void) => {
  unauthorized.add(fn)
  return () => unauthorized.delete(fn)
}

export async function api<T = any>(
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string; raw?: Blob | ArrayBuffer; contentType?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? getToken() ?? ''}` }
  let payload: BodyInit | undefined
  if (opts.raw !== undefined) {
    payload = opts.raw
    headers['content-type'] = opts.contentType ?? 'application/octet-stream'
  } else if (body !== undefined) {
    payload = JSON.stringify(body)
    headers['content-type'] = 'application/json'
  }
  const url = path.startsWith('/api/') ? path : `/api/v1${path}`
  const res = await fetch(url, { method, headers, body: payload })
  const text = await res.text()
  const data = text ? safeJson(text) : undefined
  if (!res.ok) {
    if (res.status === 401) for (const fn of unauthorized) fn()
    const d = (data ?? {}) as { message?: string; field?: string; problems?: unknown[] }
    throw new ApiError(res.status, d.message ?? `${method} ${url}: HTTP ${res.status}`, d.field, d.problems ?? [])
  }
  return data as T
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return { message: text }
  }
}

/** An EventSource on an API stream (EventSource sends no headers: the token goes in the query). */
export function eventStream(path: string): EventSource {
  const sep = path.includes('?') ? '&' : '?'
  return new EventSource(`/api/v1${path}${sep}access_token=${encodeURIComponent(getToken() ?? '')}`)
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))
