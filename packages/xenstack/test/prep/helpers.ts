// What the prep tests (devstack, private lab, gateway) share: playing the template netinstall, and a dom0 whose SSH
// host key is not pinned.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Xapi } from '@xenstack/xenapi'

/**
 * Runs `run` while playing the template netinstall: when the installer VM (other_config xenstack_devstack =
 * template-install) is Running, it powers it off, as the installer does once it has installed. Returns what `run`
 * returned and the installer VM's record as it ran (none if it never ran before `run` ended or `deadlineMs` passed).
 */
export async function playingNetinstall<T>(
  xapi: Xapi,
  deadlineMs: number,
  run: () => Promise<T>,
): Promise<{ result: T; installer?: Record<string, any> }> {
  let done = false
  const installer = (async () => {
    for (const deadline = Date.now() + deadlineMs; Date.now() < deadline && !done;) {
      const vms = (await xapi.call('VM.get_all_records')) as Record<string, any>
      const found = Object.entries(vms).find(
        ([, v]) => v.other_config?.xenstack_devstack === 'template-install' && v.power_state === 'Running',
      )
      if (found) {
        await xapi.call('VM.clean_shutdown', found[0])
        return found[1] as Record<string, any>
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    return undefined
  })()
  const result = await run().finally(() => (done = true))
  return { result, installer: await installer }
}

/**
 * `args` with the known_hosts file `pinned` replaced by an empty one in `dir`: dom0's host key is then not pinned
 * (the command must refuse it: no trust on first use). Returns the new args and the empty file.
 */
export function withUnpinnedKnownHosts(args: string[], pinned: string, dir: string): { args: string[]; file: string } {
  const file = join(dir, 'known_hosts')
  writeFileSync(file, '')
  return { args: args.map((a) => (a === pinned ? file : a)), file }
}
