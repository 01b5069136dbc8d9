/**
 * `xenstack image upload FILE --sr SR [--format vhd|raw]` and `xenstack image export VDI FILE [--format raw|vhd]`:
 * disk images in and out of a pool through XAPI's `/import_raw_vdi` and `/export_raw_vdi` handlers (the client's
 * streaming, packages/xenapi/src/streaming.ts), with a progress bar and throughput on a terminal, plain progress
 * lines otherwise, and `--json` results.
 *
 * Upload creates a VDI of the disk's virtual size on the SR first (a VHD's size is read from its footer; a raw
 * image's is its length), then streams the file into it; a failed import destroys that VDI again. Export writes
 * FILE.part and renames it when XAPI's task succeeded, so FILE is never a truncated disk.
 * The pool comes from the connection flags (`--pool`, or `--url` with the password from XENSTACK_XAPI_PASSWORD,
 * stdin or a prompt); the password never appears in output.
 */
import type { Command } from 'commander'
import { createReadStream, createWriteStream } from 'node:fs'
import { open, rename, rm, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform, type TransformCallback } from 'node:stream'
import cliProgress from 'cli-progress'
import type { Xapi } from '@xenstack/xenapi'
import { addConnectionOptions, withXapi, type ConnectionFlags } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit } from '../output.js'

type Format = 'raw' | 'vhd'

interface ImageFlags extends ConnectionFlags {
  json?: boolean
  format?: string
  sr?: string
  name?: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function register(program: Command): void {
  const image = program
    .command('image')
    .description('disk images in and out of a pool (VDI import/export through XAPI)')

  addConnectionOptions(
    image
      .command('upload')
      .description('create a VDI on an SR and import a disk image into it (PUT /import_raw_vdi)')
      .argument('<file>', 'disk image: a VHD (dynamic or fixed) or a raw disk'),
  )
    .requiredOption('--sr <sr>', 'SR name label, uuid or OpaqueRef')
    .option('--format <format>', 'vhd or raw (default: vhd when the file ends with a VHD footer, else raw)')
    .option('--name <label>', "the new VDI's name label (default: the file's name)")
    .option('--json', 'print the result as JSON')
    .action((file: string, flags: ImageFlags) => upload(file, flags))

  addConnectionOptions(
    image
      .command('export')
      .description("write a VDI's contents to a file (GET /export_raw_vdi)")
      .argument('<vdi>', 'VDI uuid, OpaqueRef or name label')
      .argument('<file>', 'where to write the disk image'),
  )
    .option('--format <format>', 'raw or vhd (default raw)')
    .option('--json', 'print the result as JSON')
    .action((vdi: string, file: string, flags: ImageFlags) => exportImage(vdi, file, flags))
}

function parseFormat(v: string | undefined): Format | undefined {
  if (v === undefined) return undefined
  if (v === 'raw' || v === 'vhd') return v
  throw new CliError(`--format ${v}: expected vhd or raw`, ExitCode.usage)
}

/** A VHD's virtual size from its footer (the last 512 bytes), or undefined when the file has no VHD footer. */
export async function vhdVirtualSize(file: string): Promise<number | undefined> {
  const fh = await open(file, 'r')
  try {
    const { size } = await fh.stat()
    if (size < 512) return undefined
    const footer = Buffer.alloc(512)
    await fh.read(footer, 0, 512, size - 512)
    if (footer.toString('latin1', 0, 8) !== 'conectix') return undefined
    return Number(footer.readBigUInt64BE(48))
  } finally {
    await fh.close()
  }
}

const MiB = 1024 * 1024
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`

/** Progress on stderr: a bar with throughput on a terminal, a line per quarter otherwise, nothing with --json. */
function progress(what: string, total: number | undefined, flags: ImageFlags) {
  const t0 = performance.now()
  const rate = (n: number) => n / MiB / Math.max((performance.now() - t0) / 1000, 0.001)
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${what} [{bar}] {percentage}% {done}/{size} {speed}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    )
    const size = total ?? 0
    bar.start(size || 1, 0, { done: mib(0), size: total === undefined ? '?' : mib(size), speed: '' })
    return {
      update(n: number) {
        bar.update(size ? Math.min(n, size) : 0, { done: mib(n), speed: `${rate(n).toFixed(1)} MiB/s` })
      },
      stop() {
        bar.stop()
      },
    }
  }
  let nextQuarter = 1
  return {
    update(n: number) {
      if (flags.json || !total) return
      while (nextQuarter <= 4 && n >= (total * nextQuarter) / 4) {
        process.stderr.write(
          `${what}: ${nextQuarter * 25}% (${mib(n)} of ${mib(total)}, ${rate(n).toFixed(1)} MiB/s)\n`,
        )
        nextQuarter++
      }
    },
    stop() {},
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    const st = await stat(file)
    if (!st.isFile()) throw new CliError(`${file} is not a regular file`, ExitCode.invalidInput)
    return st.size
  } catch (e) {
    if (e instanceof CliError) throw e
    throw new CliError(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.notFound)
  }
}

interface Named {
  ref: string
  uuid: string
  name_label: string
}

/** A record by OpaqueRef, uuid or (unique) name label; `cls` is SR or VDI. */
async function resolveByName(xapi: Xapi, cls: 'SR' | 'VDI', id: string): Promise<Named & Record<string, unknown>> {
  let ref: string | undefined
  if (id.startsWith('OpaqueRef:')) ref = id
  else if (UUID.test(id)) ref = (await xapi.call(`${cls}.get_by_uuid`, id).catch(() => undefined)) as string | undefined
  if (!ref) {
    const refs = (await xapi.call(`${cls}.get_by_name_label`, id)) as string[]
    if (refs.length > 1) {
      const uuids = await Promise.all(refs.map((r) => xapi.call(`${cls}.get_uuid`, r)))
      throw new CliError(
        `${refs.length} ${cls}s are named "${id}" in the pool at ${xapi.url}`,
        ExitCode.usage,
        `name one by uuid: ${uuids.join(', ')}`,
      )
    }
    ref = refs[0]
  }
  const rec = ref
    ? ((await xapi.call(`${cls}.get_record`, ref).catch(() => undefined)) as Record<string, unknown> | undefined)
    : undefined
  if (!rec)
    throw new CliError(
      `no ${cls} "${id}" in the pool at ${xapi.url}`,
      ExitCode.notFound,
      `list them with: xenstack xapi ${cls.toLowerCase()}-list`,
    )
  return { ...rec, ref: ref!, uuid: String(rec.uuid), name_label: String(rec.name_label) }
}

async function upload(file: string, flags: ImageFlags): Promise<void> {
  const explicit = parseFormat(flags.format)
  const bytes = await fileSize(file)
  const footerSize = await vhdVirtualSize(file)
  const format: Format = explicit ?? (footerSize !== undefined ? 'vhd' : 'raw')
  if (format === 'vhd' && footerSize === undefined)
    throw new CliError(`${file} is not a VHD: no "conectix" footer in its last 512 bytes`, ExitCode.invalidInput)
  if (format === 'raw' && bytes === 0) throw new CliError(`${file} is empty`, ExitCode.invalidInput)
  const virtualSize = format === 'vhd' ? footerSize! : bytes
  await withXapi(flags, async (xapi) => {
    const sr = await resolveByName(xapi, 'SR', flags.sr!)
    const vdi = (await xapi.call('VDI.create', {
      name_label: flags.name ?? basename(file),
      name_description: `imported by xenstack image upload from ${basename(file)}`,
      SR: sr.ref,
      virtual_size: virtualSize,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      xenstore_data: {},
      sm_config: {},
      tags: [],
    })) as string
    const bar = progress(`uploading ${basename(file)}`, bytes, flags)
    const rate = await transfer(
      bar,
      () => xapi.importVdi(vdi, createReadStream(file), { format, size: bytes, onProgress: (n) => bar.update(n) }),
      () => xapi.call('VDI.destroy', vdi).catch(() => undefined),
      () => bytes,
    )
    const uuid = (await xapi.call('VDI.get_uuid', vdi)) as string
    const result = {
      vdi: { ref: vdi, uuid, name_label: flags.name ?? basename(file) },
      sr: { ref: sr.ref, uuid: sr.uuid, name_label: sr.name_label },
      file,
      format,
      bytes,
      virtual_size: virtualSize,
      ...rate,
    }
    emit(flags, result, (r) =>
      process.stdout.write(
        `imported ${r.file} (${r.format}, ${mib(r.bytes)}) into VDI ${r.vdi.uuid} on SR ${r.sr.name_label}: ` +
          `${r.seconds} s, ${r.mib_per_second} MiB/s\n`,
      ),
    )
  })
}

/**
 * Runs a transfer behind its progress bar. On failure the bar stops, `undo` removes what the transfer left (the new
 * VDI, the partial file) and the error goes on; on success, the duration and rate (of `bytes()`, the bytes moved) as
 * both commands report them.
 */
async function transfer(
  bar: { stop(): void },
  work: () => Promise<unknown>,
  undo: () => Promise<unknown>,
  bytes: () => number,
): Promise<{ seconds: number; mib_per_second: number }> {
  const t0 = performance.now()
  try {
    await work()
  } catch (e) {
    bar.stop()
    await undo()
    throw e
  }
  bar.stop()
  const seconds = (performance.now() - t0) / 1000
  return {
    seconds: Number(seconds.toFixed(3)),
    mib_per_second: Number((bytes() / MiB / Math.max(seconds, 0.001)).toFixed(1)),
  }
}

async function exportImage(id: string, file: string, flags: ImageFlags): Promise<void> {
  const format = parseFormat(flags.format) ?? 'raw'
  await withXapi(flags, async (xapi) => {
    const vdi = await resolveByName(xapi, 'VDI', id)
    const virtualSize = Number(vdi.virtual_size)
    const bar = progress(`exporting ${vdi.name_label}`, format === 'raw' ? virtualSize : undefined, flags)
    const part = `${file}.part`
    let bytes = 0
    const counter = new Transform({
      transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback) {
        bytes += chunk.length
        bar.update(bytes)
        cb(null, chunk)
      },
    })
    const rate = await transfer(
      bar,
      async () => {
        await pipeline(await xapi.exportVdi(vdi.ref, { format }), counter, createWriteStream(part))
        await rename(part, file)
      },
      () => rm(part, { force: true }),
      () => bytes,
    )
    const result = {
      vdi: { ref: vdi.ref, uuid: vdi.uuid, name_label: vdi.name_label },
      file,
      format,
      bytes,
      virtual_size: virtualSize,
      ...rate,
    }
    emit(flags, result, (r) =>
      process.stdout.write(
        `exported VDI ${r.vdi.uuid} (${r.format}) to ${r.file}: ${mib(r.bytes)} in ${r.seconds} s, ${r.mib_per_second} MiB/s\n`,
      ),
    )
  })
}
