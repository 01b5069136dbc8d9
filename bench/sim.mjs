#!/usr/bin/env node
// Simulator benchmark (issue 4): a generated pool of 1,000 hosts and 50,000 VMs in a child process.
// Prints: start-up time (process start → listening, incl. building the pool) and the child's RSS; VM.get_record
// calls/s with 1, 32 and 256 concurrent clients over JSON-RPC and XML-RPC (keep-alive HTTP/1.1, random VMs);
// event.from latency from sending a change (VM.set_name_description by another session) to the blocked
// event.from returning it, p50/p99 over --samples changes.
// Targets on a 2-core machine: ≥ 20,000 calls/s JSON-RPC at 32 concurrency; pool up < 5 s and < 1 GiB RSS;
// p99 event latency < 20 ms. The load generator shares the machine with the server: figures are end to end, so the
// server's CPU time per call is printed too (a figure that does not depend on what else runs on the machine).
// Nothing here asserts. Build first (npx tsc -b packages/xapi-sim), then:
//   node bench/sim.mjs [--hosts 1000] [--vms 50000] [--seconds 3] [--samples 200]
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? def : Number(process.argv[i + 1])
}

if (process.argv.includes('--child')) {
  // The server side: build and listen, report, then serve until stdin closes.
  const t0 = performance.now()
  const { startSimServer } = await import('../packages/xapi-sim/dist/src/index.js')
  const server = await startSimServer({ hosts: arg('hosts', 1000), vms: arg('vms', 50000), password: 'bench' })
  const upMs = performance.now() - t0
  // Collect the start-up garbage now, so the first measured runs do not pay for it.
  globalThis.gc?.()
  const sim = server.pools[0].sim
  const vms = sim.db.refs('VM').filter((r) => !sim.db.get(r).is_a_template && !sim.db.get(r).is_control_domain)
  // The peer: a bare node:http server answering every POST with a canned JSON-RPC VM record of the same size —
  // the floor any Node XAPI server pays for HTTP alone. Same process, so the CPU figures compare.
  const { createServer } = await import('node:http')
  const canned = JSON.stringify({ jsonrpc: '2.0', result: sim.db.get(vms[0]), id: 1 })
  const bare = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(canned) })
      res.end(canned)
    })
  })
  await new Promise((r) => bare.listen(0, '127.0.0.1', r))
  process.stdout.write(
    JSON.stringify({
      bareUrl: `http://127.0.0.1:${bare.address().port}`,
      url: server.url,
      upMs,
      processUpMs: performance.now() + performance.timeOrigin - Number(process.env.BENCH_SPAWNED_AT),
      rss: process.memoryUsage().rss,
      heap: process.memoryUsage().heapUsed,
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      hosts: sim.db.count('host'),
      vmCount: vms.length,
      rows: sim.db.generation,
      sample: vms.filter((_, i) => i % 50 === 0),
    }) + '\n',
  )
  // "cpu" on stdin → the server's CPU time so far (µs), so the parent can report CPU per call independent of load.
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l === 'cpu') {
      const c = process.cpuUsage()
      process.stdout.write(JSON.stringify({ cpu: c.user + c.system }) + '\n')
    }
  })
  process.stdin.on('end', async () => {
    process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }) + '\n')
    bare.close()
    await server.close()
    process.exit(0)
  })
} else {
  const HOSTS = arg('hosts', 1000)
  const VMS = arg('vms', 50000)
  const SECONDS = arg('seconds', 3)
  const SAMPLES = arg('samples', 200)
  const child = spawn(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--child', '--hosts', String(HOSTS), '--vms', String(VMS)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, BENCH_SPAWNED_AT: String(performance.now() + performance.timeOrigin) },
    },
  )
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const info = JSON.parse((await lines.next()).value)
  const url = new URL(info.url)
  const MiB = 1024 * 1024
  const { loadavg, cpus } = await import('node:os')
  console.log(
    `xapi-sim benchmark — ${info.hosts} hosts, ${info.vmCount} VMs (${info.rows} database generations); ` +
      `${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)} at start`,
  )
  console.log(
    `  start-up: ${(info.processUpMs / 1000).toFixed(2)} s from spawn (${(info.upMs / 1000).toFixed(2)} s building + listening)` +
      `, ${(info.cpuMs / 1000).toFixed(2)} s CPU (all threads, GC included)` +
      `, RSS ${(info.rss / MiB).toFixed(0)} MiB (heap ${(info.heap / MiB).toFixed(0)} MiB)` +
      `   [targets < 5 s, < 1024 MiB]`,
  )

  const post = (agent, path, body, contentType) =>
    new Promise((resolve, reject) => {
      const req = request(
        { agent, host: url.hostname, port: url.port, path, method: 'POST', headers: { 'content-type': contentType } },
        (res) => {
          const chunks = []
          res.on('data', (c) => chunks.push(c))
          res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  let id = 0
  const json = async (agent, method, params) => {
    const r = JSON.parse(
      await post(agent, '/jsonrpc', JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }), 'application/json'),
    )
    if (r.error) throw new Error(`${r.error.message} ${JSON.stringify(r.error.data)}`)
    return r.result
  }
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')
  const xml = async (agent, method, params) => {
    const body = `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params
      .map((p) => `<param><value>${esc(String(p))}</value></param>`)
      .join('')}</params></methodCall>`
    const r = await post(agent, '/', body, 'text/xml')
    if (!r.includes('<value>Success</value>')) throw new Error(`XML-RPC ${method} failed: ${r.slice(0, 300)}`)
    return r
  }

  const serverCpu = async () => {
    child.stdin.write('cpu\n')
    return JSON.parse((await lines.next()).value).cpu
  }
  const setup = new Agent({ keepAlive: true, maxSockets: 4 })
  const session = await json(setup, 'session.login_with_password', ['root', 'bench', '2.0', 'bench'])
  const vms = info.sample

  console.log(`  VM.get_record calls/s (${SECONDS} s each, keep-alive, random VMs):`)
  for (const transport of ['json-rpc', 'xml-rpc']) {
    const call = transport === 'json-rpc' ? json : xml
    const row = []
    // Warm-up (JIT on both sides): 1 s at 32 concurrency, not counted.
    const warm = new Agent({ keepAlive: true, maxSockets: 32 })
    const warmUntil = performance.now() + 1000
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (let i = w; performance.now() < warmUntil; i++)
          await call(warm, 'VM.get_record', [session, vms[i % vms.length]])
      }),
    )
    warm.destroy()
    for (const conc of [1, 32, 256]) {
      const agent = new Agent({ keepAlive: true, maxSockets: conc })
      let done = 0
      let errors = 0
      const cpu0 = await serverCpu()
      const until = performance.now() + SECONDS * 1000
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: conc }, async (_, w) => {
          let i = w * 7919
          while (performance.now() < until) {
            try {
              await call(agent, 'VM.get_record', [session, vms[i++ % vms.length]])
              done++
            } catch {
              errors++
            }
          }
        }),
      )
      const rate = done / ((performance.now() - t0) / 1000)
      const perCall = ((await serverCpu()) - cpu0) / Math.max(1, done)
      row.push(
        `${String(conc).padStart(3)}: ${Math.round(rate).toLocaleString('en-US').padStart(7)}` +
          ` (server ${perCall.toFixed(0)} µs CPU/call)${errors ? ` (${errors} errors)` : ''}`,
      )
      agent.destroy()
    }
    console.log(
      `    ${transport.padEnd(8)}  ${row.join('   ')}${transport === 'json-rpc' ? '   [target ≥ 20,000 at 32]' : ''}`,
    )
  }

  // Peer: the bare HTTP server at 32 concurrency, same client.
  {
    const bareUrl = new URL(info.bareUrl)
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    const bpost = (body) =>
      new Promise((resolve, reject) => {
        const req = request(
          { agent, host: bareUrl.hostname, port: bareUrl.port, path: '/jsonrpc', method: 'POST' },
          (res) => {
            const chunks = []
            res.on('data', (c) => chunks.push(c))
            res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
          },
        )
        req.on('error', reject)
        req.end(body)
      })
    let done = 0
    const cpu0 = await serverCpu()
    const t0 = performance.now()
    const until = t0 + SECONDS * 1000
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (performance.now() < until) {
          await bpost(JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'VM.get_record', params: [session, vms[0]] }))
          done++
        }
      }),
    )
    const rate = done / ((performance.now() - t0) / 1000)
    const perCall = ((await serverCpu()) - cpu0) / Math.max(1, done)
    console.log(
      `    peer: bare node:http with a canned JSON record, 32: ${Math.round(rate).toLocaleString('en-US')}` +
        ` (server ${perCall.toFixed(0)} µs CPU/call) — the HTTP floor on this machine now`,
    )
    agent.destroy()
  }

  // event.from latency: one session blocks in event.from on the VM class, another changes a VM.
  const watcher = new Agent({ keepAlive: true, maxSockets: 1 })
  const changer = new Agent({ keepAlive: true, maxSockets: 1 })
  const s2 = await json(setup, 'session.login_with_password', ['root', 'bench', '2.0', 'bench-changer'])
  const pool = (await json(setup, 'pool.get_all', [session]))[0]
  let token = await json(setup, 'event.inject', [session, 'pool', pool])
  const lat = []
  for (let i = 0; i < SAMPLES; i++) {
    const vm = vms[(i * 13) % vms.length]
    let sent = 0
    const pending = (async () => {
      for (;;) {
        const r = await json(watcher, 'event.from', [session, ['vm'], token, 5.0])
        token = r.token
        const hit = r.events.find((e) => e.ref === vm && e.snapshot?.name_description === `bench ${i}`)
        if (hit) return performance.now()
      }
    })()
    await new Promise((r) => setTimeout(r, 2)) // let event.from park on the server
    sent = performance.now()
    await json(changer, 'VM.set_name_description', [s2, vm, `bench ${i}`])
    lat.push((await pending) - sent)
  }
  lat.sort((a, b) => a - b)
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2)
  console.log(
    `  event.from latency over ${SAMPLES} changes: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms   [target p99 < 20 ms]`,
  )

  setup.destroy()
  watcher.destroy()
  changer.destroy()
  child.stdin.end()
  const last = JSON.parse((await lines.next()).value)
  console.log(`  server RSS after the runs: ${(last.rss / MiB).toFixed(0)} MiB`)
  await new Promise((r) => child.on('exit', r))
}
