#!/usr/bin/env node
// Benchmark (prints figures; not a test): @xenstack/xenapi vs Xen Orchestra's xen-api (root devDependency, 4.7.6) vs
// os-xenapi's XenAPI.py (Debian python3-os-xenapi, run with /usr/bin/python3, XML-RPC only), against the simulator
// serving a pool of 1,000 VMs from a child process. Per client and transport: calls/s of VM.get_record sequentially
// and with 32 calls in flight, the time of VM.get_all_records, and the client's own CPU per call.
// Targets: >= 1.5x xen-api and >= 3x XenAPI.py on JSON-RPC; >= 1.2x xen-api on XML-RPC.
//
// The Node clients take turns in small blocks (20 per figure by default) so that they see the same background load on
// a shared machine; calls/s are totals over all blocks, get_all_records the median of --rounds calls. CPU µs/call
// (process.cpuUsage of the client process) is the figure least sensitive to load. XenAPI.py runs in a worker process
// that takes its turns the same way (it speaks XML-RPC only).
//
// --floor adds two reference rows that are not clients: the same JSON-RPC VM.get_record through undici's Pool.dispatch
// (what this client's calls went through until it got its own HTTP/1.1 pool, http1.ts; disk streaming still does;
// nothing but the JSON encode and parse around it) and through a bare node:net keep-alive socket with a minimal
// HTTP/1.1 reader (Content-Length answers only, no TLS, no timeouts). They show how much of the client's cost per call
// is its HTTP layer's floor. --warmup sets the calls each client makes before measuring (3000,
// XenAPI.py too): V8 is still optimising over the first few thousand calls (this client ~670 µs CPU/call over the
// first 1,000 after 300, ~150 µs warm; xen-api ~510 -> ~250), so with a short warm-up a run measures the JIT as much
// as the client. The figures are steady-state ones; --warmup 300 shows the cold picture.
//
// Usage: npx tsc -b packages/xenapi packages/xapi-sim && node bench/xenapi-client.mjs [--vms 1000] [--seq 1000]
//        [--conc 2000] [--rounds 5] [--warmup 3000] [--only ours,xen-api,python] [--floor]
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import net from 'node:net'
import { loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { connect } from '@xenstack/xenapi'
import { createClient } from 'xen-api'

const here = dirname(fileURLToPath(import.meta.url))
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : dflt
}
const VMS = Number(arg('vms', 1000))
const SEQ = Number(arg('seq', 1000))
const CONC_CALLS = Number(arg('conc', 2000))
const CONC = 32
const ROUNDS = Number(arg('rounds', 5))
const ONLY = arg('only', 'ours,xen-api,python').split(',')
const WARMUP = Number(arg('warmup', 3000))
const FLOOR = process.argv.includes('--floor')
const PASSWORD = 'bench-pw'

async function startSim() {
  const child = spawn(process.execPath, [join(here, 'xenapi-sim-child.mjs'), String(VMS), PASSWORD], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', (c) => reject(new Error(`simulator exited with ${c}`)))
  })
  return { url: JSON.parse(line).url, stop: () => child.stdin.end() }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const cpuNow = () => {
  const c = process.cpuUsage()
  return c.user + c.system
}

/** `n` sequential calls; returns [wall ms, client CPU µs]. */
async function seqBlock(call, vms, n, offset) {
  const c0 = cpuNow()
  const t = performance.now()
  for (let i = 0; i < n; i++) await call('VM.get_record', vms[(offset + i) % vms.length])
  return [performance.now() - t, cpuNow() - c0]
}

/** `n` calls with CONC in flight; returns [wall ms, client CPU µs]. */
async function concBlock(call, vms, n, offset) {
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      await call('VM.get_record', vms[(offset + i) % vms.length])
    }
  }
  const c0 = cpuNow()
  const t = performance.now()
  await Promise.all(Array.from({ length: CONC }, worker))
  return [performance.now() - t, cpuNow() - c0]
}

async function allRound(call) {
  const t = performance.now()
  const all = await call('VM.get_all_records')
  const ms = performance.now() - t
  if (Object.keys(all).length < VMS) throw new Error(`get_all_records returned ${Object.keys(all).length} VMs`)
  return ms
}

async function oursClient(url, transport) {
  const xapi = await connect({ url, username: 'root', password: PASSWORD, transport, maxConcurrentCalls: CONC })
  return { call: (m, ...p) => xapi.call(m, ...p), close: () => xapi.close() }
}

async function xenApiClient(url, transport) {
  const xapi = createClient({
    url,
    auth: { user: 'root', password: PASSWORD },
    transport,
    watchEvents: false,
    callConcurrency: CONC,
  })
  await xapi.connect()
  return { call: (m, ...p) => xapi.call(m, ...p), close: () => xapi.disconnect() }
}

/**
 * Reference rows for --floor: VM.get_record as a JSON-RPC POST with nothing around it but JSON.stringify/JSON.parse,
 * through `post(body) → Promise<string>`.
 */
async function bareJsonRpc(post, close) {
  let id = 0
  const rpc = async (method, params) => {
    const answer = JSON.parse(await post(JSON.stringify({ jsonrpc: '2.0', method, params, id: ++id })))
    if (answer.error) throw new Error(`${method}: ${JSON.stringify(answer.error)}`)
    return answer.result
  }
  const session = await rpc('session.login_with_password', ['root', PASSWORD, '1.2', 'bench'])
  return {
    call: (m, ...p) => rpc(m, [session, ...p]),
    close: async () => {
      await rpc('session.logout', [session])
      await close()
    },
  }
}

/** undici's Pool.dispatch, as transport.ts uses it (the undici @xenstack/xenapi depends on). */
async function undiciFloor(url) {
  const { Pool } = createRequire(import.meta.resolve('@xenstack/xenapi'))('undici')
  const pool = new Pool(url, { connections: null, pipelining: 1, keepAliveTimeout: 30_000 })
  const post = (body) =>
    new Promise((resolve, reject) => {
      const chunks = []
      pool.dispatch(
        {
          path: '/jsonrpc',
          method: 'POST',
          body,
          headers: ['content-type', 'application/json'],
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        },
        {
          onRequestStart() {},
          onResponseStart() {},
          onResponseData: (_c, chunk) => chunks.push(chunk),
          onResponseEnd: () => resolve(Buffer.concat(chunks).toString('utf8')),
          onResponseError: (_c, e) => reject(e),
        },
      )
    })
  return bareJsonRpc(post, () => pool.close())
}

/** A bare keep-alive socket per call in flight, with a minimal HTTP/1.1 reader (Content-Length answers only). */
async function netFloor(url) {
  const { hostname, port, host } = new URL(url)
  const idle = []
  const sockets = []
  const open = () =>
    new Promise((resolve, reject) => {
      const conn = { socket: net.connect(Number(port), hostname, () => resolve(conn)), pending: undefined }
      conn.socket.once('error', reject)
      conn.socket.setNoDelay(true)
      let buf = null
      conn.socket.on('data', (d) => {
        buf = buf ? Buffer.concat([buf, d]) : d
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buf.latin1Slice(0, end)
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN)
        if (Number.isNaN(len)) throw new Error(`the node:net floor reads Content-Length answers only: ${head}`)
        if (buf.length < end + 4 + len) return
        const body = buf.utf8Slice(end + 4, end + 4 + len)
        buf = null
        const done = conn.pending
        conn.pending = undefined
        idle.push(conn)
        if (head.startsWith('HTTP/1.1 200')) done.resolve(body)
        else done.reject(new Error(head.split('\r\n')[0]))
      })
      sockets.push(conn.socket)
    })
  const post = async (body) => {
    const conn = idle.pop() ?? (await open())
    return new Promise((resolve, reject) => {
      conn.pending = { resolve, reject }
      conn.socket.write(
        `POST /jsonrpc HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
    })
  }
  return bareJsonRpc(post, () => sockets.forEach((s) => s.destroy()))
}

/** XenAPI.py in a Python worker process that takes commands, so it can take turns with the Node clients. */
async function pythonClient(url) {
  const child = spawn(
    '/usr/bin/python3',
    [join(here, 'xenapi-python.py'), url, PASSWORD, String(CONC), String(WARMUP)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const exited = new Promise((_, reject) =>
    child.once('exit', (c) => reject(new Error(`XenAPI.py worker exited (${c})`))),
  )
  const read = async () => (await Promise.race([lines.next(), exited])).value
  if ((await read()) !== 'ready') throw new Error('XenAPI.py worker did not start')
  const ask = async (cmd) => {
    child.stdin.write(cmd + '\n')
    return (await read()).split(' ').map(Number)
  }
  return {
    seqBlock: (n, offset) => ask(`seq ${n} ${offset}`),
    concBlock: (n, offset) => ask(`conc ${n} ${offset}`),
    all: async () => (await ask('all'))[0],
    close: async () => {
      child.stdin.end('quit\n')
      await new Promise((r) => child.once('exit', r))
    },
  }
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')
const loadBefore = load()
const sim = await startSim()
const results = {}
try {
  console.log(
    `simulator ${sim.url} with ${VMS} VMs; ${SEQ} sequential VM.get_record, ${CONC_CALLS} with ${CONC} ` +
      `in flight, ${ROUNDS} VM.get_all_records, per client and transport, after ${WARMUP} calls of warm-up`,
  )
  // Every client (both transports, and XenAPI.py) takes its turn in every block.
  const clients = []
  for (const transport of ['json-rpc', 'xml-rpc']) {
    if (ONLY.includes('ours')) clients.push([`ours ${transport}`, await oursClient(sim.url, transport)])
    if (ONLY.includes('xen-api')) clients.push([`xen-api ${transport}`, await xenApiClient(sim.url, transport)])
  }
  if (ONLY.includes('python')) clients.push(['XenAPI.py xml-rpc', await pythonClient(sim.url)])
  if (FLOOR) {
    clients.push(['floor: undici dispatch', await undiciFloor(sim.url)])
    clients.push(['floor: node:net', await netFloor(sim.url)])
  }
  const first = clients.find(([n]) => !n.startsWith('XenAPI.py'))?.[1]
  const vms = first ? (await first.call('VM.get_all')).slice(0, VMS) : []
  for (const [name, c] of clients) {
    if (c.call) for (let i = 0; i < WARMUP; i++) await c.call('VM.get_record', vms[i % vms.length]) // warm-up
    results[name] = { seqMs: 0, seqCpu: 0, concMs: 0, concCpu: 0, all: [] }
  }
  // Fine-grained turns (ROUNDS * 4 blocks) so that every client sees the same background load.
  const blocks = ROUNDS * 4
  const seqN = Math.ceil(SEQ / blocks)
  const concN = Math.ceil(CONC_CALLS / blocks)
  for (let b = 0; b < blocks; b++) {
    // every other block in reverse order, so no client always runs right after the same other one
    for (const [name, c] of b % 2 ? [...clients].reverse() : clients) {
      const r = results[name]
      const [sw, sc] = c.seqBlock ? await c.seqBlock(seqN, b * seqN) : await seqBlock(c.call, vms, seqN, b * seqN)
      const [cw, cc] = c.concBlock
        ? await c.concBlock(concN, b * concN)
        : await concBlock(c.call, vms, concN, b * concN)
      r.seqMs += sw
      r.seqCpu += sc
      r.concMs += cw
      r.concCpu += cc
    }
  }
  for (let k = 0; k < ROUNDS; k++) {
    for (const [name, c] of k % 2 ? [...clients].reverse() : clients) {
      results[name].all.push(c.all ? await c.all() : await allRound(c.call))
    }
  }
  for (const [name] of clients) {
    const r = results[name]
    results[name] = {
      seq: (seqN * blocks) / (r.seqMs / 1000),
      seqCpu: r.seqCpu / (seqN * blocks),
      conc: (concN * blocks) / (r.concMs / 1000),
      concCpu: r.concCpu / (concN * blocks),
      allMs: median(r.all),
    }
  }
  for (const [, c] of clients) await c.close()
} finally {
  sim.stop()
}

const n = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-')
console.log(
  `\n${'client'.padEnd(24)} ${'seq calls/s'.padStart(12)} ${'cpu µs/call'.padStart(12)} ${'conc32 calls/s'.padStart(15)} ` +
    `${'cpu µs/call'.padStart(12)} ${'get_all_records ms'.padStart(19)}`,
)
for (const [k, r] of Object.entries(results)) {
  console.log(
    `${k.padEnd(24)} ${n(r.seq).padStart(12)} ${n(r.seqCpu).padStart(12)} ${n(r.conc).padStart(15)} ` +
      `${n(r.concCpu).padStart(12)} ${n(r.allMs, 1).padStart(19)}`,
  )
}
const ratio = (a, b, key, lowerIsBetter = false) =>
  a && b ? `${(lowerIsBetter ? b[key] / a[key] : a[key] / b[key]).toFixed(2)}x` : 'n/a'
const line = (label, o, p, target) =>
  console.log(
    `  ${label.padEnd(34)} seq ${ratio(o, p, 'seq').padStart(6)}  conc32 ${ratio(o, p, 'conc').padStart(6)}  ` +
      `get_all_records ${ratio(o, p, 'allMs', true).padStart(6)}  cpu/call ${ratio(o, p, 'seqCpu', true).padStart(6)}` +
      (target ? `   (target >= ${target}x)` : ''),
  )
console.log(
  `\nload average before ${loadBefore}, after ${load()} (wall-clock figures depend on it; CPU µs/call much less)`,
)
console.log('\nratios (higher = ours better; get_all_records and cpu: their time / ours)')
const py = results['XenAPI.py xml-rpc']
line('ours json-rpc / xen-api json-rpc', results['ours json-rpc'], results['xen-api json-rpc'], 1.5)
line('ours xml-rpc / xen-api xml-rpc', results['ours xml-rpc'], results['xen-api xml-rpc'], 1.2)
line('ours json-rpc / XenAPI.py', results['ours json-rpc'], py, 3)
line('ours xml-rpc / XenAPI.py', results['ours xml-rpc'], py)
const ours = results['ours json-rpc']
for (const f of ['floor: undici dispatch', 'floor: node:net']) {
  const r = results[f]
  if (!ours || !r) continue
  console.log(
    `  ours json-rpc CPU over ${f.slice(7).padEnd(16)} seq ${n(ours.seqCpu - r.seqCpu).padStart(5)} µs/call  ` +
      `conc32 ${n(ours.concCpu - r.concCpu).padStart(5)} µs/call  (floor seq ${n(r.seq)} calls/s, ${n(r.seqCpu)} µs/call)`,
  )
}
