// Child process for bench/xenapi-client.mjs: serves a simulated pool with N VMs (default 1000) on 127.0.0.1:0 and
// prints {"url": …} on stdout. Runs until its stdin closes, so the clients and the simulator never share an event loop.
import { createSimulator } from '@xenstack/xapi-sim'

const vms = Number(process.argv[2] ?? 1000)
const password = process.argv[3] ?? 'bench'
const sim = createSimulator({ password, pool: { hosts: 1, vms } })
const { url } = await sim.listen({ members: false })
process.stdout.write(JSON.stringify({ url, vms }) + '\n')
process.stdin.resume()
process.stdin.on('end', async () => {
  await sim.close()
  process.exit(0)
})
