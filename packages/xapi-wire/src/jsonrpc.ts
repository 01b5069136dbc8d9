export type JsonRpcVersion = '1.0' | '2.0'

export interface JsonRpcRequest {
  version: JsonRpcVersion
  method: string
  params: unknown[]
  id: string | number
}

/**
 * Parses a JSON-RPC request body as XAPI does (§3.2): no `jsonrpc` key → 1.0 with array params; "2.0" → params
 * absent/null/array, an object taken as one struct parameter; id must be an integer or a string (a missing or
 * null id throws JsonRpcRequestError — XAPI answers it with HTTP 500).
 */
export declare function parseJsonRpcRequest(body: string | Buffer): JsonRpcRequest
export declare function encodeJsonRpcRequest(
  method: string,
  params: unknown[],
  id: string | number,
  version?: JsonRpcVersion,
): string
export declare function encodeJsonRpcSuccess(version: JsonRpcVersion, id: string | number, result: unknown): string
/** 1.0: {result: null, error: [code, ...params], id}; 2.0: {jsonrpc, error: {code: 1, message: code, data: params}, id}. */
export declare function encodeJsonRpcFailure(
  version: JsonRpcVersion,
  id: string | number,
  errorDescription: string[],
): string

export type JsonRpcOutcome = { ok: true; result: unknown } | { ok: false; errorDescription: string[] }
/** Parses a response of either version into success or XAPI's [code, ...params]. */
export declare function decodeJsonRpcResponse(body: string | Buffer): JsonRpcOutcome

export declare class JsonRpcRequestError extends Error {}
