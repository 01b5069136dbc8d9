/**
 * The XenServer pool the main job (`npm start`) runs: a 2-host lab wired to its own simulated pool when the machine
 * allows it (root, namespaces), otherwise the default simulator alone — one simulator either way, and the output
 * says which node-level steps cannot run without the lab.
 */
import { generatePassword, startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { Lab, preflight } from './lab/lab.js'
import { registerMainJobServices } from './main-job.js'

/** The running pool, for the services started after it (the server makes the demo environment on it). */
export const mainPool: { lab?: Lab; sim?: SimServer; simPassword?: string } = {}

registerMainJobServices(async () => {
  let lab: Lab | undefined
  let sim: SimServer | undefined
  return [
    {
      name: 'pool',
      async start() {
        let labUnavailable: string | undefined
        try {
          await preflight()
        } catch (e) {
          labUnavailable = (e as Error).message
        }
        if (labUnavailable === undefined) {
          lab = await Lab.up({ name: process.env.XENSTACK_LAB_NAME ?? 'demo', hosts: 2, simulator: true })
          mainPool.lab = lab
          return {
            mode: 'lab',
            simulator: {
              url: lab.simulator!.url,
              username: lab.simulator!.username,
              password: lab.simulator!.password,
            },
            ssh: `ssh -F ${lab.sshConfigFile} <host>`,
            hosts: Object.fromEntries(lab.hosts.map((h) => [h.name, h.ssh.host])),
            httpProbe: lab.httpProbeUrl(),
          }
        }
        const password = process.env.XENSTACK_SIM_PASSWORD ?? generatePassword()
        sim = await startSimServer({
          listen: process.env.XENSTACK_SIM_LISTEN ?? '127.0.0.1:0',
          state: process.env.XENSTACK_SIM_STATE ?? '.state/sim',
          password,
        })
        mainPool.sim = sim
        mainPool.simPassword = password
        return {
          mode: 'simulator only',
          simulator: { url: sim.url, username: 'root', password, state: sim.stateDir },
          note: `the lab cannot start (${labUnavailable}): node-level steps (SSH, iptables, routes, Glance) cannot run`,
        }
      },
      async stop() {
        await lab?.down()
        await sim?.close()
      },
    },
  ]
})
