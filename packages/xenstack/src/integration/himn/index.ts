/**
 * HIMN's native tasks (compute role, in this order): attach the compute VM to the host internal management network
 * through XAPI, configure the interface in the guest, pre-test the host, establish SSH trust to dom0.
 * Each runs only in `run` (XAPI calls and guest checks that decide what to change), so a dry run changes nothing;
 * each is idempotent, and reports `unchanged` on a second run.
 */
import { readFile } from 'node:fs/promises'
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import { FileKnownHostsStore, SshExecutor } from '../../node/index.js'
import type { ResourceChange } from '../../engine/types.js'
import { computeVmOf, execOf, nodeDataOf, xapiOf, xenserverSettings } from '../context.js'
import { HimnAttacher, HIMN_MAC_KEY } from './attach.js'
import { configureHimnGuest } from './guest.js'
import { hostOfVm, preTest } from './pretest.js'
import { establishSshTrust } from './ssh-trust.js'

export { HimnAttacher, HimnError, HIMN_MAC_KEY, type HimnStatus, type HimnChange } from './attach.js'
export { configureHimnGuest, findHimnInterface, HimnGuestError } from './guest.js'
export { preTest, PreTestError, checkPlatform, checkDefaultSr, checkXapiOverHimn } from './pretest.js'
export { establishSshTrust, SshTrustError } from './ssh-trust.js'

const himnAttach: NativeTask = {
  async run(ctx) {
    const xapi = xapiOf(ctx)
    const vm = await computeVmOf(ctx, xapi)
    const r = await new HimnAttacher(xapi, { log: ctx.log }).add(vm.ref, {
      allowRestart: xenserverSettings(ctx).allowVmRestart,
      signal: ctx.signal,
    })
    return [
      {
        resource: `HIMN VIF ${r.vif?.device ?? '?'} of VM ${vm.name}`,
        result: r.changed ? 'changed' : 'unchanged',
        diff: r.actions.length ? r.actions.map((a) => `~ ${a}`).join('\n') : undefined,
      },
    ]
  },
}

const himnGuest: NativeTask = {
  async run(ctx) {
    const r = await configureHimnGuest(execOf(ctx), {
      log: ctx.log,
      // the guest's xenstore-read first; XAPI's copy of xenstore_data when the guest has no xenstore tools
      macFromXapi: async () => {
        if (!ctx.xapi) return null
        const xapi = xapiOf(ctx)
        const vm = await computeVmOf(ctx, xapi)
        const data = (await xapi.call('VM.get_xenstore_data', vm.ref)) as Record<string, string>
        return data[HIMN_MAC_KEY]?.toLowerCase() ?? null
      },
    })
    return r.changes as ResourceChange[]
  },
}

const preTestTask: NativeTask = {
  async run(ctx) {
    const xapi = xapiOf(ctx)
    const vm = await computeVmOf(ctx, xapi)
    const s = xenserverSettings(ctx)
    const lines = await preTest({
      xapi,
      exec: execOf(ctx),
      host: await hostOfVm(xapi, vm.ref),
      username: s.username,
      password: s.password,
    })
    for (const l of lines) ctx.log(l)
    return []
  },
}

/**
 * The deployer's own SSH access to dom0 when the node's record has one (`dom0.ssh`: host, identityFile and a
 * knownHostsFile — the host key is verified, never trusted on first use), else undefined.
 */
async function directDom0(ctx: NativeTaskContext): Promise<SshExecutor | undefined> {
  const ssh = nodeDataOf(ctx).dom0?.ssh as
    { host?: string; port?: number; user?: string; identityFile?: string; knownHostsFile?: string } | undefined
  if (!ssh?.host || !ssh.identityFile || !ssh.knownHostsFile) return undefined
  return new SshExecutor({
    host: ssh.host,
    port: ssh.port,
    username: ssh.user ?? 'root',
    privateKey: await readFile(ssh.identityFile),
    knownHosts: new FileKnownHostsStore(ssh.knownHostsFile),
    name: `${nodeDataOf(ctx).dom0?.name ?? 'dom0'} (direct)`,
    persistentShell: false,
  })
}

const sshTrust: NativeTask = {
  async run(ctx: NativeTaskContext) {
    const s = xenserverSettings(ctx)
    const data = nodeDataOf(ctx)
    const direct = await directDom0(ctx)
    try {
      const r = await establishSshTrust(execOf(ctx), {
        computeName: ctx.node,
        dom0Name: data.dom0?.name ?? data.dom0?.xapiHost ?? data.xapiHost ?? undefined,
        username: s.username,
        password: s.password,
        direct,
        expectedFingerprints: Array.isArray(data.dom0?.hostKeyFingerprints)
          ? (data.dom0.hostKeyFingerprints as string[])
          : undefined,
        log: ctx.log,
      })
      return r.changes
    } finally {
      await direct?.close()
    }
  },
}

/** This area's native tasks, by handler name (`xenserver.<step>`). */
export const natives: Record<string, NativeTask> = {
  'xenserver.himn-attach': himnAttach,
  'xenserver.himn-guest': himnGuest,
  'xenserver.pre-test': preTestTask,
  'xenserver.ssh-trust': sshTrust,
}
