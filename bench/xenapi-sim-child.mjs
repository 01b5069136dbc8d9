// Child process for bench/xenapi-*.mjs: serves a simulated pool with N VMs (default 1000) on 127.0.0.1:0 — the
// full simulator server (disk handlers, plugins) — and prints {"url": …} on stdout. Runs until its stdin closes, so
// the clients and the simulator never share an event loop or a heap.
import { startSimServer } from '@xenstack/xapi-sim'

const vms = Number(process.argv[2] ?? 1000)
const password = process.argv[3] ?? 'bench'
const server = await startSimServer({ hosts: 1, vms, password })
process.stdout.write(JSON.stringify({ url: server.url, vms }) + '\n')
process.stdin.resume()
process.stdin.on('end', async () => {
  await server.close()
  process.exit(0)
})
