/**
 * Passwordless SSH among a pool's dom0s (reference §18.1): nova's resize and cold migration rsync VHDs from one
 * dom0 to another's /images over ssh (`migration.py transfer_vhd`), as root with the default identity. Each dom0
 * gets a key pair (kept if it has one), every other dom0's public key in root's authorized_keys, and every other
 * dom0's host key pinned in root's known_hosts under the address the others use for it (XAPI's host address) —
 * so no first connection is ever trusted blindly.
 *
 * Two phases over the dom0s' executors: keys first (each dom0 makes its own; private keys never leave it), then the
 * exchange of public parts. Both are resources: a second run changes nothing, a dry run only plans.
 */
import type { ResourceChange } from '../../engine/types.js'
import { AuthorizedKey, CommandResource, KnownHost, type Executor, type Resource } from '../../node/index.js'
import { converge } from './converge.js'

export const DOM0_MESH_KEY = '/root/.ssh/id_rsa'

export interface PoolDom0 {
  /** For messages: the XenServer host name. */
  name: string
  /** The address the other dom0s reach it at (XAPI's `host.address`). */
  address: string
  exec: Executor
  /** sshd's public host keys on it (default /etc/ssh/ssh_host_*_key.pub, where dom0's sshd keeps them). */
  hostKeyGlob?: string
}

export const HOST_KEY_GLOB = '/etc/ssh/ssh_host_*_key.pub'

export interface Dom0Identity {
  /** Root's public key line, or undefined when it does not exist yet (dry run). */
  publicKey?: string
  /** sshd's host public keys (`type base64 [comment]`). */
  hostKeys: string[]
}

export function dom0KeyPair(): Resource {
  return new CommandResource({
    name: `root's key pair ${DOM0_MESH_KEY} (for dom0-to-dom0 migration)`,
    command: `mkdir -p /root/.ssh && chmod 700 /root/.ssh && ssh-keygen -q -t rsa -b 4096 -N '' -C "root@$(hostname)" -f ${DOM0_MESH_KEY}`,
    creates: `${DOM0_MESH_KEY}.pub`,
  })
}

export async function dom0Identity(dom0: Executor, hostKeyGlob = HOST_KEY_GLOB): Promise<Dom0Identity> {
  const r = await dom0.run(
    `cat ${DOM0_MESH_KEY}.pub 2>/dev/null; echo '--xenstack--'; cat ${hostKeyGlob} 2>/dev/null; true`,
  )
  const [own = '', host = ''] = r.stdout.split('--xenstack--\n')
  const hostKeys = host.split('\n').filter((l) => /^\S+\s+[A-Za-z0-9+/=]+/.test(l))
  if (hostKeys.length === 0) throw new Error(`${dom0.host}: no sshd host key in ${hostKeyGlob}`)
  const publicKey = own.trim() || undefined
  return { publicKey, hostKeys }
}

const HOST_KEY_PREFERENCE = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
]

/**
 * The host key to pin: one is enough, since OpenSSH prefers the algorithms it has a known key for (ed25519 first,
 * then ECDSA, then RSA — what dom0's sshd offers).
 */
export function preferredHostKey(hostKeys: readonly string[]): string | undefined {
  const rank = (k: string): number => {
    const i = HOST_KEY_PREFERENCE.indexOf(k.split(/\s+/)[0])
    return i < 0 ? HOST_KEY_PREFERENCE.length : i
  }
  return [...hostKeys].sort((a, b) => rank(a) - rank(b))[0]
}

/** What one dom0 needs to trust the others: their public keys authorised, their preferred host key pinned. */
export function trustResources(others: readonly (Pick<PoolDom0, 'name' | 'address'> & Dom0Identity)[]): Resource[] {
  const out: Resource[] = []
  for (const o of others) {
    if (o.publicKey) out.push(new AuthorizedKey({ key: o.publicKey }))
    const hostKey = preferredHostKey(o.hostKeys)
    if (hostKey) out.push(new KnownHost({ host: o.address, key: hostKey }))
  }
  return out
}

export async function dom0SshMesh(
  members: readonly PoolDom0[],
  opts: { dryRun?: boolean; log?: (line: string) => void } = {},
): Promise<ResourceChange[]> {
  const changes: ResourceChange[] = []
  for (const m of members) changes.push(...(await converge(m.exec, [dom0KeyPair()], opts)))
  const ids = await Promise.all(members.map(async (m) => ({ ...m, ...(await dom0Identity(m.exec, m.hostKeyGlob)) })))
  for (const m of ids) {
    const others = ids.filter((o) => o !== m)
    changes.push(...(await converge(m.exec, trustResources(others), opts)))
  }
  return changes
}
