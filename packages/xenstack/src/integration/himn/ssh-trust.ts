/**
 * SSH trust from the compute VM to its dom0 over the HIMN: a key of the compute VM's own (`/root/.ssh/xs_rsa`,
 * kept across runs), its public key in dom0 root's authorized_keys, and dom0's host key pinned in the compute VM's
 * `/root/.ssh/xs_known_hosts` — which `dom0Of` then requires (StrictHostKeyChecking=yes, never =no).
 *
 * How the first trust is established. XAPI has no call that installs an authorized key or tells dom0's SSH host key
 * (a dom0 plugin could, but installing dom0 plugins is what this trust is for). So there are two honest ways:
 *  1. the deployer's own verified root SSH to dom0 (its management address, host key checked against xenstack's
 *     known_hosts): the key is installed through it as an `AuthorizedKey` resource (`direct`), and dom0 scans its
 *     own HIMN address through it, so the key the compute VM sees must be dom0's own;
 *  2. otherwise root's password over the HIMN, as XenServer's stock sshd allows and as the original plugin and
 *     os-xenapi's xenapi_bootstrap did — it is the XAPI login's password (`xenserver.password`). It reaches ssh on
 *     the compute VM through SSH_ASKPASS reading it from the environment of that one process (stdin in, never a
 *     command line or a file), and only after dom0's host key is pinned, so ssh checks the host before sending it.
 * Dom0's host key is fetched with ssh-keyscan over the HIMN: a host-internal bridge without a physical port (only
 * dom0 and this host's VMs are on it). When the operator gives fingerprints (`expectedFingerprints`), or dom0's own
 * scan is known (1.), the scanned key must match one; with neither, the first key seen on the HIMN is pinned. Once pinned, a different key is refused and never re-pinned: a reinstalled dom0 needs the pin
 * removed by hand.
 */
import { AuthorizedKey, Secret, apply, fingerprint, shellQuote, type Executor } from '../../node/index.js'
import {
  DOM0_HIMN_ADDRESS,
  DOM0_KEY_FILE,
  DOM0_KNOWN_HOSTS_FILE,
  Dom0Executor,
  dom0SshOptions,
} from '../dom0-access.js'

export class SshTrustError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SshTrustError'
  }
}

export interface SshTrustOptions {
  /** Names for messages. */
  computeName?: string
  dom0Name?: string
  /** dom0's password (the XAPI root password): used only when key login does not work yet and no `direct` is given. */
  password?: Secret
  username?: string
  /** The deployer's own verified executor on dom0 (first trust without a password). */
  direct?: Executor
  /** Acceptable `SHA256:` fingerprints of dom0's host key, when the operator knows them. */
  expectedFingerprints?: string[]
  address?: string
  keyFile?: string
  knownHostsFile?: string
  log?: (line: string) => void
}

export interface SshTrustResult {
  changes: { resource: string; result: 'changed' | 'unchanged'; diff?: string }[]
  /** Fingerprints of the pinned dom0 host keys. */
  pinned: string[]
  publicKey: string
}

interface ScannedKey {
  line: string
  type: string
  fingerprint: string
}

const ANY_EXIT = Array.from({ length: 256 }, (_, i) => i)

/** Parses `ssh-keyscan` / known_hosts lines for `host` (comments and other hosts ignored). */
export function parseScannedKeys(text: string, host: string): ScannedKey[] {
  const out: ScannedKey[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const [names, type, b64] = line.split(/\s+/)
    if (!b64 || !names.split(',').includes(host)) continue
    out.push({ line: `${host} ${type} ${b64}`, type, fingerprint: fingerprint(Buffer.from(b64, 'base64')) })
  }
  return out
}

/** Establishes (or checks) the trust; a second run changes nothing. */
export async function establishSshTrust(compute: Executor, opts: SshTrustOptions = {}): Promise<SshTrustResult> {
  const o = {
    address: opts.address ?? DOM0_HIMN_ADDRESS,
    keyFile: opts.keyFile ?? DOM0_KEY_FILE,
    knownHostsFile: opts.knownHostsFile ?? DOM0_KNOWN_HOSTS_FILE,
    user: opts.username ?? 'root',
    compute: opts.computeName ?? compute.host,
    dom0: opts.dom0Name ?? 'dom0',
  }
  const log = opts.log ?? (() => {})
  const changes: SshTrustResult['changes'] = []

  // 1. the compute VM's key (kept: the original deleted and regenerated it on every run, breaking earlier trust)
  const key = await compute.run([
    'sh',
    '-c',
    'k="$1"; c="$2"; umask 077; mkdir -p "$(dirname "$k")"; ' +
      'if [ -s "$k" ]; then [ -s "$k.pub" ] || ssh-keygen -y -f "$k" > "$k.pub"; echo kept; ' +
      // RSA: the dom0s of XenServer 6.5/7.x run OpenSSH versions older than ed25519 support
      'else rm -f "$k" "$k.pub"; ssh-keygen -q -t rsa -b 3072 -N "" -C "$c" -f "$k" >/dev/null; echo made; fi; cat "$k.pub"',
    'sh',
    o.keyFile,
    `xenstack@${o.compute}`,
  ])
  const [state, publicKey = ''] = key.stdout.trim().split('\n')
  if (state === 'made') {
    changes.push({ resource: `ssh key ${o.keyFile}`, result: 'changed', diff: `+ generated ${o.keyFile} (rsa 3072)` })
    log(`generated ${o.keyFile} on ${o.compute}`)
  } else changes.push({ resource: `ssh key ${o.keyFile}`, result: 'unchanged' })

  // 2. dom0's host key, pinned before anything is sent to it. With the deployer's verified channel to dom0, dom0
  // scans its own address: whatever answers there inside dom0 is dom0's sshd, so the compute VM's scan must match it
  let expected = opts.expectedFingerprints
  if (!expected?.length && opts.direct) {
    const self = await opts.direct.run(['ssh-keyscan', '-T', '15', o.address], {
      allowedExitCodes: ANY_EXIT,
      timeoutMs: 60_000,
    })
    expected = parseScannedKeys(self.stdout, o.address).map((k) => k.fingerprint)
    if (!expected.length)
      throw new SshTrustError(
        `${o.dom0}: its sshd does not answer on its own HIMN address ${o.address} (ssh-keyscan on dom0 through ` +
          `${opts.direct.host}: ${self.stderr.trim().split('\n').slice(-2).join(' | ') || `exit ${self.code}`})`,
      )
  }
  const pinned = await pinHostKey(compute, o, expected, changes, log)

  // 3. key login: already working → nothing to install
  const dom0 = new Dom0Executor(compute, {
    dom0Name: o.dom0,
    computeName: o.compute,
    address: o.address,
    keyFile: o.keyFile,
    knownHostsFile: o.knownHostsFile,
    user: o.user,
  })
  const works = async () =>
    (await compute.run(dom0.sshArgv('true'), { allowedExitCodes: ANY_EXIT, timeoutMs: 60_000 })).code === 0
  if (await works()) {
    changes.push({ resource: `authorized key on ${o.dom0}`, result: 'unchanged' })
    return { changes, pinned, publicKey }
  }
  if (opts.direct) {
    const report = await apply(opts.direct, [new AuthorizedKey({ user: o.user, key: publicKey })])
    const e = report.entries[0]
    if (!report.ok)
      throw new SshTrustError(`${o.dom0}: installing ${o.compute}'s key through ${opts.direct.host}: ${e?.error}`)
    changes.push({
      resource: `authorized key on ${o.dom0}`,
      result: 'changed',
      diff: `+ ${o.keyFile}.pub of ${o.compute} (through ${opts.direct.host})`,
    })
  } else {
    if (!opts.password)
      throw new SshTrustError(
        `${o.dom0}: ${o.compute}'s key ${o.keyFile} is not accepted by ${o.user}@${o.address} and no password is ` +
          `configured to install it (xenserver.password, the XAPI root password)`,
      )
    await installWithPassword(compute, o, opts.password, publicKey)
    changes.push({
      resource: `authorized key on ${o.dom0}`,
      result: 'changed',
      diff: `+ ${o.keyFile}.pub of ${o.compute} (password login over the HIMN)`,
    })
  }
  log(`installed ${o.compute}'s key in ${o.user}'s authorized_keys on ${o.dom0}`)
  if (!(await works()))
    throw new SshTrustError(
      `${o.dom0}: the key ${o.keyFile} of ${o.compute} was installed but ${o.user}@${o.address} still refuses it ` +
        `(check sshd's AuthorizedKeysFile and PubkeyAuthentication on dom0)`,
    )
  return { changes, pinned, publicKey }
}

async function pinHostKey(
  compute: Executor,
  o: { address: string; knownHostsFile: string; compute: string; dom0: string },
  expected: string[] | undefined,
  changes: SshTrustResult['changes'],
  log: (line: string) => void,
): Promise<string[]> {
  const scan = await compute.run(['ssh-keyscan', '-T', '15', '-t', 'rsa,ecdsa,ed25519', o.address], {
    allowedExitCodes: ANY_EXIT,
    timeoutMs: 60_000,
  })
  const scanned = parseScannedKeys(scan.stdout, o.address)
  if (!scanned.length)
    throw new SshTrustError(
      `${o.dom0}: no SSH host key could be fetched from ${o.address} on ${o.compute} (ssh-keyscan: ` +
        `${scan.stderr.trim().split('\n').slice(-2).join(' | ') || `exit ${scan.code}`}); is the HIMN up (xenserver.himn-guest)?`,
    )
  const current = await compute.run(['sh', '-c', 'cat "$1" 2>/dev/null; true', 'sh', o.knownHostsFile])
  const pins = parseScannedKeys(current.stdout, o.address)
  if (pins.length) {
    const same = scanned.filter((s) => pins.some((p) => p.fingerprint === s.fingerprint))
    if (!same.length)
      throw new SshTrustError(
        `${o.dom0}: its host key changed: ${o.address} presents ${scanned.map((s) => `${s.type} ${s.fingerprint}`).join(', ')} ` +
          `but ${o.knownHostsFile} on ${o.compute} pins ${pins.map((p) => `${p.type} ${p.fingerprint}`).join(', ')}. ` +
          `Refusing to go on; if dom0 was reinstalled, remove ${o.knownHostsFile} on ${o.compute} and run again`,
      )
    changes.push({ resource: `dom0 host key pinned in ${o.knownHostsFile}`, result: 'unchanged' })
    return pins.map((p) => p.fingerprint)
  }
  let chosen = scanned
  if (expected?.length) {
    chosen = scanned.filter((s) => expected.includes(s.fingerprint))
    if (!chosen.length)
      throw new SshTrustError(
        `${o.dom0}: ${o.address} presents ${scanned.map((s) => `${s.type} ${s.fingerprint}`).join(', ')}, none of the ` +
          `expected fingerprints (${expected.join(', ')}); nothing was pinned`,
      )
  }
  const text = `# dom0 ${o.dom0} on the host internal management network, pinned by xenstack\n${chosen.map((c) => c.line).join('\n')}\n`
  await compute.run(['sh', '-c', `umask 077; mkdir -p "$(dirname "$1")"; cat > "$1"`, 'sh', o.knownHostsFile], {
    stdin: text,
  })
  for (const c of chosen)
    log(`pinned ${o.dom0}'s host key ${c.type} ${c.fingerprint} in ${o.knownHostsFile} on ${o.compute}`)
  changes.push({
    resource: `dom0 host key pinned in ${o.knownHostsFile}`,
    result: 'changed',
    diff: chosen.map((c) => `+ ${c.type} ${c.fingerprint}`).join('\n'),
  })
  return chosen.map((c) => c.fingerprint)
}

/**
 * ssh-copy-id's job with the password from SSH_ASKPASS: the first stdin line is the password (kept in the
 * environment of that shell and its ssh only), the rest is the public key, which the remote side appends once.
 */
async function installWithPassword(
  compute: Executor,
  o: { address: string; keyFile: string; knownHostsFile: string; user: string; compute: string; dom0: string },
  password: Secret,
  publicKey: string,
): Promise<void> {
  const remote =
    'umask 077; mkdir -p ~/.ssh; k=$(cat); touch ~/.ssh/authorized_keys; ' +
    'grep -qxF "$k" ~/.ssh/authorized_keys || printf "%s\\n" "$k" >> ~/.ssh/authorized_keys'
  const ssh = [
    'ssh',
    ...dom0SshOptions(o, { password: true }),
    '-o',
    'PubkeyAuthentication=no',
    '-o',
    'PreferredAuthentications=password,keyboard-interactive',
    '-o',
    'NumberOfPasswordPrompts=1',
    '-l',
    o.user,
    o.address,
    '--',
    remote,
  ]
    .map(shellQuote)
    .join(' ')
  const script = [
    'IFS= read -r XS_PASS; export XS_PASS',
    'a=$(mktemp); trap \'rm -f "$a"\' EXIT',
    // the helper holds no secret: it prints the variable of the ssh process that runs it
    'cat > "$a" <<\'EOF\'',
    '#!/bin/sh',
    'printf \'%s\\n\' "$XS_PASS"',
    'EOF',
    'chmod 700 "$a"',
    `SSH_ASKPASS="$a" SSH_ASKPASS_REQUIRE=force DISPLAY=: setsid -w ${ssh}`,
  ].join('\n')
  const r = await compute.run(['sh', '-c', script], {
    stdin: new Secret(`${password.reveal()}\n${publicKey}\n`),
    allowedExitCodes: ANY_EXIT,
    timeoutMs: 90_000,
    secrets: [password],
  })
  if (r.code !== 0) {
    const said = r.stderr.trim().split('\n').slice(-3).join(' | ')
    throw new SshTrustError(
      `${o.dom0}: installing ${o.compute}'s key with ${o.user}'s password over the HIMN failed (exit ${r.code}: ` +
        `${said.split(password.reveal()).join('***')})` +
        (/Permission denied/.test(said)
          ? `; dom0 refused the password (check xenserver.password, and that dom0's sshd allows password login)`
          : ''),
    )
  }
}
