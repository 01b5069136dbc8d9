/**
 * The compute pre-test (the original's `compute_pre_test.py`), from XAPI records instead of scraping `xe` in dom0:
 *  - XAPI answers over the HIMN from the compute VM (http://169.254.0.1/, where nova and neutron will call it), and
 *    the configured credentials log in there (LP#1508996: a wrong password failed much later, in nova);
 *  - the platform is at least 2.1.0 (XenServer 7.0), or XenServer 6.5.0 with hotfix XS65ESP1013 (LP#1508474: Cinder
 *    iSCSI needs it) — from `host.software_version` and the host's `pool_patch`/`pool_update` records;
 *  - the pool's default SR is file based (`ext` or `nfs`): nova's XenAPI driver handles VHD files.
 * Every failure is collected and reported together, each saying what was found and what is needed.
 */
import type { Xapi } from '@xenstack/xenapi'
import type { Executor, Secret } from '../../node/index.js'
import { HIMN_DOM0 } from './guest.js'

export const MIN_PLATFORM_VERSION = '2.1.0'
/** Hotfixes a product version needs (the original's VERSION_HOTFIXES). */
export const VERSION_HOTFIXES: Record<string, string[]> = { '6.5.0': ['XS65ESP1013'] }
export const SUPPORTED_SR_TYPES = ['ext', 'nfs']
const NULL_REF = 'OpaqueRef:NULL'

export class PreTestError extends Error {
  constructor(
    message: string,
    readonly failures: string[],
  ) {
    super(message)
    this.name = 'PreTestError'
  }
}

/** Compares dotted versions numerically (`2.10.0` > `2.9.1`); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => parseInt(x, 10) || 0)
  const pb = b.split('.').map((x) => parseInt(x, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d) return d < 0 ? -1 : 1
  }
  return 0
}

export interface HostVersion {
  host: string
  name: string
  product: string
  platform: string
}

/** The host's versions from `host.software_version`. */
export async function hostVersion(xapi: Xapi, host: string): Promise<HostVersion> {
  const rec = (await xapi.call('host.get_record', host)) as {
    name_label: string
    software_version: Record<string, string>
  }
  const sv = rec.software_version ?? {}
  return { host, name: rec.name_label, product: sv.product_version ?? '', platform: sv.platform_version ?? '' }
}

/** Names of the hotfixes applied on the host: pool_patch (applied there or pool-wide) and pool_update records. */
export async function appliedHotfixes(xapi: Xapi, host: string): Promise<string[]> {
  const names = new Set<string>()
  const patches = (await xapi.call('pool_patch.get_all_records')) as Record<
    string,
    { name_label: string; pool_applied: boolean; host_patches: string[] }
  >
  const hostPatches = (await xapi.call('host_patch.get_all_records')) as Record<
    string,
    { host: string; pool_patch: string; applied: boolean }
  >
  const onHost = new Set(
    Object.values(hostPatches)
      .filter((hp) => hp.host === host && hp.applied !== false)
      .map((hp) => hp.pool_patch),
  )
  for (const [ref, p] of Object.entries(patches)) if (p.pool_applied || onHost.has(ref)) names.add(p.name_label)
  try {
    const updates = (await xapi.call('host.get_updates', host)) as string[]
    for (const u of updates) names.add(String(await xapi.call('pool_update.get_name_label', u)))
  } catch {
    // pool_update exists from XenServer 7.1 (API 2.6); older hosts only have pool_patch
  }
  return [...names].sort()
}

/** Platform ≥ 2.1.0, or a product version whose required hotfixes are all applied. Returns the failures. */
export async function checkPlatform(xapi: Xapi, host: string): Promise<string[]> {
  const v = await hostVersion(xapi, host)
  if (!v.platform)
    return [
      `host ${v.name}: software_version has no platform_version (product ${v.product || 'unknown'}); cannot check compatibility`,
    ]
  if (compareVersions(v.platform, MIN_PLATFORM_VERSION) >= 0) return []
  const needed = VERSION_HOTFIXES[v.product]
  if (!needed)
    return [
      `host ${v.name}: platform version ${v.platform} (XenServer ${v.product || 'unknown'}) should be equal to or ` +
        `greater than ${MIN_PLATFORM_VERSION} (XenServer 7.0), or XenServer ${Object.keys(VERSION_HOTFIXES).join('/')} ` +
        `with ${Object.values(VERSION_HOTFIXES).flat().join(', ')}`,
    ]
  const applied = await appliedHotfixes(xapi, host)
  const missing = needed.filter((h) => !applied.includes(h))
  return missing.map(
    (h) =>
      `host ${v.name}: XenServer ${v.product} (platform ${v.platform}) needs hotfix ${h}, which has not been installed ` +
      `(installed: ${applied.join(', ') || 'none'}); apply it or upgrade to XenServer 7.0 or later`,
  )
}

/** The pool's default SR must be `ext` or `nfs`. Returns the failures. */
export async function checkDefaultSr(xapi: Xapi): Promise<string[]> {
  const [pool] = (await xapi.call('pool.get_all')) as string[]
  const sr = (await xapi.call('pool.get_default_SR', pool)) as string
  if (!sr || sr === NULL_REF)
    return [
      `the pool has no default SR; set one of type ${SUPPORTED_SR_TYPES.join(' or ')} (xe pool-param-set default-SR=…)`,
    ]
  const rec = (await xapi.call('SR.get_record', sr)) as { name_label: string; type: string; uuid: string }
  if (SUPPORTED_SR_TYPES.includes(rec.type)) return []
  return [
    `the pool's default SR "${rec.name_label}" (${rec.uuid}) is of type ${rec.type}; it must be ` +
      `${SUPPORTED_SR_TYPES.join(' or ')} (file based, thin provisioned VHDs, as nova's XenAPI driver needs)`,
  ]
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Tries of one XAPI call over the HIMN before the pre-test reports it unanswered. */
const HIMN_PROBE_ATTEMPTS = 4

const xmlCall = (method: string, params: string[]) =>
  `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>` +
  params.map((p) => `<param><value><string>${xmlEscape(p)}</string></value></param>`).join('') +
  `</params></methodCall>`

/**
 * XAPI over the HIMN, from the compute VM: logs in with the configured credentials at http://169.254.0.1/ (XML-RPC,
 * which every XAPI version speaks) and logs out. The request travels on stdin, so the password is on no command line.
 */
export async function checkXapiOverHimn(
  exec: Executor,
  username: string,
  password: Secret | undefined,
): Promise<string[]> {
  const url = `http://${HIMN_DOM0}/`
  const post = [
    'if command -v curl >/dev/null 2>&1; then',
    `  curl -sS -m 20 -H 'Content-Type: text/xml' --data-binary @- ${url}`,
    'else',
    `  python3 -c 'import sys,urllib.request as u; r=u.Request("${url}", sys.stdin.buffer.read(), {"Content-Type": "text/xml"}); print(u.urlopen(r, timeout=20).read().decode())'`,
    'fi',
  ].join('\n')
  // Every call sent here (logins, logouts, get_this_host) is safe to repeat, so an answer that is not XAPI's (the
  // connection reset, an HTTP 500 page) is tried again, as the xenapi client does for its own calls: a passing
  // fault of XAPI must not fail the pre-test.
  const send = async (body: string, secret?: Secret) => {
    for (let attempt = 1; ; attempt++) {
      const r = await exec.run(['sh', '-c', post], {
        stdin: body,
        allowedExitCodes: Array.from({ length: 256 }, (_, i) => i),
        timeoutMs: 40_000,
        secrets: secret ? [secret] : [],
      })
      if ((r.code === 0 && r.stdout.includes('<methodResponse>')) || attempt >= HIMN_PROBE_ATTEMPTS) return r
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt))
    }
  }
  if (!password) {
    const r = await send(xmlCall('session.get_this_host', ['OpaqueRef:NULL', 'OpaqueRef:NULL']))
    if (r.code !== 0 || !r.stdout.includes('<methodResponse>'))
      return [
        `${exec.host}: XAPI does not answer at ${url} over the HIMN (${(r.stderr || r.stdout).trim().slice(0, 200) || `exit ${r.code}`})`,
      ]
    return [
      `${exec.host}: no xenserver.password is configured; XAPI answers at ${url} but the credentials cannot be checked`,
    ]
  }
  const login = xmlCall('session.login_with_password', [username, password.reveal(), '1.0', 'xenstack-pre-test'])
  let r = await send(login, password)
  // A pool member's XAPI answers HOST_IS_SLAVE (logins go to the master): check the credentials on this host itself
  // with the slave-local login instead, which XAPI members accept.
  let logout = 'session.logout'
  if (r.code === 0 && /<value>(?:<string>)?HOST_IS_SLAVE</.test(r.stdout)) {
    r = await send(xmlCall('session.slave_local_login_with_password', [username, password.reveal()]), password)
    logout = 'session.local_logout'
  }
  if (r.code !== 0 || !r.stdout.includes('<methodResponse>'))
    return [
      `${exec.host}: XAPI does not answer at ${url} over the host internal management network ` +
        `(${(r.stderr || r.stdout).trim().slice(0, 200) || `exit ${r.code}`}); nova and neutron call XAPI there — ` +
        `check the HIMN interface (xenserver.himn-guest)`,
    ]
  const ok = /<name>Status<\/name>\s*<value>(?:<string>)?Success/.test(r.stdout)
  if (!ok) {
    const code =
      /<name>ErrorDescription<\/name>[\s\S]*?<data>\s*<value>(?:<string>)?([^<]*)</.exec(r.stdout)?.[1] ??
      'unknown error'
    return [
      `${exec.host}: XAPI at ${url} refused the login of "${username}" with the configured password (${code}); ` +
        `check xenserver.username and xenserver.password`,
    ]
  }
  const session = /<name>Value<\/name>\s*<value>(?:<string>)?([^<]+)/.exec(r.stdout)?.[1]
  if (session) await send(xmlCall(logout, [session]))
  return []
}

export interface PreTestInput {
  xapi: Xapi
  exec: Executor
  /** The host the compute VM runs on (its platform is what matters). */
  host: string
  username: string
  password?: Secret
}

/** Runs every check; throws PreTestError listing all failures, or resolves with the lines it checked. */
export async function preTest(input: PreTestInput): Promise<string[]> {
  const failures = [
    ...(await checkXapiOverHimn(input.exec, input.username, input.password)),
    ...(await checkPlatform(input.xapi, input.host)),
    ...(await checkDefaultSr(input.xapi)),
  ]
  if (failures.length)
    throw new PreTestError(
      `pre-test failed on ${input.exec.host} (${failures.length} problem${failures.length > 1 ? 's' : ''}):\n- ${failures.join('\n- ')}`,
      failures,
    )
  const v = await hostVersion(input.xapi, input.host)
  return [
    `XAPI answers over the HIMN at http://${HIMN_DOM0}/ and accepts the configured credentials`,
    `host ${v.name}: XenServer ${v.product}, platform ${v.platform}`,
    'default SR is file based',
  ]
}

/** The host a VM runs on, else the pool master. */
export async function hostOfVm(xapi: Xapi, vm: string): Promise<string> {
  const h = (await xapi.call('VM.get_resident_on', vm)) as string
  if (h && h !== NULL_REF) return h
  const [pool] = (await xapi.call('pool.get_all')) as string[]
  return (await xapi.call('pool.get_master', pool)) as string
}
