/**
 * `xenserver.guest-tools` — the original's install-pv-tool, which ran `dpkg -i xe-guest-utilities_7.0.0-24_all.deb`
 * from the plugin. xenstack does not ship that package (Citrix's, not in Debian or Ubuntu), so this step checks
 * instead: the guest agent in the compute VM (xe-guest-utilities' xe-daemon, or the Rust xen-guest-agent), and
 * what XAPI sees (the VM's guest metrics report PV drivers). Without them the HIMN can only be attached by a
 * shutdown/start cycle of the VM and XAPI has no guest metrics: with the operator's consent
 * (allow_vm_restart) the deployment goes on with a warning, otherwise it stops and says how to install them.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import type { ResourceChange } from '../../engine/types.js'
import type { Executor } from '../../node/index.js'
import { computeVmOf, execOf, xapiOf, xenserverSettings } from '../context.js'

/** Where the guest agents install their daemon. */
export const GUEST_AGENT_PATHS = [
  '/usr/sbin/xe-daemon',
  '/usr/bin/xe-daemon',
  '/usr/sbin/xen-guest-agent',
  '/usr/bin/xen-guest-agent',
]

export const INSTALL_HINT =
  'install the XenServer guest tools in the compute VM: attach the guest-tools ISO to the VM (XenCenter/XCP-ng Center ' +
  '"Install tools", or `xe vm-cd-insert vm=<vm> cd-name=guest-tools.iso`), mount it and run Linux/install.sh; or install ' +
  "XCP-ng's xe-guest-utilities package, or the xen-guest-agent package where the distribution has it; then deploy again"

export async function guestAgentIn(exec: Executor): Promise<string | undefined> {
  const r = await exec.run(
    ['sh', '-c', `for f in ${GUEST_AGENT_PATHS.join(' ')}; do [ -x "$f" ] && echo "$f" && exit 0; done; exit 1`],
    {
      allowedExitCodes: [0, 1],
    },
  )
  return r.code === 0 ? r.stdout.trim() : undefined
}

/** The PV drivers version XAPI reports for the VM (`7.1.0`), or undefined when it reports none. */
export async function pvDriversSeenByXapi(xapi: Xapi, vmRef: string): Promise<string | undefined> {
  const metrics = String(await xapi.call('VM.get_guest_metrics', vmRef))
  if (!metrics || metrics === 'OpaqueRef:NULL') return undefined
  const g = (await xapi.call('VM_guest_metrics.get_record', metrics)) as {
    PV_drivers_version?: Record<string, string>
    PV_drivers_detected?: boolean
  }
  const v = g.PV_drivers_version ?? {}
  if (Object.keys(v).length > 0) return [v.major, v.minor, v.micro].filter((x) => x !== undefined).join('.')
  return g.PV_drivers_detected === true ? 'detected' : undefined
}

export async function checkGuestTools(ctx: NativeTaskContext): Promise<ResourceChange[]> {
  const agent = await guestAgentIn(execOf(ctx))
  let seen: string | undefined
  let xapiNote = ''
  if (ctx.xapi) {
    const xapi = xapiOf(ctx)
    const vm = await computeVmOf(ctx, xapi)
    seen = await pvDriversSeenByXapi(xapi, vm.ref)
    xapiNote = seen
      ? `; XAPI reports PV drivers ${seen} for VM ${vm.name}`
      : `; XAPI reports no PV drivers for VM ${vm.name}`
  }
  if (agent || seen) {
    ctx.log(`guest tools: ${agent ? `agent ${agent}` : 'no agent binary found'}${xapiNote}`)
    return [{ resource: 'guest tools', result: 'unchanged' }]
  }
  const message = `node ${ctx.node}: the XenServer guest tools are missing (none of ${GUEST_AGENT_PATHS.join(', ')}${xapiNote})`
  if (xenserverSettings(ctx).allowVmRestart) {
    ctx.log(
      `warning: ${message}; the HIMN will be attached with a shutdown/start cycle (allow_vm_restart is on). To avoid it: ${INSTALL_HINT}`,
    )
    return [{ resource: 'guest tools', result: 'unchanged', diff: 'missing (warning)' }]
  }
  throw new Error(`${message}: ${INSTALL_HINT} (or allow restarting compute VMs in the XenServer settings)`)
}

export const guestTools: NativeTask = {
  // Only reads: on a dry run it would check the same things, so it runs in run() (skipped on dry run).
  run: checkGuestTools,
}
