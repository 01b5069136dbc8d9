/**
 * `xenserver.compute-extras` (reference §8 steps 12 and 14): multipath's blacklist of xvd devices (multipathd
 * claimed the config drive, which then could not be unplugged; multipath restarts only when the file changed) and
 * the image-cache cleanup: the script and one root cron entry merged into the existing crontab (never replacing
 * it). neutron's rootwrap.conf `[xenapi]` (step 11) is written by `xenserver.neutron-agent` with the agent's own
 * file, so the agent restarts once when either changed, not once per task.
 */
import type { NativeTask, NativeTaskContext } from '../../engine/tasks.js'
import { CronEntry, FileResource, Service, type Executor, type Resource } from '../../node/index.js'
import { execOf } from '../context.js'
import { DESTROY_CACHED_IMAGES_PATH, DESTROY_CACHED_IMAGES_SCRIPT } from './destroy-cached-images.js'

export const MULTIPATH_CONF = '/etc/multipath.conf'
/** hd and xvd devices are never multipath devices (the original's pattern). */
export const XVD_DEVNODE = 'devnode "^(hd|xvd)[a-z]"'

/**
 * multipath.conf with xvd blacklisted, or `undefined` when it already is. An existing `devnode "^hd[a-z]"` line
 * is widened (the original's sed); an existing blacklist section gets the line; otherwise a section is added.
 */
export function blacklistXvd(text: string | undefined): string | undefined {
  const current = text ?? ''
  if (current.includes('"^(hd|xvd)[a-z]"')) return undefined
  if (/devnode\s+"\^hd\[a-z\]"/.test(current))
    return current.replace(/devnode(\s+)"\^hd\[a-z\]"/, 'devnode$1"^(hd|xvd)[a-z]"')
  const section = /^(\s*blacklist\s*\{[ \t]*)$/m.exec(current)
  if (section) {
    const at = section.index + section[0].length
    return `${current.slice(0, at)}\n    ${XVD_DEVNODE}${current.slice(at)}`
  }
  const base = current === '' || current.endsWith('\n') ? current : `${current}\n`
  return `${base}blacklist {\n    ${XVD_DEVNODE}\n}\n`
}

async function readIfPresent(exec: Executor, path: string): Promise<string | undefined> {
  const r = await exec.run(['cat', path], { allowedExitCodes: [0, 1] })
  return r.code === 0 ? r.stdout : undefined
}

export interface ComputeExtrasInputs {
  /** multipath.conf as it is on the node (undefined: absent). */
  multipathConf: string | undefined
}

export function computeExtrasResources(i: ComputeExtrasInputs): Resource[] {
  const out: Resource[] = []
  const multipath = blacklistXvd(i.multipathConf)
  // Unchanged content is still declared, so the mode is checked and a plan shows the file as converged.
  const multipathFile = new FileResource({
    path: MULTIPATH_CONF,
    content: multipath ?? i.multipathConf ?? '',
    mode: 0o644,
  })
  out.push(multipathFile, new Service({ name: 'multipath-tools', restartOn: [multipathFile] }))
  out.push(
    new FileResource({
      path: DESTROY_CACHED_IMAGES_PATH,
      content: DESTROY_CACHED_IMAGES_SCRIPT,
      mode: 0o700,
      owner: 'root',
    }),
    new CronEntry({
      name: 'nova image cache cleanup',
      user: 'root',
      schedule: '5 3 * * *',
      command: `${DESTROY_CACHED_IMAGES_PATH} --config-file=/etc/nova/nova-compute.conf >/dev/null 2>&1`,
    }),
  )
  return out
}

export async function computeExtrasInputsOf(ctx: NativeTaskContext): Promise<ComputeExtrasInputs> {
  return { multipathConf: await readIfPresent(execOf(ctx), MULTIPATH_CONF) }
}

export const computeExtras: NativeTask = {
  async resources(ctx) {
    return computeExtrasResources(await computeExtrasInputsOf(ctx))
  },
}
