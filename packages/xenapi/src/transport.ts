/**
 * Transports: one XenAPI call = one HTTP POST. JSON-RPC 2.0 on `/jsonrpc`, XML-RPC on `/`, and `auto`, which tries
 * JSON-RPC and falls back to XML-RPC once for good (the way xen-api does, but only on a clear "not JSON-RPC here"
 * answer: 404/405, 500 with an HTML body, or a non-JSON content type).
 * A transport returns the raw decoded result (ints may still be strings over XML-RPC); the session layer converts
 * it by the datamodel's result type. XAPI failures become XenAPIError, everything else XapiTransportError.
 */
import {
  XmlRpcFault,
  decodeJsonRpcResponse,
  decodeMethodResponse,
  encodeMethodCall,
  toJsonWire,
  unwrapEnvelope,
  type XapiType,
} from '@xenstack/xapi-wire'
import { XapiTimeoutError, XapiTransportError, XenAPIError } from './errors.js'
import { Http1TimeoutError, type Http1Answer, type Http1Pool } from './http1.js'

export type TransportKind = 'json-rpc' | 'xml-rpc'
export type TransportOption = TransportKind | 'auto'

export interface RpcRequest {
  /** Wire method name, e.g. `VM.get_record` or `Async.VM.start`. */
  method: string
  /** All parameters, the session ref first when the method takes one. */
  params: unknown[]
  /** Wire types of the parameters when known (lets XML-RPC encode 64-bit ints and datetimes exactly). */
  paramTypes?: (XapiType | undefined)[]
  /** Milliseconds before the request is aborted with XapiTimeoutError. */
  timeout: number
  signal?: AbortSignal
}

export interface Transport {
  readonly kind: TransportKind
  readonly url: string
  call(req: RpcRequest): Promise<unknown>
}

/** The server does not speak this transport (used by `auto` to fall back). */
export class UnsupportedTransportError extends XapiTransportError {
  override readonly name = 'UnsupportedTransportError'
}

const JSON_TYPE = 'application/json'
const XML_TYPE = 'text/xml'

/** POSTs a body within the call's deadline and signal; maps connection failures to transport errors. */
async function post(pool: Http1Pool, url: string, path: string, body: string, type: string, req: RpcRequest) {
  try {
    return await pool.post(path, type, body, req.timeout, req.signal)
  } catch (e) {
    if (e instanceof Http1TimeoutError) throw new XapiTimeoutError(req.method, url, req.timeout)
    if (req.signal?.aborted) throw e
    throw new XapiTransportError(
      `${req.method}: request to ${url}${path} failed: ${(e as Error).message}`,
      req.method,
      url,
      undefined,
      { cause: e },
    )
  }
}

/** JSON-RPC params: the caller's array as it is when every value is already JSON (the usual strings and numbers). */
function jsonParams(params: unknown[], types: (XapiType | undefined)[] | undefined): unknown[] {
  let out: unknown[] | undefined
  for (let i = 0; i < params.length; i++) {
    const p = params[i]
    const t = types?.[i]
    const plain = t?.kind !== 'option' && (typeof p === 'string' || typeof p === 'number' || typeof p === 'boolean')
    const w = plain ? p : toJsonWire(p, t)
    if (w !== p && out === undefined) out = params.slice(0, i)
    if (out !== undefined) out.push(w)
  }
  return out ?? params
}

function statusError(a: Http1Answer, req: RpcRequest, url: string, path: string, Cls = XapiTransportError): Error {
  const snippet = a.body.slice(0, 200).replace(/\s+/g, ' ')
  return new Cls(
    `${req.method}: ${url}${path} answered HTTP ${a.status} (${a.contentType || 'no content type'}): ${snippet}`,
    req.method,
    url,
    a.status,
  )
}

export class JsonRpcTransport implements Transport {
  readonly kind = 'json-rpc'
  private nextId = 0
  constructor(
    private readonly pool: Http1Pool,
    readonly url: string,
  ) {}

  async call(req: RpcRequest): Promise<unknown> {
    const id = ++this.nextId
    const params = jsonParams(req.params, req.paramTypes)
    const body = JSON.stringify({ jsonrpc: '2.0', method: req.method, params, id })
    const a = await post(this.pool, this.url, '/jsonrpc', body, JSON_TYPE, req)
    const isJson = a.contentType.startsWith('application/json') || /^application\/json\b/i.test(a.contentType)
    if (a.status !== 200 || !isJson) {
      // 404/405: no handler; a non-JSON body: something else (an old XAPI or a proxy) answered.
      const unsupported = a.status === 404 || a.status === 405 || !isJson
      throw statusError(a, req, this.url, '/jsonrpc', unsupported ? UnsupportedTransportError : XapiTransportError)
    }
    let outcome
    try {
      outcome = decodeJsonRpcResponse(a.body)
    } catch (e) {
      throw new XapiTransportError(
        `${req.method}: unparsable JSON-RPC answer from ${this.url}/jsonrpc: ${(e as Error).message}`,
        req.method,
        this.url,
        a.status,
        { cause: e },
      )
    }
    if (outcome.ok) return outcome.result
    const [code = 'UNKNOWN_ERROR', ...rest] = outcome.errorDescription
    throw new XenAPIError(String(code), rest.map(String), req.method, this.url)
  }
}

export class XmlRpcTransport implements Transport {
  readonly kind = 'xml-rpc'
  constructor(
    private readonly pool: Http1Pool,
    readonly url: string,
  ) {}

  async call(req: RpcRequest): Promise<unknown> {
    const body = encodeMethodCall(req.method, req.params, req.paramTypes)
    const a = await post(this.pool, this.url, '/', body, XML_TYPE, req)
    if (a.status !== 200) throw statusError(a, req, this.url, '/')
    let value
    try {
      value = decodeMethodResponse(a.body)
    } catch (e) {
      if (e instanceof XmlRpcFault) {
        throw new XenAPIError('XMLRPC_FAULT', [String(e.faultCode), e.faultString], req.method, this.url)
      }
      throw new XapiTransportError(
        `${req.method}: unparsable XML-RPC answer from ${this.url}/: ${(e as Error).message}`,
        req.method,
        this.url,
        a.status,
        { cause: e },
      )
    }
    // system.listMethods answers without the {Status, Value} envelope.
    if (!isEnvelope(value)) return value
    const outcome = unwrapEnvelope(value)
    if (outcome.ok) return outcome.value
    const [code = 'UNKNOWN_ERROR', ...rest] = outcome.errorDescription
    throw new XenAPIError(String(code), rest.map(String), req.method, this.url)
  }
}

function isEnvelope(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && 'Status' in v
}

/**
 * JSON-RPC first; on UnsupportedTransportError switch to XML-RPC for good and replay the call once. Once JSON-RPC has
 * answered (a result or a XAPI error), the server speaks it: a later 404/500 page is a passing fault of that server
 * (retried by the session layer), never a reason to change transports.
 */
export class AutoTransport implements Transport {
  private current: Transport
  private fellBack = false
  private jsonAnswered = false
  constructor(
    private readonly json: Transport,
    private readonly xml: Transport,
    private readonly onFallback?: (reason: string) => void,
  ) {
    this.current = json
  }
  get kind(): TransportKind {
    return this.current.kind
  }
  get url(): string {
    return this.current.url
  }
  async call(req: RpcRequest): Promise<unknown> {
    try {
      const r = await this.current.call(req)
      if (!this.fellBack) this.jsonAnswered = true
      return r
    } catch (e) {
      if (e instanceof XenAPIError && !this.fellBack) this.jsonAnswered = true
      if (this.fellBack || this.jsonAnswered || !(e instanceof UnsupportedTransportError)) throw e
      this.fellBack = true
      this.current = this.xml
      this.onFallback?.(e.message)
      return this.current.call(req)
    }
  }
}

export function createTransport(
  kind: TransportOption,
  pool: Http1Pool,
  url: string,
  onFallback?: (reason: string) => void,
): Transport {
  if (kind === 'json-rpc') return new JsonRpcTransport(pool, url)
  if (kind === 'xml-rpc') return new XmlRpcTransport(pool, url)
  return new AutoTransport(new JsonRpcTransport(pool, url), new XmlRpcTransport(pool, url), onFallback)
}
