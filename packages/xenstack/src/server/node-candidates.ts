/**
 * Node candidates of a pool: the machines an operator can add as nodes with their access records already known, so
 * the Nodes page adds them without typing an SSH key path or addresses. Today the one source is a lab on this
 * machine wired to the pool (its simulator names the XAPI pool after the lab, and the lab's `state.json` under the
 * labs directory holds each host's SSH access and addresses): its compute VMs, controllers and storage node, with the
 * same `data` as `lab up` registers (lab/environment.ts) — `lab`, `pool`, `xapiHost`, `vm` (the VM's ref as the pool
 * reports it), `ssh`, `addresses`, a compute VM's `dom0` and a controller's Glance. Other pools have no candidates:
 * their VMs' SSH access is not something XAPI tells.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Lab, labRoot } from '../lab/lab.js'
import type { PoolInventory } from './pools.js'

export interface NodeCandidate {
  name: string
  /** What the machine is in its lab (compute, controller, storage): a hint for the roles, not roles. */
  kind: string
  source: 'lab'
  data: Record<string, unknown>
}

/** The Glance port a lab service listens on when its spec gives none (lab/glance-service.ts). */
const GLANCE_DEFAULT_PORT = 9292

export function nodeCandidates(pools: PoolInventory, pool: string, root?: string): NodeCandidate[] {
  const labName = pools.xapiPoolName(pool)
  const inv = pools.inventory(pool)
  if (!labName || !inv || !/^[a-z0-9][a-z0-9-]*$/i.test(labName)) return []
  if (!existsSync(join(labRoot(root), labName, 'state.json'))) return []
  let lab: Lab
  try {
    lab = Lab.attach(labName, root)
  } catch {
    return [] // the lab went down between the check and the read
  }
  const hostRef = (xapiHost: string | null) => inv.hosts.find((h) => h.name === xapiHost)?.ref
  // the lab's simulator marks each compute VM with its lab host (simulator-link.ts); its name is the host's too
  const vmRef = (host: string) =>
    inv.vms.find((v) => (v.otherConfig as Record<string, string> | undefined)?.['xenstack-lab-host'] === host)?.ref
  // a lab pool named after a lab whose compute VMs it does not have is another pool under the same name
  const computes = lab.hosts.filter((h) => h.role === 'compute')
  if (computes.length && !computes.every((h) => vmRef(h.name))) return []
  const services =
    (
      lab as unknown as {
        state: { env: { services?: { kind: string; host?: string; options?: { port?: number } }[] } }
      }
    ).state.env.services ?? []
  return lab.hosts
    .filter((h) => h.role !== 'dom0')
    .map((h) => {
      const dom0 =
        h.role === 'compute' ? lab.hosts.find((d) => d.role === 'dom0' && d.xapiHost === h.xapiHost) : undefined
      // a service without a host runs on the first controller (lab/services.ts)
      const firstController = lab.hosts.find((x) => x.role === 'controller')?.name
      const glance = services.find((s) => s.kind === 'glance' && (s.host ?? firstController) === h.name)
      const port = glance?.options?.port ?? GLANCE_DEFAULT_PORT
      const addresses = Object.fromEntries(Object.entries(h.addresses).filter(([, v]) => v)) as Record<string, string>
      return {
        name: h.name,
        kind: h.role,
        source: 'lab' as const,
        data: {
          lab: lab.name,
          pool,
          xapiHost: h.xapiHost,
          vm: h.role === 'compute' ? vmRef(h.name) : undefined,
          ssh: h.ssh,
          addresses,
          ...(dom0
            ? { dom0: { name: dom0.name, xapiHost: dom0.xapiHost, host: hostRef(dom0.xapiHost), ssh: dom0.ssh } }
            : {}),
          ...(glance ? { glance: { url: `http://${h.ssh.host}:${port}` } } : {}),
        },
      }
    })
}
