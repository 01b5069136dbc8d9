/**
 * `xenstack xen private-lab` — the single-host OpenStack lab on private networks (issue 13 §1): networks and VMs
 * through XAPI (prep/private-lab.ts), dom0 as the `private` network's gateway over a verified SSH connection
 * (prep/gateway.ts, node access resources: dom0's host key must be pinned in the known-hosts file, never trusted on
 * first use). `--dry-run` prints the plan and changes nothing; a second run prints nothing to do.
 */
import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FileKnownHostsStore, SshExecutor, UnknownHostKeyError, apply, pendingChanges, plan } from '../../node/index.js'
import { resolveDataDir } from '../../state/store.js'
import { gatewayResources, privateGateway } from '../../prep/gateway.js'
import { PrivateLabError, applyPrivateLab, planPrivateLab } from '../../prep/private-lab.js'
import { addConnectionOptions, withXapi, type ConnectionFlags } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit } from '../output.js'

interface PrivateLabFlags extends ConnectionFlags {
  cidr: string
  dryRun?: boolean
  json?: boolean
  dom0Ssh?: string
  dom0Key?: string
  dom0KnownHosts?: string
}

export function register(program: Command): void {
  const xen = program.command('xen').description('prepare XenServer hosts (guided setups as idempotent commands)')
  addConnectionOptions(
    xen
      .command('private-lab')
      .description(
        'single-host OpenStack lab on private networks: pxe/private/br100 networks, dom0 gateway for private, Fuel/Controller/Compute VMs',
      ),
  )
    .option('--cidr <cidr>', 'the private network range; dom0 is its first address', '10.1.0.0/24')
    .option('--dom0-ssh <user@host[:port]>', "dom0's SSH address, to install the private network's gateway")
    .option('--dom0-key <file>', 'private key for --dom0-ssh')
    .option('--dom0-known-hosts <file>', "known_hosts pinning dom0's host key (default <data dir>/known_hosts)")
    .option('--dry-run', 'print what would change and change nothing')
    .option('--json', 'print the result as JSON')
    .action((flags: PrivateLabFlags) => privateLab(flags))
}

async function privateLab(flags: PrivateLabFlags): Promise<void> {
  // checked before anything is read or changed
  try {
    privateGateway(flags.cidr, 'xapi0')
  } catch (e) {
    throw new CliError((e as Error).message, ExitCode.usage)
  }
  const dom0 = flags.dom0Ssh ? dom0Executor(flags) : undefined
  const log = flags.json
    ? () => {}
    : (line: string) => process.stdout.write(`${flags.dryRun ? 'would: ' : ''}${line}\n`)
  try {
    await withXapi(flags, async (xapi) => {
      // dom0 is reached (its host key verified) before anything changes, so a refused dom0 leaves the pool as it was
      if (dom0) await checkDom0(dom0, flags)
      const p = await planPrivateLab(xapi).catch(asCliError)
      const xapiSteps = p.steps.map((s) => s.what)
      if (flags.dryRun) xapiSteps.forEach((s) => log(s))
      else await applyPrivateLab(p, log).catch(asCliError)

      let gateway: { bridge: string | null; changes: string[]; skipped?: string } = { bridge: null, changes: [] }
      if (!dom0) gateway.skipped = 'no --dom0-ssh given: the private network has no gateway in dom0 yet'
      else if (flags.dryRun && !p.networks.private.bridge)
        gateway = { bridge: null, changes: ['install the private gateway udev rule once XAPI has named the bridge'] }
      else {
        const bridge = flags.dryRun ? p.networks.private.bridge! : await p.privateBridge()
        const resources = gatewayResources(privateGateway(flags.cidr, bridge))
        if (flags.dryRun) {
          const entries = await plan(dom0, resources)
          const broken = entries.find((e) => e.error)
          if (broken) throw new CliError(`dom0 ${dom0.host}: ${broken.id}: ${broken.error}`, ExitCode.failure)
          const diffs = pendingChanges(entries)
          gateway = { bridge, changes: diffs.map((d) => `dom0 ${dom0.host}: ${d.id}`) }
        } else {
          const report = await apply(dom0, resources)
          const failed = report.entries.find((r) => r.status === 'failed')
          if (failed)
            throw new CliError(`dom0 ${dom0.host}: ${failed.id}: ${failed.error ?? 'failed'}`, ExitCode.failure)
          gateway = {
            bridge,
            changes: report.entries.filter((r) => r.status === 'changed').map((r) => `dom0 ${dom0.host}: ${r.id}`),
          }
        }
        gateway.changes.forEach((c) => log(c))
      }
      const gw = privateGateway(flags.cidr, gateway.bridge ?? 'xapi0')
      const result = {
        host: p.host.name,
        dryRun: flags.dryRun === true,
        changed: xapiSteps.length + gateway.changes.length > 0,
        networks: p.networks,
        steps: xapiSteps,
        gateway: { cidr: gw.cidr, address: gw.gateway, ...gateway },
        next: nextSteps(gw.gateway, gw.cidr),
      }
      emit(flags, result, (r) => {
        const ext = r.networks.external
        process.stdout.write(`external = ${ext.name_label} (${ext.bridge ?? '?'})\n`)
        if (!r.changed) process.stdout.write(`${r.host}: nothing to do, the private lab is in place\n`)
        else if (r.dryRun) process.stdout.write(`${r.host}: dry run, nothing was changed\n`)
        if (r.gateway.skipped) process.stdout.write(`warning: ${r.gateway.skipped}\n`)
        process.stdout.write(`\nnext steps:\n${r.next.map((s, i) => `  ${i + 1}. ${s}`).join('\n')}\n`)
      })
    })
  } finally {
    await dom0?.close()
  }
}

function nextSteps(gateway: string, cidr: string): string[] {
  return [
    "insert the Fuel ISO into the Fuel VM's CD drive (xe vm-cd-insert vm=Fuel cd-name=<fuel.iso>) and start Fuel",
    `in Fuel's setup, use eth0 (pxe) for PXE/admin and eth1 (external) for access; give the private network ${cidr} gateway ${gateway}`,
    'install the XenServer plugin into Fuel (fuel plugins --install fuel-plugin-xenserver-*.rpm)',
    'start Controller and Compute: they PXE-boot from Fuel; assign their roles and deploy',
  ]
}

function dom0Executor(flags: PrivateLabFlags): SshExecutor {
  const m = /^(?:([^@\s]+)@)?([^:\s@]+)(?::(\d+))?$/.exec(flags.dom0Ssh!)
  if (!m) throw new CliError(`--dom0-ssh ${flags.dom0Ssh}: expected user@host[:port]`, ExitCode.usage)
  if (!flags.dom0Key)
    throw new CliError('--dom0-ssh needs --dom0-key FILE (the private key to log in with)', ExitCode.usage)
  let key: Buffer
  try {
    key = readFileSync(flags.dom0Key)
  } catch (e) {
    throw new CliError(
      `--dom0-key ${flags.dom0Key}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      ExitCode.notFound,
    )
  }
  return new SshExecutor({
    host: m[2],
    port: m[3] ? Number(m[3]) : 22,
    username: m[1] ?? 'root',
    privateKey: key,
    knownHosts: new FileKnownHostsStore(flags.dom0KnownHosts ?? join(resolveDataDir(flags.dataDir), 'known_hosts')),
    name: m[2],
  })
}

async function checkDom0(dom0: SshExecutor, flags: PrivateLabFlags): Promise<void> {
  try {
    await dom0.run(['true'], { timeoutMs: 60_000 })
  } catch (e) {
    throw new CliError(
      `--dom0-ssh ${flags.dom0Ssh}: ${(e as Error).message}`,
      ExitCode.unreachable,
      e instanceof UnknownHostKeyError
        ? `pin dom0's host key in ${flags.dom0KnownHosts ?? 'the known_hosts file'} after checking its fingerprint on the console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`
        : undefined,
    )
  }
}

function asCliError(e: unknown): never {
  if (e instanceof PrivateLabError) throw new CliError(e.message, ExitCode.failure)
  throw e
}
