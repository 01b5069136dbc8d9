/**
 * Disk streaming over XAPI's HTTP handlers (xapi-protocol.md §1.1, §1.2): `PUT /import_raw_vdi` and
 * `GET /export_raw_vdi`, authenticated with `session_id` and linked to a task created with `task.create`, whose
 * outcome is the transfer's outcome. Data flows through streams with backpressure (constant memory).
 *
 * Redirects: XAPI may answer 302 with another pool member. A stream cannot be replayed, so an import first sends an
 * empty PUT without `task_id` (as xen-api does; servers answer it harmlessly) to learn the final location; an
 * export simply follows the 302.
 */
import { stat } from 'node:fs/promises'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Dispatcher, Pool } from 'undici'
import { XapiTransportError, XenAPIError } from './errors.js'
import { createPool } from './http.js'
import { waitTask } from './tasks.js'
import type { XapiCore } from './client.js'

export type DiskFormat = 'raw' | 'vhd'

export interface ImportVdiOptions {
  format?: DiskFormat
  /** Byte length of the stream when it cannot be found out (required for `vhd` streams of unknown length). */
  size?: number
  /** Called as bytes are sent. */
  onProgress?: (sentBytes: number, totalBytes: number | undefined) => void
  signal?: AbortSignal
  /** Timeout for the whole transfer in ms (default: none). */
  timeout?: number
}

export interface ExportVdiOptions {
  format?: DiskFormat
  signal?: AbortSignal
}

const MAX_REDIRECTS = 5

async function lengthOf(body: Readable | Buffer | Uint8Array, size?: number): Promise<number | undefined> {
  if (size !== undefined) return size
  if (body instanceof Uint8Array) return body.byteLength
  const path = (body as Readable & { path?: unknown }).path
  if (typeof path === 'string') {
    try {
      return (await stat(path)).size
    } catch {
      return undefined
    }
  }
  return undefined
}

function query(params: Record<string, string>): string {
  return new URLSearchParams(params).toString()
}

/** Runs `fn` with a pool for `origin` (the connection's own, or a temporary one for a redirect target). */
async function withPool<T>(core: XapiCore, origin: string, fn: (pool: Pool) => Promise<T>): Promise<T> {
  if (origin === core.url) return fn(core.httpPool())
  const pool = createPool(origin, { tls: core.tls() }, core.logger)
  try {
    return await fn(pool)
  } finally {
    void pool.close().catch(() => undefined)
  }
}

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const v = res.headers[name]
  return Array.isArray(v) ? v[0] : v
}

async function createTask(core: XapiCore, label: string): Promise<string> {
  return (await core.callWith('task.create', [label, 'xenstack disk transfer'])) as string
}

async function destroyTask(core: XapiCore, task: string): Promise<void> {
  await core.callWith('task.destroy', [task]).catch((e) => core.logger.debug?.(`task.destroy ${task}: ${String(e)}`))
}

/** After a failed HTTP answer, prefer the task's own error (it says why) over the status line. */
async function failureFrom(core: XapiCore, task: string, method: string, origin: string, res: Dispatcher.ResponseData) {
  const body = (await res.body.text().catch(() => '')).slice(0, 300).replace(/\s+/g, ' ')
  try {
    const rec = (await core.callWith('task.get_record', [task])) as { status?: string; error_info?: string[] }
    if (rec.status === 'failure' && rec.error_info?.length) {
      const [code, ...params] = rec.error_info
      return new XenAPIError(
        String(code),
        params.map((p) => core.redactor.text(String(p))),
        method,
        origin,
      )
    }
  } catch {
    // fall through to the HTTP error
  }
  return new XapiTransportError(
    `${method}: ${origin} answered HTTP ${res.statusCode}: ${body}`,
    method,
    origin,
    res.statusCode,
  )
}

/**
 * Streams a disk image into an existing VDI (`PUT /import_raw_vdi`) and resolves when XAPI's task reports success;
 * rejects with the task's error (XenAPIError) when the import fails.
 */
export async function importVdi(
  core: XapiCore,
  vdi: string,
  body: Readable | Buffer | Uint8Array,
  opts: ImportVdiOptions = {},
): Promise<void> {
  const method = 'PUT /import_raw_vdi'
  const format = opts.format ?? 'raw'
  const total = await lengthOf(body, opts.size)
  if (total === undefined && format !== 'raw') {
    throw new Error(
      `importVdi(${vdi}): format ${format} needs the stream's length (options.size): XAPI accepts chunked uploads only for raw`,
    )
  }
  // The task first: creating it through the session layer also renews an expired session, which the HTTP handlers
  // (authenticated by session_id only) cannot do.
  const task = await createTask(core, `xenstack importVdi ${vdi}`)
  try {
    const session = core.sessionId ?? (await core.ensureSession())
    // 1. Where does the data go? (an empty PUT with no task: a pool member may redirect us)
    let origin = core.url
    for (let i = 0; i < MAX_REDIRECTS; i++) {
      const res = await withPool(core, origin, (pool) =>
        pool.request({
          method: 'PUT',
          path: `/import_raw_vdi?${query({ session_id: session, vdi, format })}`,
          headers: { 'content-length': '0' },
          body: '',
          signal: opts.signal,
        }),
      )
      await res.body.dump().catch(() => undefined)
      const location = header(res, 'location')
      if ((res.statusCode === 302 || res.statusCode === 301 || res.statusCode === 307) && location) {
        origin = new URL(location, origin).origin
        continue
      }
      break
    }
    // 2. The real transfer, linked to the task.
    let sent = 0
    const counter = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        sent += chunk.length
        opts.onProgress?.(sent, total)
        cb(null, chunk)
      },
    })
    const source = body instanceof Uint8Array ? Readable.from([Buffer.from(body)]) : body
    const piped = source.pipe(counter)
    source.on('error', (e) => counter.destroy(e))
    const headers: Record<string, string> = {
      'content-type': format === 'vhd' ? 'application/vhd' : 'application/octet-stream',
    }
    if (total !== undefined) headers['content-length'] = String(total)
    const signals = [core.closed]
    if (opts.signal) signals.push(opts.signal)
    if (opts.timeout) signals.push(AbortSignal.timeout(opts.timeout))
    const res = await withPool(core, origin, (pool) =>
      pool.request({
        method: 'PUT',
        path: `/import_raw_vdi?${query({ session_id: session, task_id: task, vdi, format })}`,
        headers,
        body: piped,
        signal: AbortSignal.any(signals),
      }),
    )
    if (res.statusCode < 200 || res.statusCode >= 300) throw await failureFrom(core, task, method, origin, res)
    await res.body.dump().catch(() => undefined)
    await waitTask(core, task, { method: `${method} ${vdi}`, signal: opts.signal })
  } finally {
    await destroyTask(core, task)
  }
}

/**
 * Streams a VDI out (`GET /export_raw_vdi`). Resolves once XAPI has answered; the returned stream ends only after the
 * export task succeeded, and errors with the task's error when it failed.
 */
export async function exportVdi(core: XapiCore, vdi: string, opts: ExportVdiOptions = {}): Promise<Readable> {
  const method = 'GET /export_raw_vdi'
  const format = opts.format ?? 'raw'
  const task = await createTask(core, `xenstack exportVdi ${vdi}`) // renews an expired session first
  const session = core.sessionId ?? (await core.ensureSession())
  const signal = opts.signal ? AbortSignal.any([opts.signal, core.closed]) : core.closed
  try {
    let origin = core.url
    let res: Dispatcher.ResponseData | undefined
    let extraPool: Pool | undefined
    for (let i = 0; i <= MAX_REDIRECTS; i++) {
      const pool: Pool =
        origin === core.url ? core.httpPool() : (extraPool = createPool(origin, { tls: core.tls() }, core.logger))
      res = await pool.request({
        method: 'GET',
        path: `/export_raw_vdi?${query({ session_id: session, task_id: task, vdi, format })}`,
        signal,
      })
      const location = header(res, 'location')
      if ((res.statusCode === 302 || res.statusCode === 301 || res.statusCode === 307) && location) {
        await res.body.dump().catch(() => undefined)
        origin = new URL(location, origin).origin
        continue
      }
      break
    }
    if (!res || res.statusCode < 200 || res.statusCode >= 300) {
      throw res ? await failureFrom(core, task, method, origin, res) : new Error(`${method}: too many redirects`)
    }
    let finished = false
    const out = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        cb(null, chunk)
      },
      flush(cb: TransformCallback) {
        waitTask(core, task, { method: `${method} ${vdi}` }).then(
          () => cb(),
          (e) => cb(e as Error),
        )
      },
    })
    const cleanup = (): void => {
      if (finished) return
      finished = true
      void destroyTask(core, task)
      void extraPool?.close().catch(() => undefined)
    }
    out.on('close', cleanup)
    pipeline(res.body, out).catch((e) => {
      out.destroy(e as Error)
    })
    return out
  } catch (e) {
    await destroyTask(core, task)
    throw e
  }
}
