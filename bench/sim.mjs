#!/usr/bin/env node
// Simulator benchmark (issue 4): a generated pool of 1,000 hosts and 50,000 VMs in a child process.
// Prints: start-up time (process start → listening, incl. building the pool) and the child's RSS; VM.get_record
// calls/s with 1, 32 and 256 concurrent clients over JSON-RPC and XML-RPC (keep-alive HTTP/1.1, random VMs);
// event.from latency from sending a change (VM.set_name_description by another session) to the blocked
// event.from returning it, p50/p99 over --samples changes.
// Targets on a 2-core machine: ≥ 20,000 calls/s JSON-RPC at 32 concurrency; pool up < 5 s and < 1 GiB RSS;
// p99 event latency < 20 ms. The load generator shares the machine with the server: figures are end to end, so the
// server's and the generator's CPU time per call are printed too (figures that depend much less on what else runs).
// Two peers in the same child give the floors: a bare node:http server and a node:net server with a minimal reader,
// both answering a canned record of the same size (the node:net one at 1 and 32 connections, answers written at once).
//
// Session 5 (2026-11-22; the machine was never quiet, load 2.6-14): the simulator now writes the answers of one
// event-loop turn together when they go to several connections (packages/xapi-sim/README.md, Performance), so a
// waiting client is woken once per batch. JSON-RPC get_record at 32 connections went from 43-49 to 31-38 µs of server
// CPU per call (side by side with the session's starting build at load 12-14: 62 -> 36 µs); at 1 connection it is
// unchanged within noise (47-61 µs; the node:net floor 34-45 µs). JSON-RPC at 32 in six runs: 23,791/s at load 2.4
// (36/29 µs), 19,228/s at 9.1 (28/24 µs, level with the node:net floor's 19,333/s in the same run), 13,323-17,645/s
// at 2.6-13; a 32-connection generator alone against the child reached 23,249/s at load 4.3.
//
// The load generator is wrk-style: N keep-alive HTTP/1.1 connections, one request in flight on each (no
// pipelining), every request with the fields an undici client (xen-api, @xenstack/xenapi) sends — host, connection,
// content-type, content-length — and every response parsed (status, content-length, framing, body checked in its
// bytes for a success envelope holding a record). Requests are assembled from per-VM pieces made once, with a fresh
// JSON-RPC id each; checking bytes in place instead of decoding each ~2.6 KB body cut the generator's CPU per call
// by a third (it shares the two cores with the server). A node:http client (http.Agent) costs the generator
// ~200-500 µs of CPU per call, several times the server's cost, so it would measure the client; its figure at 32 is
// printed once for comparison.
//
// The server answers get_record from its record caches (packages/xapi-sim/README.md, "Record caches"): the first
// call for a VM serialises it, later ones copy cached bytes. The sample is 1,000 VMs (every 50th), so the caches are
// warm after the 1 s warm-up per variant; the last line says how many VM rows held a cached encoding at the end.
// --every 1 asks for all 50,000 VMs in turn instead: most calls then serialise a record the caches have not seen (a
// 3 s run at ~20,000/s visits each VM about once), the figure for a client walking the whole pool.
// Nothing here asserts. Build first (npx tsc -b packages/xapi-sim), then:
//   node bench/sim.mjs [--hosts 1000] [--vms 50000] [--seconds 3] [--samples 200] [--every 50]
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { connect } from 'node:net'
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
  // The floor under any Node server here: node:net, a minimal reader (head end, Content-Length) and the same canned
  // answer written at once for each request — no parsing, no dispatch, no stream of its own.
  const { createServer: createNetServer } = await import('node:net')
  const cannedAnswer = Buffer.from(
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(canned)}\r\n\r\n${canned}`,
  )
  const raw = createNetServer({ noDelay: true }, (s) => {
    let held
    s.on('error', () => s.destroy())
    s.on('data', (d) => {
      let buf = held === undefined ? d : Buffer.concat([held, d])
      held = undefined
      for (;;) {
        const he = buf.indexOf('\r\n\r\n')
        if (he < 0) return void (held = buf)
        const end = he + 4 + Number(/content-length: *(\d+)/i.exec(buf.toString('latin1', 0, he))[1])
        if (buf.length < end) return void (held = buf)
        s.write(cannedAnswer)
        if (buf.length === end) return
        buf = buf.subarray(end)
      }
    })
  })
  await new Promise((r) => raw.listen(0, '127.0.0.1', r))
  process.stdout.write(
    JSON.stringify({
      bareUrl: `http://127.0.0.1:${bare.address().port}`,
      rawUrl: `http://127.0.0.1:${raw.address().port}`,
      url: server.url,
      upMs,
      processUpMs: performance.now() + performance.timeOrigin - Number(process.env.BENCH_SPAWNED_AT),
      rss: process.memoryUsage().rss,
      heap: process.memoryUsage().heapUsed,
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      hosts: sim.db.count('host'),
      vmCount: vms.length,
      rows: sim.db.generation,
      sample: vms.filter((_, i) => i % arg('every', 50) === 0),
    }) + '\n',
  )
  // "cpu" on stdin → the server's CPU time so far (µs), so the parent can report CPU per call independent of load.
  createInterface({ input: process.stdin }).on('line', (l) => {
    if (l === 'lean on' || l === 'lean off') {
      for (const p of server.pools) p.sim.http.leanRpc = l === 'lean on'
      process.stdout.write(JSON.stringify({ lean: l === 'lean on' }) + '\n')
    } else if (l === 'cpu') {
      const c = process.cpuUsage()
      process.stdout.write(JSON.stringify({ cpu: c.user + c.system }) + '\n')
    }
  })
  process.stdin.on('end', async () => {
    // How warm the record caches are: VM rows holding a current JSON / XML-RPC encoding (as bytes or as text).
    const cache = { vms: 0, json: 0, xml: 0 }
    for (const row of sim.db.table('VM').values()) {
      cache.vms++
      if (row.jsonGen === row.gen && (row.json !== undefined || row.jsonBytes !== undefined)) cache.json++
      if (row.xmlGen === row.gen && (row.xml !== undefined || row.xmlBytes !== undefined)) cache.xml++
    }
    process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss, wire: sim.http.wireStats, cache }) + '\n')
    bare.close()
    raw.close()
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
    [
      '--expose-gc',
      fileURLToPath(import.meta.url),
      '--child',
      '--hosts',
      String(HOSTS),
      '--vms',
      String(VMS),
      '--every',
      String(arg('every', 50)),
    ],
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
  const CRLFCRLF = Buffer.from('\r\n\r\n')
  const CONTENT_LENGTH = Buffer.from('\r\ncontent-length:')
  /** The Content-Length of a response head ending at `he` (-1 when missing), read from the bytes. */
  const contentLength = (buf, he) => {
    let at = buf.indexOf(CONTENT_LENGTH)
    if (at < 0 || at > he) {
      // Not spelt in lower case (node:http keeps the case a server gives): the slow way.
      const m = /\r\ncontent-length: *(\d+)/i.exec(buf.toString('latin1', 0, he))
      return m ? Number(m[1]) : -1
    }
    at += CONTENT_LENGTH.length
    while (buf[at] === 32) at++
    let n = 0
    const from = at
    for (let c = buf[at]; c >= 48 && c <= 57; c = buf[++at]) n = n * 10 + c - 48
    return at === from ? -1 : n
  }
  /**
   * The lean generator: `conc` keep-alive connections to `target`, each sending `request(i)` (a complete HTTP/1.1
   * request, see `requests`) and waiting for the answer before the next request; `check(buf, from, to)` judges each
   * answer's body bytes in place. Runs `seconds`; returns { done, errors, ms, clientCpu } (client CPU in µs).
   */
  const leanLoad = (target, conc, seconds, request, check) =>
    new Promise((resolve) => {
      let done = 0
      let errors = 0
      let open = conc
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      const until = t0 + seconds * 1000
      const finish = () => {
        if (--open > 0) return
        const c = process.cpuUsage(c0)
        resolve({ done, errors, ms: performance.now() - t0, clientCpu: c.user + c.system })
      }
      for (let w = 0; w < conc; w++) {
        const sock = connect(Number(target.port), target.hostname)
        sock.setNoDelay(true)
        let i = w * 7919
        let buf
        let need = -1 // body bytes still expected once a head is parsed
        let bodyAt = 0
        let status = 0
        const send = () => sock.write(request(i++))
        sock.on('connect', send)
        sock.on('error', () => {
          errors++
          sock.destroy()
        })
        sock.on('close', finish)
        sock.on('data', (d) => {
          buf = buf === undefined ? d : Buffer.concat([buf, d])
          if (need < 0) {
            const he = buf.indexOf(CRLFCRLF)
            if (he < 0) return
            status = (buf[9] - 48) * 100 + (buf[10] - 48) * 10 + (buf[11] - 48)
            need = contentLength(buf, he)
            if (need < 0) {
              errors++
              return sock.destroy()
            }
            bodyAt = he + 4
          }
          const end = bodyAt + need
          if (buf.length < end) return
          if (buf.length !== end) {
            errors++ // an unasked-for byte: the server broke the one-in-flight framing
            return sock.destroy()
          }
          const ok = status === 200 && check(buf, bodyAt, end)
          buf = undefined
          need = -1
          if (ok) done++
          else errors++
          if (performance.now() < until) send()
          else sock.end()
        })
      }
    })

  const serverCpu = async () => {
    child.stdin.write('cpu\n')
    return JSON.parse((await lines.next()).value).cpu
  }
  const setup = new Agent({ keepAlive: true, maxSockets: 4 })
  const session = await json(setup, 'session.login_with_password', ['root', 'bench', '2.0', 'bench'])
  const vms = info.sample

  /**
   * Request makers per transport for a target: request(i) is the i-th request, for VM vms[i % vms.length], as an
   * undici client sends it (host, connection, content-type, content-length). Built from per-VM pieces made once:
   * the JSON-RPC body is exactly JSON.stringify({ jsonrpc, method, params, id }) with a fresh id each time.
   */
  const requests = {
    'json-rpc': (target) => {
      const head =
        `POST /jsonrpc HTTP/1.1\r\nhost: ${target.host}\r\nconnection: keep-alive\r\n` +
        'content-type: application/json\r\ncontent-length: '
      const pieces = vms.map((vm) => {
        const p = JSON.stringify({ jsonrpc: '2.0', method: 'VM.get_record', params: [session, vm], id: 0 }).slice(0, -2)
        return [p, Buffer.byteLength(p)]
      })
      return (i) => {
        const [p, n] = pieces[i % pieces.length]
        const ids = String(++id)
        return head + (n + ids.length + 1) + '\r\n\r\n' + p + ids + '}'
      }
    },
    'xml-rpc': (target) => {
      const all = vms.map((vm) => {
        const body = `<?xml version="1.0"?><methodCall><methodName>VM.get_record</methodName><params><param><value>${session}</value></param><param><value>${vm}</value></param></params></methodCall>`
        return (
          `POST / HTTP/1.1\r\nhost: ${target.host}\r\nconnection: keep-alive\r\ncontent-type: text/xml\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
        )
      })
      return (i) => all[i % all.length]
    },
  }
  // A success envelope holding a record, checked in the received bytes (decoding each body, or a full JSON.parse
  // of each record, cost the generator more than the server's whole answer; the generator shares the machine).
  const needle = (text) => Buffer.from(text)
  const JSON_OK = needle('{"jsonrpc":"2.0","result":{')
  const JSON_UUID = needle('"uuid":"')
  const XML_OK = needle('<value>Success</value>')
  const XML_UUID = needle('<name>uuid</name>')
  const within = (buf, n, from, to) => {
    const at = buf.indexOf(n, from)
    return at >= 0 && at + n.length <= to
  }
  const checks = {
    'json-rpc': (buf, from, to) =>
      to - from >= JSON_OK.length &&
      buf.compare(JSON_OK, 0, JSON_OK.length, from, from + JSON_OK.length) === 0 &&
      within(buf, JSON_UUID, from, to),
    'xml-rpc': (buf, from, to) => within(buf, XML_OK, from, to) && within(buf, XML_UUID, from, to),
  }
  const fmt = (n) => Math.round(n).toLocaleString('en-US')

  console.log(
    `  VM.get_record calls/s (${SECONDS} s each; keep-alive connections, one call in flight on each, random VMs;` +
      ` µs = CPU per call of the server / of the load generator; 'node:http': the same with the lean reader off):`,
  )
  const setLean = async (on) => {
    child.stdin.write(on ? 'lean on\n' : 'lean off\n')
    await lines.next()
  }
  // Each figure is measured twice, with the simulator's lean HTTP reader (http-wire.ts) and with every request on
  // node:http (its front before the reader). Transports and fronts take turns in short blocks, so that all four see
  // the same load and the same state of the server's heap (the first seconds after building a 50,000-VM pool are
  // slower: the measured order used to favour whatever ran last).
  const BLOCKS = 3
  const variants = ['json-rpc', 'xml-rpc'].flatMap((transport) => [
    { transport, on: true },
    { transport, on: false },
  ])
  const makers = { 'json-rpc': requests['json-rpc'](url), 'xml-rpc': requests['xml-rpc'](url) }
  const load = (v, conc, seconds) => leanLoad(url, conc, seconds, makers[v.transport], checks[v.transport])
  // Warm-up (JIT on both sides): 1 s at 32 concurrency per variant, not counted.
  for (const v of variants) {
    await setLean(v.on)
    await load(v, 32, 1)
  }
  const rows = new Map(variants.map((v) => [v, []]))
  for (const conc of [1, 32, 256]) {
    const sums = new Map(variants.map((v) => [v, { done: 0, errors: 0, ms: 0, client: 0, server: 0 }]))
    for (let b = 0; b < BLOCKS; b++) {
      // Rotate the order per block: no variant always runs first.
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(k + b) % variants.length]
        await setLean(v.on)
        const cpu0 = await serverCpu()
        const r = await load(v, conc, SECONDS / BLOCKS)
        const x = sums.get(v)
        x.server += (await serverCpu()) - cpu0
        x.done += r.done
        x.errors += r.errors
        x.ms += r.ms
        x.client += r.clientCpu
      }
    }
    for (const v of variants) {
      const x = sums.get(v)
      rows
        .get(v)
        .push(
          `${String(conc).padStart(3)}: ${fmt(x.done / (x.ms / 1000)).padStart(6)}` +
            ` (${(x.server / Math.max(1, x.done)).toFixed(0)}/${(x.client / Math.max(1, x.done)).toFixed(0)} µs)` +
            (x.errors ? ` (${x.errors} errors)` : ''),
        )
    }
  }
  await setLean(true)
  for (const v of variants) {
    const label = v.on ? `    ${v.transport.padEnd(8)}  ` : '      node:http '
    const target = v.on && v.transport === 'json-rpc' ? '   [target ≥ 20,000 at 32]' : ''
    console.log(label + rows.get(v).join('   ') + target)
  }

  // The same calls from a node:http client (http.Agent, keep-alive), 32 in flight: what a plain Node client sees.
  {
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    let done = 0
    const cpu0 = await serverCpu()
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const until = t0 + SECONDS * 1000
    await Promise.all(
      Array.from({ length: 32 }, async (_, w) => {
        for (let i = w * 7919; performance.now() < until; i++) {
          await json(agent, 'VM.get_record', [session, vms[i % vms.length]])
          done++
        }
      }),
    )
    const rate = done / ((performance.now() - t0) / 1000)
    const c = process.cpuUsage(c0)
    console.log(
      `    json-rpc from a node:http client (http.Agent), 32: ${fmt(rate)}` +
        ` (${(((await serverCpu()) - cpu0) / done).toFixed(0)}/${((c.user + c.system) / done).toFixed(0)} µs)`,
    )
    agent.destroy()
  }

  // Peer: a bare node:http server answering a canned record of the same size, same lean generator, 32 connections.
  {
    const bareUrl = new URL(info.bareUrl)
    const cpu0 = await serverCpu()
    const r = await leanLoad(bareUrl, 32, SECONDS, requests['json-rpc'](bareUrl), checks['json-rpc'])
    const perCall = ((await serverCpu()) - cpu0) / Math.max(1, r.done)
    console.log(
      `    peer: bare node:http with a canned JSON record, 32: ${fmt(r.done / (r.ms / 1000))}` +
        ` (${perCall.toFixed(0)}/${(r.clientCpu / r.done).toFixed(0)} µs) — node:http's floor on this machine now`,
    )
  }
  // Peer: the canned answer from node:net with a minimal reader (no node:http), at 1 and 32 connections.
  {
    const rawUrl = new URL(info.rawUrl)
    const figures = []
    for (const conc of [1, 32]) {
      const cpu0 = await serverCpu()
      const r = await leanLoad(rawUrl, conc, SECONDS, requests['json-rpc'](rawUrl), checks['json-rpc'])
      const perCall = ((await serverCpu()) - cpu0) / Math.max(1, r.done)
      figures.push(
        `${conc}: ${fmt(r.done / (r.ms / 1000))} (${perCall.toFixed(0)}/${(r.clientCpu / Math.max(1, r.done)).toFixed(0)} µs)`,
      )
    }
    console.log(
      `    peer: node:net, canned answer written at once, ${figures.join('   ')} — a Node server's floor here`,
    )
  }

  // event.from latency: one session blocks in event.from on the VM class, another changes a VM.
  const watcher = new Agent({ keepAlive: true, maxSockets: 1 })
  const changer = new Agent({ keepAlive: true, maxSockets: 1 })
  const s2 = await json(setup, 'session.login_with_password', ['root', 'bench', '2.0', 'bench-changer'])
  const pool = (await json(setup, 'pool.get_all', [session]))[0]
  let token = await json(setup, 'event.inject', [session, 'pool', pool])
  let change = 0
  /** One sample: ms from sending VM.set_name_description to the blocked event.from returning that change. */
  const eventLatency = async () => {
    const i = change++
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
    return (await pending) - sent
  }
  const quantiles = (lat) => {
    lat.sort((a, b) => a - b)
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2)
    return `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms`
  }
  const lat = []
  for (let i = 0; i < SAMPLES; i++) lat.push(await eventLatency())
  console.log(`  event.from latency over ${SAMPLES} changes: ${quantiles(lat)}   [target p99 < 20 ms]`)
  // The same during a JSON-RPC get_record load of 32 connections: both event loops are busy then — the server's, and
  // this process's, which runs the generator too — so this is an upper bound on what a watcher sees on a busy pool.
  {
    let loading = true
    const loaded = leanLoad(url, 32, SECONDS, makers['json-rpc'], checks['json-rpc']).then((r) => {
      loading = false
      return r
    })
    const busy = []
    while (loading && busy.length < SAMPLES) busy.push(await eventLatency())
    const r = await loaded
    console.log(
      `  event.from latency during ${fmt(r.done / (r.ms / 1000))} get_record calls/s (32 connections): ` +
        `${quantiles(busy)} over ${busy.length} changes`,
    )
  }

  setup.destroy()
  watcher.destroy()
  changer.destroy()
  child.stdin.end()
  const last = JSON.parse((await lines.next()).value)
  console.log(
    `  server RSS after the runs: ${(last.rss / MiB).toFixed(0)} MiB; lean HTTP reader: ${fmt(last.wire.leanAnswers)}` +
      ` requests answered, ${fmt(last.wire.handedOff)} connections handed to node:http (the 'node:http' blocks)`,
  )
  console.log(
    `  record caches at the end: ${fmt(last.cache.json)} JSON and ${fmt(last.cache.xml)} XML-RPC encodings of` +
      ` ${fmt(last.cache.vms)} VM rows (the runs ask for ${fmt(vms.length)} VMs)`,
  )
  await new Promise((r) => child.on('exit', r))
}
