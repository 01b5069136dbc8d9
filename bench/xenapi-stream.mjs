#!/usr/bin/env node
// Benchmark (prints figures; not a test): VDI streaming with @xenstack/xenapi against the simulator (child process).
// Imports a raw disk of --mib MiB (default 512) generated on the fly through PUT /import_raw_vdi, exports it back
// through GET /export_raw_vdi, and prints MiB/s and the client's peak RSS above its start (constant memory: it must
// not grow with the disk size).
// Usage: npx tsc -b packages/xenapi packages/xapi-sim && node bench/xenapi-stream.mjs [--mib 512]
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { dirname, join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { connect } from '@xenstack/xenapi'

const i = process.argv.indexOf('--mib')
const MIB = Number(i >= 0 ? process.argv[i + 1] : 512)
const size = MIB * 1024 * 1024
const here = dirname(fileURLToPath(import.meta.url))
const child = spawn(process.execPath, [join(here, 'xenapi-sim-child.mjs'), '0', 'bench-pw'], {
  stdio: ['pipe', 'pipe', 'inherit'],
})
const { url } = JSON.parse(await new Promise((r) => createInterface({ input: child.stdout }).once('line', r)))
const xapi = await connect({ url, password: 'bench-pw', transport: 'json-rpc' })
try {
  const sr = Object.values(await xapi.pool.get_all_records())[0].default_SR
  const vdi = await xapi.VDI.create({
    name_label: 'bench',
    SR: sr,
    virtual_size: size,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  })
  const base = process.memoryUsage().rss
  let peak = base
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10)
  const chunk = Buffer.alloc(1024 * 1024)
  async function* disk() {
    for (let n = 0; n < MIB; n++) {
      chunk.fill(n & 0xff)
      yield Buffer.from(chunk)
    }
  }
  let t = performance.now()
  await xapi.importVdi(vdi, Readable.from(disk()), { format: 'raw', size })
  const importS = (performance.now() - t) / 1000
  t = performance.now()
  let got = 0
  await pipeline(
    await xapi.exportVdi(vdi, { format: 'raw' }),
    new Writable({
      write(c, _e, cb) {
        got += c.length
        cb()
      },
    }),
  )
  const exportS = (performance.now() - t) / 1000
  clearInterval(timer)
  if (got !== size) throw new Error(`exported ${got} bytes, expected ${size}`)
  console.log(`import ${MIB} MiB: ${(MIB / importS).toFixed(0)} MiB/s; export: ${(MIB / exportS).toFixed(0)} MiB/s`)
  console.log(
    `client RSS: ${(base / 2 ** 20).toFixed(0)} MiB at start, peak +${((peak - base) / 2 ** 20).toFixed(0)} MiB`,
  )
} finally {
  await xapi.close()
  child.stdin.end()
}
