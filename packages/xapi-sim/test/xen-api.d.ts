// Xen Orchestra's xen-api (4.7.6) ships JavaScript only; the little of its surface the conformance tests use.
declare module 'xen-api' {
  import type { EventEmitter } from 'node:events'
  interface XapiObject {
    $type: string
    $ref: string
    $id: string
    [field: string]: unknown
  }
  interface Collection extends EventEmitter {
    all: Record<string, XapiObject>
  }
  export interface XapiError extends Error {
    code: string
    params: string[]
  }
  export class Xapi extends EventEmitter {
    status: string
    pool: XapiObject
    sessionId: string
    objects: Collection
    objectsFetched: Promise<void>
    _url: { hostname: string; port: string; protocol: string }
    connect(): Promise<void>
    disconnect(): Promise<void>
    call(method: string, ...args: unknown[]): Promise<any>
    callAsync(method: string, ...args: unknown[]): Promise<any>
    barrier(ref?: string): Promise<XapiObject>
    getObject(idOrUuidOrRef: string, defaultValue?: unknown): XapiObject
    getRecord(type: string, ref: string): Promise<any>
    putResource(
      body: unknown,
      path: string,
      opts?: { host?: unknown; query?: Record<string, string>; task?: unknown },
    ): Promise<any>
    getResource(
      path: string,
      opts?: { host?: unknown; query?: Record<string, string>; task?: unknown },
    ): Promise<{
      statusCode: number
      headers: Record<string, string>
      body: NodeJS.ReadableStream
      task?: Promise<unknown>
    }>
  }
  export function createClient(opts: Record<string, unknown>): Xapi
}
