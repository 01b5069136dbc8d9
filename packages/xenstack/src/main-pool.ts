/**
 * The XenServer pool the main job (`npm start`) runs: a 2-host lab wired to its own simulated pool when the machine
 * allows it (root, namespaces) and XENSTACK_LAB is not `off`, otherwise the default simulator alone — one simulator either way, and the output
 * says why there is no lab (the server's note says which deployment steps that costs).
 *
 * The lab runs what a deployment of the demo environment needs on its hosts: the controllers are Fuel controllers
 * (lab/controller-role.ts) and the first one runs a real Glance (the lab's `glance` service kind), where
 * `xenserver.test-image` uploads TestVM. Glance is started after the lab is up, so a Glance that is not installed
 * or does not start costs a note, not the whole lab.
 *
 * Stopping waits for a start still in progress (SIGINT while the lab comes up), then takes the lab down: its
 * namespaces, mounts and processes go with it.
 */
import { generatePassword, startSimServer, type SimServer } from '@xenstack/xapi-sim'
import { glanceInstalled } from './glance/server-config.js'
import { Lab, preflight } from './lab/lab.js'
import { loadLabServiceModules, startLabServices } from './lab/services.js'
import { registerMainJobServices } from './main-job.js'

/** The running pool, for the services started after it (the server makes the demo environment on it). */
export const mainPool: { lab?: Lab; sim?: SimServer; simPassword?: string } = {}

/** Starts Glance on the lab's first controller; a note instead when it cannot run. */
async function startGlance(lab: Lab): Promise<string | undefined> {
  if (!glanceInstalled())
    return 'python3-glance is not installed (./scripts/setup.sh): the lab has no Glance, so xenserver.test-image cannot upload TestVM'
  try {
    await loadLabServiceModules()
    lab.services = await startLabServices(lab, [{ kind: 'glance' }])
    return undefined
  } catch (e) {
    return `Glance did not start on the lab's controller, so xenserver.test-image cannot upload TestVM: ${(e as Error).message}`
  }
}

registerMainJobServices(async () => {
  let lab: Lab | undefined
  let sim: SimServer | undefined
  let starting: Promise<unknown> | undefined
  let stopRequested = false
  const start = async (): Promise<Record<string, unknown>> => {
    let labUnavailable: string | undefined
    if (process.env.XENSTACK_LAB === 'off') labUnavailable = 'XENSTACK_LAB=off'
    else
      try {
        await preflight()
      } catch (e) {
        labUnavailable = (e as Error).message
      }
    if (labUnavailable === undefined) {
      lab = await Lab.up({ name: process.env.XENSTACK_LAB_NAME ?? 'demo', hosts: 2, simulator: true })
      mainPool.lab = lab
      // stopped while the lab came up: do not start Glance only to stop it
      const glanceNote = stopRequested ? 'stopped before Glance started' : await startGlance(lab)
      const glance = lab.services.find((s) => s.kind === 'glance')
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
        ...(glance ? { glance: glance.adminUrl ?? glance.url } : {}),
        ...(glanceNote ? { note: glanceNote } : {}),
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
      // the server's note names the deployment steps this costs (main-server.ts)
      note: `the lab cannot start (${labUnavailable}): the pool is the simulator alone, with no nodes to reach`,
    }
  }
  return [
    {
      name: 'pool',
      start() {
        const p = start()
        starting = p
        return p
      },
      async stop() {
        // a lab still coming up is taken down once it is up (Lab.up removes what it made if it fails)
        stopRequested = true
        await starting?.catch(() => undefined)
        await lab?.down()
        await sim?.close()
      },
    },
  ]
})
