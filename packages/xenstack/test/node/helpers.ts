/** Shared helpers for the tests on lab hosts: the lab prerequisite, SSH executors and the ssh command to lab hosts. */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { requirePrerequisite } from '@xenstack/testkit'
import { type Lab, preflight } from '../../src/lab/index.js'
import { FileKnownHostsStore, type KnownHostsStore, SshExecutor } from '../../src/node/index.js'

export async function labPrerequisite(t: TestContext): Promise<boolean> {
  let missing: string | undefined
  try {
    await preflight()
  } catch (e) {
    missing = (e as Error).message
  }
  return requirePrerequisite(t, missing ?? 'lab', () => missing === undefined)
}

/** An SSH executor to a lab host, verifying its key against the lab's known_hosts (or the store given). */
export function sshTo(
  lab: Lab,
  host: string,
  options: {
    knownHosts?: KnownHostsStore
    trustOnFirstUse?: boolean
    log?: (m: string) => void
    persistentShell?: boolean
  } = {},
): SshExecutor {
  const h = lab.host(host)
  return new SshExecutor({
    host: h.ssh.host,
    port: h.ssh.port,
    username: h.ssh.user,
    privateKey: readFileSync(h.ssh.identityFile),
    knownHosts: options.knownHosts ?? new FileKnownHostsStore(h.ssh.knownHostsFile),
    name: host,
    ...(options.trustOnFirstUse !== undefined ? { trustOnFirstUse: options.trustOnFirstUse } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.persistentShell !== undefined ? { persistentShell: options.persistentShell } : {}),
  })
}

/** Runs argv on a lab host through the lab's own path (nsenter), independent of the executor under test. */
export async function onHost(lab: Lab, host: string, script: string): Promise<string> {
  const r = await lab.execOk(host, ['sh', '-c', script])
  return r.stdout
}

/** `cmd` on a lab host through the system's ssh with the lab's ssh config (what an operator types); its stdout. */
export async function sshWithLabConfig(lab: Lab, host: string, cmd: string): Promise<string> {
  const r = await promisify(execFile)('ssh', ['-F', lab.sshConfigFile, host, cmd], { timeout: 20000 })
  return r.stdout
}
