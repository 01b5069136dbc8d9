/** JSON-RPC 1.0/2.0 as XAPI serves it on /jsonrpc (§3.2). */
import type { XapiType } from './types.js'
import { toJsonWire } from './convert.js'
import { decodeUtf8 } from './utf8.js'

export type JsonRpcVersion = '1.0' | '2.0'

export interface JsonRpcRequest {
  version: JsonRpcVersion
  method: string
  params: unknown[]
  id: string | number
}

/** A request XAPI refuses (HTTP 500, `Malformed_method_request`). */
export class JsonRpcRequestError extends Error {
  override name = 'JsonRpcRequestError'
}
/** A response that is neither JSON-RPC 1.0 nor 2.0. */
export class JsonRpcResponseError extends Error {
  override name = 'JsonRpcResponseError'
}

function parseJson(body: string | Buffer, what: string, E: new (m: string) => Error): unknown {
  const text = decodeUtf8(body, `JSON-RPC ${what}`)
  try {
    return JSON.parse(text)
  } catch (e) {
    throw new E(`malformed JSON-RPC ${what}: ${(e as Error).message}`)
  }
}

/**
 * Parses a JSON-RPC request body as XAPI does (§3.2): no `jsonrpc` key → 1.0 with array params; "2.0" → params
 * absent/null/array, an object taken as one struct parameter; id must be an integer or a string (a missing or
 * null id throws JsonRpcRequestError — XAPI answers it with HTTP 500).
 */
export function parseJsonRpcRequest(body: string | Buffer): JsonRpcRequest {
  const req = parseJson(body, 'request', JsonRpcRequestError)
  if (req === null || typeof req !== 'object' || Array.isArray(req)) {
    throw new JsonRpcRequestError('JSON-RPC request: expected an object {method, params, id}')
  }
  const r = req as Record<string, unknown>
  let version: JsonRpcVersion
  if (!('jsonrpc' in r) || r.jsonrpc === '1.0') version = '1.0'
  else if (r.jsonrpc === '2.0') version = '2.0'
  else throw new JsonRpcRequestError(`JSON-RPC request: "jsonrpc" is ${JSON.stringify(r.jsonrpc)}, expected "2.0"`)
  if (typeof r.method !== 'string' || r.method === '') {
    throw new JsonRpcRequestError('JSON-RPC request: "method" must be a non-empty string')
  }
  let params: unknown[]
  if (version === '1.0') {
    if (!Array.isArray(r.params)) throw new JsonRpcRequestError('JSON-RPC 1.0 request: "params" must be an array')
    params = r.params
  } else if (r.params === undefined || r.params === null) params = []
  else if (Array.isArray(r.params)) params = r.params
  else if (typeof r.params === 'object') params = [r.params]
  else throw new JsonRpcRequestError('JSON-RPC 2.0 request: "params" must be an array, an object or null')
  const id = r.id
  if (id === undefined || id === null) {
    throw new JsonRpcRequestError('JSON-RPC request without an "id" (notifications are not supported)')
  }
  if (!(typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)))) {
    throw new JsonRpcRequestError(`JSON-RPC request: "id" must be an integer or a string, got ${JSON.stringify(id)}`)
  }
  return { version, method: r.method, params, id }
}

export function encodeJsonRpcRequest(
  method: string,
  params: unknown[],
  id: string | number,
  version: JsonRpcVersion = '2.0',
): string {
  const p = toJsonWire(params)
  return version === '2.0'
    ? JSON.stringify({ jsonrpc: '2.0', method, params: p, id })
    : JSON.stringify({ method, params: p, id })
}

/** A success reply; the result is converted for the wire (Dates, bigints; options when typed). */
export function encodeJsonRpcSuccess(
  version: JsonRpcVersion,
  id: string | number,
  result: unknown,
  type?: XapiType,
): string {
  const r = toJsonWire(result, type)
  return version === '2.0'
    ? JSON.stringify({ jsonrpc: '2.0', result: r, id })
    : JSON.stringify({ result: r, error: null, id })
}

/** 1.0: {result: null, error: [code, ...params], id}; 2.0: {jsonrpc, error: {code: 1, message: code, data: params}, id}. */
export function encodeJsonRpcFailure(
  version: JsonRpcVersion,
  id: string | number,
  errorDescription: readonly unknown[],
): string {
  const d = errorDescription.map((x) => String(x))
  return version === '2.0'
    ? JSON.stringify({ jsonrpc: '2.0', error: { code: 1, message: d[0] ?? '', data: d.slice(1) }, id })
    : JSON.stringify({ result: null, error: d, id })
}

export type JsonRpcOutcome =
  { ok: true; result: unknown; id?: string | number } | { ok: false; errorDescription: string[]; id?: string | number }

/** Parses a response of either version into success or XAPI's [code, ...params]. */
export function decodeJsonRpcResponse(body: string | Buffer): JsonRpcOutcome {
  const res = parseJson(body, 'response', JsonRpcResponseError)
  if (res === null || typeof res !== 'object' || Array.isArray(res)) {
    throw new JsonRpcResponseError('JSON-RPC response: expected an object with "result" or "error"')
  }
  const r = res as Record<string, unknown>
  const id = typeof r.id === 'string' || typeof r.id === 'number' ? r.id : undefined
  const err = r.error
  if (err !== undefined && err !== null) {
    if (Array.isArray(err)) return { ok: false, errorDescription: err.map(str), id }
    if (typeof err === 'object') {
      const e = err as Record<string, unknown>
      const data = Array.isArray(e.data)
        ? e.data.map(str)
        : e.data === undefined || e.data === null
          ? []
          : [str(e.data)]
      return { ok: false, errorDescription: [str(e.message ?? e.code), ...data], id }
    }
    return { ok: false, errorDescription: [str(err)], id }
  }
  if (!('result' in r)) throw new JsonRpcResponseError('JSON-RPC response without "result" or "error"')
  return { ok: true, result: r.result, id }
}

function str(x: unknown): string {
  return typeof x === 'string' ? x : JSON.stringify(x)
}
