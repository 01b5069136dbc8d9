/**
 * VDI contents and the disk transfer handlers `PUT /import_raw_vdi` and `GET /export_raw_vdi` (xapi-protocol.md §1).
 *
 * Each VDI's contents is a sparse file `<dir>/<vdi uuid>.raw` of the VDI's virtual_size, created on first use (a
 * missing file reads as zeros). VDI.destroy deletes its file; VDI.resize truncates it (a missing file is left alone). After an import the VDI's
 * physical_utilisation is the space the file really uses.
 *
 * Handler behaviour follows XAPI: the session comes from `session_id` (query or cookie) or HTTP Basic; `task_id`
 * attaches the transfer to a task that is completed with the result or the error; answers carry a `Task-Id` header
 * (imports answer once the body is in — see importRawVdi); an empty PUT without a task (xen-api's redirect probe)
 * is answered 200 and changes nothing; an unknown format gets 404 and INTERNAL_ERROR ["Unknown format x"]; chunked
 * transfer encoding is refused for anything but raw.
 */
import { randomUUID } from 'node:crypto'
import { createWriteStream, mkdirSync } from 'node:fs'
import { open, rm, stat, truncate } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { XapiError, toErrorDescription } from './errors.js'
import type { HttpContext } from './http.js'
import type { Simulator } from './simulator.js'
import { installXvaHandlers } from './xva.js'
import { planVhdExport, vhdToRaw, writeOver, VhdFormatError } from './vhd.js'

const FORMATS: Record<string, string> = {
  raw: 'application/octet-stream',
  vhd: 'application/vhd',
  tar: 'application/x-tar',
  qcow2: 'application/x-qemu-disk',
}

/** Where VDI contents live, and the bookkeeping that keeps files and records in step. */
export class DiskStore {
  readonly dir: string
  private readonly restore: (() => void)[] = []

  constructor(
    readonly sim: Simulator,
    dir: string,
  ) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
    // Keep files in step with VDI.destroy and VDI.resize(_online) by wrapping those messages (a database change
    // listener would make the store build change objects for every mutation, which the hot path avoids).
    const wrap = (name: string, after: (vdi: string, uuid: string, args: unknown[]) => Promise<void>) => {
      const inner = sim.messages.implementation(name)
      if (!inner) return
      this.restore.push(
        sim.messages.override(name, async (ctx, args) => {
          const vdi = args[0] as string
          const uuid = sim.db.has('VDI', vdi) ? (sim.db.get(vdi)!.uuid as string) : undefined
          const result = await inner(ctx, args)
          if (uuid) await after(vdi, uuid, args).catch(() => undefined)
          return result
        }),
      )
    }
    wrap('VDI.destroy', (_vdi, uuid) => rm(this.pathOfUuid(uuid), { force: true }))
    const resize = async (vdi: string, uuid: string) => {
      if (sim.db.has('VDI', vdi)) await truncate(this.pathOfUuid(uuid), Number(sim.db.get(vdi)!.virtual_size))
    }
    wrap('VDI.resize', resize)
    wrap('VDI.resize_online', resize)
  }

  pathOfUuid(uuid: string): string {
    return join(this.dir, `${uuid}.raw`)
  }

  /** The contents file of a VDI, created sparse at the VDI's virtual_size when missing. */
  async file(vdi: string): Promise<string> {
    const rec = this.sim.db.must('VDI', vdi)
    const p = this.pathOfUuid(rec.uuid as string)
    const fh = await open(p, 'a')
    try {
      const size = Number(rec.virtual_size)
      if ((await fh.stat()).size !== size) await fh.truncate(size)
    } finally {
      await fh.close()
    }
    return p
  }

  /** Refreshes physical_utilisation from the blocks the file really uses. */
  async account(vdi: string): Promise<void> {
    if (!this.sim.db.has('VDI', vdi)) return
    const rec = this.sim.db.get(vdi)!
    try {
      const st = await stat(this.pathOfUuid(rec.uuid as string))
      this.sim.db.update(vdi, { physical_utilisation: Math.min(st.blocks * 512, Number(rec.virtual_size)) })
    } catch {
      // no file: nothing written yet
    }
  }

  close(): void {
    for (const r of this.restore.splice(0)) r()
  }
}

/** Registers the disk handlers on a simulator; VDI contents go under `dir`. */
export function installDiskHandlers(sim: Simulator, dir: string): DiskStore {
  const store = new DiskStore(sim, dir)
  sim.http.route('PUT', '/import_raw_vdi', (req, res, ctx) => importRawVdi(store, req, res, ctx))
  sim.http.route('GET', '/export_raw_vdi', (req, res, ctx) => exportRawVdi(store, req, res, ctx))
  installXvaHandlers(store) // GET /export and PUT /import (XVA), xva.ts
  return store
}

interface Transfer {
  task?: string
  vdi: string
  format: string
}

function vdiFromQuery(sim: Simulator, q: URLSearchParams): string {
  const v = q.get('vdi') ?? ''
  if (v.startsWith('OpaqueRef:')) {
    sim.db.must('VDI', v)
    return v
  }
  const byUuid = sim.db.refOfUuid('VDI', v)
  if (byUuid) return byUuid
  throw new XapiError('HANDLE_INVALID', 'VDI', v)
}

function sendError(res: ServerResponse, status: number, ed: string[]): void {
  if (res.headersSent) return void res.destroy()
  const body = `${ed.join(' ')}\n`
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Common checks; answers the request itself and returns undefined when it cannot proceed. */
async function begin(
  store: DiskStore,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
  kind: 'import' | 'export',
): Promise<Transfer | undefined> {
  const sim = store.sim
  const q = ctx.url.searchParams
  const taskRef = q.get('task_id') ?? undefined
  const task = taskRef && sim.db.has('task', taskRef) ? taskRef : undefined
  const fail = (status: number, e: unknown): undefined => {
    const ed = toErrorDescription(e)
    if (task) sim.tasks.complete(task, { error: ed })
    req.resume()
    sendError(res, status, ed)
    return undefined
  }
  let session: { ref: string }
  try {
    session = await sim.http.session(req, ctx.url, ctx.host)
  } catch (e) {
    return fail(401, e)
  }
  const format = (q.get('format') ?? 'raw').toLowerCase()
  if (!(format in FORMATS)) return fail(404, new XapiError('INTERNAL_ERROR', `Unknown format ${q.get('format')}`))
  if (format === 'tar' || format === 'qcow2')
    return fail(
      404,
      new XapiError('INTERNAL_ERROR', `format ${format} is not supported by the simulator (supported: raw, vhd)`),
    )
  const chunked = q.get('chunked') === 'true' || /chunked/i.test(String(req.headers['transfer-encoding'] ?? ''))
  if (kind === 'import' && chunked && format !== 'raw')
    return fail(
      400,
      new XapiError('INTERNAL_ERROR', `chunked transfer encoding is only supported for raw, not ${format}`),
    )
  let vdi: string
  try {
    const length = Number(req.headers['content-length'])
    if (
      kind === 'import' &&
      !q.get('vdi') &&
      format === 'raw' &&
      q.get('sr_id') &&
      Number.isInteger(length) &&
      length > 0
    ) {
      // XAPI: no vdi, raw, a length and an SR → a new VDI "Imported VDI" of the body's size (§1.1).
      const sr = q.get('sr_id')!
      sim.db.must('SR', sr)
      vdi = (await sim.callOrThrow('VDI.create', session.ref, {
        name_label: 'Imported VDI',
        name_description: '',
        SR: sr,
        virtual_size: length,
        type: 'user',
        sharable: false,
        read_only: false,
        other_config: {},
      })) as string
    } else vdi = vdiFromQuery(sim, q)
  } catch (e) {
    return fail(404, e)
  }
  if (task) sim.tasks.attach(task)
  return { task, vdi, format }
}

async function importRawVdi(
  store: DiskStore,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
): Promise<void> {
  const sim = store.sim
  const q = ctx.url.searchParams
  // xen-api's redirect probe: an empty PUT without a task. Answer it and change nothing.
  if (req.headers['content-length'] === '0' && !q.get('task_id')) {
    req.resume()
    res.writeHead(200, { 'content-length': '0' })
    return void res.end()
  }
  const t = await begin(store, req, res, ctx, 'import')
  if (!t) return
  // XAPI sends its 200 before reading the body. We answer once the body is in: os-xenapi closes its connection as
  // soon as it has the status line, and a close that overtakes the body still being written aborts the upload in
  // node:http. With a task, the outcome is the task's (200 either way, as XAPI); without one, failures are a 500.
  const done = (error?: unknown) => {
    if (t.task) {
      if (error === undefined) sim.tasks.complete(t.task, { result: `<value>${t.vdi}</value>` })
      else sim.tasks.complete(t.task, { error: toErrorDescription(error) })
    }
    if (res.headersSent || res.destroyed) return void res.end()
    if (error !== undefined && !t.task) return sendError(res, 500, toErrorDescription(error))
    res.writeHead(200, { ...(t.task ? { 'task-id': t.task } : {}), 'content-length': '0' })
    res.end()
  }
  try {
    const file = await store.file(t.vdi)
    const size = Number(sim.db.get(t.vdi)!.virtual_size)
    if (t.format === 'raw') await receiveRaw(req, file, size, t.vdi)
    else {
      const tmp = join(store.dir, `.upload-${randomUUID()}.vhd`)
      try {
        const complete = await receiveToFile(req, tmp)
        await vhdToRaw(tmp, file, { maxSize: size })
        // Like XAPI: the data that came is imported, and the cut connection is reported.
        if (!complete) throw new XapiError('VDI_IO_ERROR', 'Device I/O errors')
      } catch (e) {
        if (e instanceof VhdFormatError) throw new XapiError('VDI_IO_ERROR', e.message)
        throw e
      } finally {
        await rm(tmp, { force: true })
      }
    }
    await store.account(t.vdi)
    done()
  } catch (e) {
    await store.account(t.vdi).catch(() => undefined)
    req.resume()
    done(e)
  }
}

/** Writes a raw body over the VDI's contents from offset 0, keeping holes; more bytes than the VDI holds fail. */
async function receiveRaw(req: IncomingMessage, file: string, size: number, vdi: string): Promise<void> {
  const fh = await open(file, 'r+')
  let pos = 0
  try {
    await new Promise<void>((resolve, reject) => {
      let pending = Promise.resolve()
      let failed = false
      const stop = (e: unknown) => {
        if (failed) return
        failed = true
        req.pause()
        reject(e)
      }
      req.on('data', (chunk: Buffer) => {
        if (failed) return
        const at = pos
        pos += chunk.length
        if (pos > size)
          return stop(new XapiError('VDI_IO_ERROR', `more than the ${size} bytes of VDI ${vdi} were sent`))
        req.pause()
        pending = pending
          .then(() => writeOver(fh, chunk, at))
          .then(
            () => void req.resume(),
            (e) => stop(e),
          )
      })
      req.on('end', () => void pending.then(() => !failed && resolve()))
      // A client that closes the connection after its data (xen-api's "unknown length" hack) ends the transfer.
      req.on('aborted', () => void pending.then(() => stop(new XapiError('VDI_IO_ERROR', 'Device I/O errors'))))
      req.on('error', (e) => stop(e))
    })
  } finally {
    await fh.close()
  }
}

/**
 * Stores the body in a file; resolves true when it ended normally, false when the client closed the connection
 * first (xen-api's "unknown length" uploads announce 1 PiB and close after their data): what arrived is kept.
 */
async function receiveToFile(req: IncomingMessage, path: string): Promise<boolean> {
  const out = createWriteStream(path)
  let complete = false
  await new Promise<void>((resolve, reject) => {
    req.on('data', (c: Buffer) => {
      if (!out.write(c)) {
        req.pause()
        out.once('drain', () => req.resume())
      }
    })
    req.on('end', () => {
      complete = true
      out.end()
    })
    req.on('close', () => {
      if (!complete) out.end()
    })
    req.on('error', () => undefined) // an abort: handled by 'close'
    out.on('finish', resolve)
    out.on('error', reject)
  })
  return complete
}

async function exportRawVdi(
  store: DiskStore,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: HttpContext,
): Promise<void> {
  const sim = store.sim
  const t = await begin(store, req, res, ctx, 'export')
  if (!t) return
  req.resume()
  try {
    const file = await store.file(t.vdi)
    const size = Number(sim.db.get(t.vdi)!.virtual_size)
    let length: number
    let body: Readable
    if (t.format === 'vhd') {
      const plan = await planVhdExport(file, { type: 'dynamic', size, uuid: sim.db.get(t.vdi)!.uuid as string })
      length = plan.length
      body = Readable.from(plan.chunks())
    } else {
      length = size
      body = Readable.from(rawChunks(file, size))
    }
    res.writeHead(200, {
      'content-type': FORMATS[t.format],
      'content-length': String(length),
      ...(t.task ? { 'task-id': t.task } : {}),
    })
    await pipeline(body, res)
    if (t.task) sim.tasks.complete(t.task, { result: '<value></value>' })
  } catch (e) {
    if (t.task) sim.tasks.complete(t.task, { error: toErrorDescription(e) })
    if (!res.headersSent) sendError(res, 500, toErrorDescription(e))
    else res.destroy()
  }
}

async function* rawChunks(file: string, size: number): AsyncGenerator<Buffer> {
  const fh = await open(file, 'r')
  try {
    const chunk = 1024 * 1024
    for (let pos = 0; pos < size; pos += chunk) {
      const n = Math.min(chunk, size - pos)
      const buf = Buffer.alloc(n)
      const { bytesRead } = await fh.read(buf, 0, n, pos)
      if (bytesRead < n) buf.fill(0, bytesRead)
      yield buf
    }
  } finally {
    await fh.close()
  }
}
