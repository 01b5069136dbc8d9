/**
 * Moving a VM in and out of a pool as an XVA through XAPI's HTTP handlers (xapi-protocol.md §1): `PUT /import`
 * (the task's result is the set of imported VM refs) and `GET /export`, both authenticated with the session and
 * linked to a task whose outcome is the transfer's. Uses the connection's own HTTP pool, so its TLS verification.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm, stat } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import type { Xapi } from '@xenstack/xenapi'

export class XvaTransferError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'XvaTransferError'
  }
}

async function taskError(xapi: Xapi, task: string): Promise<string | undefined> {
  const rec = (await xapi.call('task.get_record', task).catch(() => undefined)) as
    { status?: string; error_info?: string[] } | undefined
  return rec?.status === 'failure' ? (rec.error_info ?? []).join(' ') : undefined
}

/** Imports an XVA file; returns the refs of the VMs it held. `sr` (default: the pool's default SR) takes the disks. */
export async function importXvaFile(xapi: Xapi, file: string, sr?: string): Promise<string[]> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch (e) {
    throw new XvaTransferError(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  const session = await xapi.ensureSession()
  const task = (await xapi.call('task.create', `xenstack import ${file}`, 'devstack template')) as string
  try {
    const q = new URLSearchParams({ session_id: session, task_id: task, ...(sr ? { sr_id: sr } : {}) })
    const res = await xapi.httpPool().request({
      method: 'PUT',
      path: `/import?${q}`,
      body: createReadStream(file),
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
    })
    await res.body.dump()
    if (res.statusCode !== 200)
      throw new XvaTransferError(
        `PUT /import of ${file} to ${xapi.url}: HTTP ${res.statusCode}${(await taskError(xapi, task)) ? `: ${await taskError(xapi, task)}` : ''}`,
      )
    try {
      return (await xapi.waitTask(task)) as string[]
    } catch (e) {
      throw new XvaTransferError(`PUT /import of ${file} to ${xapi.url}: ${(e as Error).message}`)
    }
  } finally {
    await xapi.call('task.destroy', task).catch(() => undefined)
  }
}

/** Exports a VM to an XVA file (written to FILE.part, renamed when XAPI's task succeeded). Returns its size. */
export async function exportXvaFile(xapi: Xapi, vm: string, file: string): Promise<number> {
  const session = await xapi.ensureSession()
  const task = (await xapi.call('task.create', `xenstack export ${vm}`, 'devstack template')) as string
  const part = `${file}.part`
  try {
    const q = new URLSearchParams({ session_id: session, task_id: task, ref: vm, use_compression: 'false' })
    const res = await xapi.httpPool().request({ method: 'GET', path: `/export?${q}` })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new XvaTransferError(
        `GET /export of ${vm} from ${xapi.url}: HTTP ${res.statusCode} ${(await taskError(xapi, task)) ?? ''}`.trim(),
      )
    }
    await pipeline(res.body, createWriteStream(part, { mode: 0o600 }))
    try {
      await xapi.waitTask(task)
    } catch (e) {
      throw new XvaTransferError(`GET /export of ${vm} from ${xapi.url}: ${(e as Error).message}`)
    }
    await rename(part, file)
    return (await stat(file)).size
  } catch (e) {
    await rm(part, { force: true })
    throw e
  } finally {
    await xapi.call('task.destroy', task).catch(() => undefined)
  }
}
