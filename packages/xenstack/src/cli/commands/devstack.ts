/**
 * `xenstack devstack install HOST` — devstack on XenServer (issue 13 §2, os-xenapi's install-devstack-xen.sh): the
 * steps are prep/devstack/install.ts; this module parses the original's options as flags, opens XAPI (password from
 * the profile, $XENSTACK_XAPI_PASSWORD, --password-stdin or a prompt — never argv), dom0 and the DomU over SSH with
 * their host keys verified against --known-hosts (never trusted on first use), and prints the steps.
 */
import type { Command } from 'commander'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline/promises'
import ssh2 from 'ssh2'
import { FileKnownHostsStore, Secret, SshExecutor } from '../../node/index.js'
import { resolveDataDir } from '../../state/store.js'
import {
  DEFAULTS,
  ProgressFile,
  TEST_TYPES,
  installDevstack,
  servicePassword,
  type DevstackConfig,
  type DevstackResult,
  type SshAddress,
  type TestType,
} from '../../prep/devstack/index.js'
import { addConnectionOptions, openXapi, resolveConnection, type ConnectionFlags } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit } from '../output.js'

interface InstallFlags extends ConnectionFlags {
  sshKey?: string
  knownHosts?: string
  dom0Ssh?: string
  domuSsh?: string
  domuName: string
  branch: string
  localConf?: string
  wait: boolean
  waitTimeout: string
  testType: string
  forceSrReplace?: boolean
  yes?: boolean
  mirror: string
  ubuntuRelease: string
  devstackUrl: string
  osXenapiUrl: string
  templateXva?: string
  exportTemplate?: string
  preseedUrl?: string
  vmNetwork: string
  publicNetwork: string
  memory: string
  disk: string
  installTimeout: string
  bootTimeout: string
  computeOnly?: boolean
  controllerIp?: string
  dryRun?: boolean
  json?: boolean
}

export function register(program: Command): void {
  const devstack = program.command('devstack').description('devstack on XenServer (os-xenapi install-devstack-xen.sh)')
  addConnectionOptions(
    devstack
      .command('install <host>')
      .description(
        'prerequisites, networks, Ubuntu template (netinstall or XVA), DomU with local.conf and devstack.service, optional tempest; resumable',
      ),
  )
    .option('--ssh-key <file>', 'private key for dom0 and the DomU (its public key goes to the DomU via xenstore)')
    .option(
      '--known-hosts <file>',
      "known_hosts pinning dom0's and the DomU's host keys (default <data dir>/known_hosts)",
    )
    .option('--dom0-ssh <user@host[:port]>', "dom0's SSH address, e.g. root@HOST (preseed upload, key exchange)")
    .option(
      '--domu-ssh <user@host[:port]>',
      "the DomU's SSH address (default root@ the address its guest agent reports)",
    )
    .option('--domu-name <name>', 'the DomU (-m)', DEFAULTS.domuName)
    .option('--branch <branch>', 'devstack and os-xenapi branch', DEFAULTS.branch)
    .option(
      '--local-conf <file>',
      'local.conf overrides: [[local|localrc]] assignments replace, other sections are added',
    )
    .option('--no-wait', 'do not wait for devstack to finish (-w 0)')
    .option('--wait-timeout <s>', 'how long to wait for devstack', String(DEFAULTS.waitTimeoutS))
    .option('--test-type <type>', `tempest after devstack: ${TEST_TYPES.join(', ')} (-t)`, DEFAULTS.testType)
    .option(
      '--force-sr-replace',
      'replace a default SR that is not ext/nfs with an ext SR on its device (-f; asks first)',
    )
    .option('--yes', 'confirm --force-sr-replace without asking')
    .option('--mirror <url>', 'Ubuntu mirror for the template netinstall', DEFAULTS.mirror)
    .option('--ubuntu-release <name>', 'Ubuntu release of the template', DEFAULTS.ubuntuRelease)
    .option('--devstack-url <url>', 'devstack git repository (-d)', DEFAULTS.devstackUrl)
    .option('--os-xenapi-url <url>', 'os-xenapi git repository (-o)', DEFAULTS.osXenapiUrl)
    .option('--template-xva <file>', 'import the template from this XVA instead of installing it (-j)')
    .option('--export-template <file>', 'export the template to this XVA file and stop (-e)')
    .option('--preseed-url <url>', "where the installer fetches the preseed answers (default: dom0's web server)")
    .option('--vm-network <name>', 'VM network bridge or name label', DEFAULTS.vmNetwork)
    .option('--public-network <name>', 'public network bridge or name label', DEFAULTS.publicNetwork)
    .option('--memory <MiB>', 'DomU memory', String(DEFAULTS.memoryMiB))
    .option('--disk <GiB>', "the template's disk (VM_VDI_GB)", String(DEFAULTS.diskGiB))
    .option('--install-timeout <s>', 'how long the template netinstall may take', '3600')
    .option('--boot-timeout <s>', 'how long the DomU may take to report its address', '600')
    .option('--compute-only', 'a compute-only DomU (-a compute); needs --controller-ip')
    .option('--controller-ip <ip>', 'the controller of a compute-only DomU (-i)')
    .option('--dry-run', 'print what would change and change nothing')
    .option('--json', 'print the result as JSON')
    .action((host: string, flags: InstallFlags) => install(host, flags))
}

function positive(flag: string, v: string): number {
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0)
    throw new CliError(`${flag} ${v}: expected a positive whole number`, ExitCode.usage)
  return n
}

function parseSsh(flag: string, v: string): SshAddress {
  const m = /^(?:([^@\s]+)@)?([^:\s@]+)(?::(\d+))?$/.exec(v)
  if (!m) throw new CliError(`${flag} ${v}: expected user@host[:port]`, ExitCode.usage)
  return { user: m[1] ?? 'root', host: m[2], port: m[3] ? Number(m[3]) : 22 }
}

function readFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (e) {
    throw new CliError(
      `${flag} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      ExitCode.notFound,
    )
  }
}

/** The public key line of a private key file: FILE.pub when present, else derived from the key. */
function publicKeyOf(file: string, key: Buffer): string {
  if (existsSync(`${file}.pub`)) return readFileSync(`${file}.pub`, 'utf8').trim()
  const parsed = ssh2.utils.parseKey(key)
  const k = Array.isArray(parsed) ? parsed[0] : parsed
  if (k instanceof Error) throw new CliError(`--ssh-key ${file}: ${k.message}`, ExitCode.invalidInput)
  return `${k.type} ${k.getPublicSSH().toString('base64')} xenstack`
}

async function install(hostArg: string, flags: InstallFlags): Promise<void> {
  if (!/^[A-Za-z0-9.:-]+$/.test(hostArg))
    throw new CliError(`HOST ${hostArg}: expected a host name or address`, ExitCode.usage)
  if (!(TEST_TYPES as readonly string[]).includes(flags.testType))
    throw new CliError(`--test-type ${flags.testType}: expected one of ${TEST_TYPES.join(', ')}`, ExitCode.usage)
  if (flags.computeOnly && !flags.controllerIp)
    throw new CliError('--compute-only needs --controller-ip', ExitCode.usage)
  for (const [flag, url] of [
    ['--mirror', flags.mirror],
    ['--devstack-url', flags.devstackUrl],
    ['--os-xenapi-url', flags.osXenapiUrl],
    ...(flags.preseedUrl ? [['--preseed-url', flags.preseedUrl]] : []),
  ])
    if (!URL.canParse(url)) throw new CliError(`${flag} ${url}: expected a URL`, ExitCode.usage)
  if (flags.forceSrReplace && !flags.yes && !flags.dryRun && !process.stdin.isTTY)
    throw new CliError(
      '--force-sr-replace destroys the default SR when it is not ext/nfs, and stdin is not a terminal to confirm on',
      ExitCode.usage,
      'add --yes to confirm',
    )
  if (flags.templateXva && !existsSync(flags.templateXva))
    throw new CliError(`--template-xva ${flags.templateXva}: no such file`, ExitCode.notFound)

  const dataDir = resolveDataDir(flags.dataDir)
  const key = flags.sshKey ? readFile('--ssh-key', flags.sshKey) : undefined
  const publicKey = flags.sshKey && key ? publicKeyOf(flags.sshKey, key) : undefined
  const knownHosts = new FileKnownHostsStore(flags.knownHosts ?? join(dataDir, 'known_hosts'))
  const sshTo = (a: SshAddress) =>
    new SshExecutor({ host: a.host, port: a.port, username: a.user, privateKey: key!, knownHosts, name: a.host })
  const dom0Address = flags.dom0Ssh ? parseSsh('--dom0-ssh', flags.dom0Ssh) : undefined
  if (flags.dom0Ssh && !key)
    throw new CliError('--dom0-ssh needs --ssh-key FILE (the private key to log in with)', ExitCode.usage)
  const overrides = flags.localConf ? readFile('--local-conf', flags.localConf).toString('utf8') : undefined

  const conn = await resolveConnection(
    flags.url || flags.pool || process.env.XENSTACK_POOL ? flags : { ...flags, url: `http://${hostArg}` },
  )
  const xapiPassword = conn.options.password ?? ''
  const cfg: DevstackConfig = {
    ...DEFAULTS,
    host: hostArg,
    domuName: flags.domuName,
    vmNetwork: flags.vmNetwork,
    publicNetwork: flags.publicNetwork,
    memoryMiB: positive('--memory', flags.memory),
    diskGiB: positive('--disk', flags.disk),
    ubuntuRelease: flags.ubuntuRelease,
    mirror: flags.mirror,
    devstackUrl: flags.devstackUrl,
    osXenapiUrl: flags.osXenapiUrl,
    branch: flags.branch,
    testType: flags.testType as TestType,
    wait: flags.wait,
    waitTimeoutS: positive('--wait-timeout', flags.waitTimeout),
    mode: flags.computeOnly ? 'compute' : 'all',
    controllerIp: flags.controllerIp,
    localConfOverrides: overrides,
    publicKey,
  }
  const progress = new ProgressFile(dataDir, hostArg, cfg.domuName)
  const dom0 = dom0Address ? sshTo(dom0Address) : undefined
  const log = flags.json ? () => {} : (line: string) => process.stdout.write(`${line}\n`)
  const xapi = await openXapi(conn)
  let result: DevstackResult
  try {
    result = await installDevstack(
      {
        xapi,
        cfg,
        passwords: { xapi: new Secret(xapiPassword), service: new Secret(servicePassword(xapiPassword, hostArg)) },
        progress,
        workDir: join(dataDir, 'devstack', hostArg.replace(/[^A-Za-z0-9_.-]/g, '_')),
        dom0,
        openDomU: key ? sshTo : undefined,
        domuAddress: flags.domuSsh ? parseSsh('--domu-ssh', flags.domuSsh) : undefined,
        templateXva: flags.templateXva,
        exportTemplate: flags.exportTemplate,
        preseedUrl: flags.preseedUrl,
        confirmSrReplace: flags.forceSrReplace ? (sr) => confirmReplace(sr, flags.yes === true) : undefined,
        installTimeoutMs: positive('--install-timeout', flags.installTimeout) * 1000,
        bootTimeoutMs: positive('--boot-timeout', flags.bootTimeout) * 1000,
        probeTimeoutMs: Number(process.env.XENSTACK_PROBE_TIMEOUT_MS) || undefined,
        log,
      },
      { dryRun: flags.dryRun },
    )
  } finally {
    await dom0?.close().catch(() => undefined)
    await xapi.close().catch(() => undefined)
  }
  emit(flags, result, printHuman)
  if (result.stopped)
    throw new CliError(
      `${result.stopped.step}: ${result.stopped.message}`,
      result.stopped.state === 'blocked' ? ExitCode.unreachable : ExitCode.failure,
      `progress is recorded in ${result.progressFile}; the same command continues from there`,
    )
}

async function confirmReplace(sr: { name: string; uuid: string; type: string }, yes: boolean): Promise<boolean> {
  if (yes) return true
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    const answer = await rl.question(
      `This destroys default SR ${sr.name} (${sr.type}, uuid ${sr.uuid}) and every disk on it, and creates an ext SR on its device.\nType the SR uuid to confirm: `,
    )
    return answer.trim() === sr.uuid
  } finally {
    rl.close()
  }
}

function printHuman(r: DevstackResult): void {
  const out = (s: string) => process.stdout.write(`${s}\n`)
  if (r.previouslyDone.length) out(`previous run: ${r.previouslyDone.join(', ')} done (${r.progressFile})`)
  for (const s of r.steps) {
    out(`${s.id}: ${s.state}${s.state === 'not reached' ? '' : ` — ${s.title}`}`)
    for (const c of s.changes) out(`  ${r.dryRun ? 'would: ' : ''}${c}`)
    for (const n of s.notes) out(`  note: ${n}`)
  }
  if (r.exported) out(`template exported to ${r.exported.file} (${r.exported.bytes} bytes)`)
  if (r.stopped) return
  if (!r.changed) out(`${r.host}: nothing to do, devstack on ${r.domU} is in place`)
  else if (r.dryRun) out(`${r.host}: dry run, nothing was changed`)
}
