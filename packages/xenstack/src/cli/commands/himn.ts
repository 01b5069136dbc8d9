/**
 * `xenstack himn add|remove|status VM…` — the XenCenter HIMN tool ("Manage internal management network") as a
 * command, through XAPI (integration/himn/attach.ts): the HIMN found by its other_config flag, VIF device 9 or the
 * first free one, hot-plugged when the VM runs with PV drivers, otherwise a clean shutdown/start cycle only with
 * `--allow-restart`; `vm-data/himn_mac` written to the VM's xenstore_data. `remove` undoes it. A VM is named by
 * name label, uuid or OpaqueRef; the pool by the connection flags (`--pool`, or `--url` with the password from
 * `XENSTACK_XAPI_PASSWORD`, stdin or a prompt).
 */
import type { Command } from 'commander'
import type { Xapi } from '@xenstack/xenapi'
import { HimnAttacher, HimnError, type HimnChange, type HimnStatus } from '../../integration/himn/attach.js'
import { addConnectionOptions, withXapi, type ConnectionFlags } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'

interface HimnFlags extends ConnectionFlags {
  json?: boolean
  allowRestart?: boolean
}

export function register(program: Command): void {
  const himn = program
    .command('himn')
    .description('attach VMs to the host internal management network (the XenCenter HIMN tool, through XAPI)')

  const changes = [
    ['add', 'give each VM a VIF on the HIMN (hot-plug, or a shutdown/start cycle with --allow-restart)'],
    ['remove', "remove each VM's HIMN VIF and its vm-data/himn_mac xenstore key"],
  ] as const
  for (const [op, description] of changes)
    addConnectionOptions(
      himn.command(op).description(description).argument('<vm...>', 'VM name label, uuid or OpaqueRef'),
    )
      .option('--allow-restart', 'consent to a clean shutdown/start of a running VM without PV drivers')
      .option('--json', 'print the result as JSON')
      .action((vms: string[], flags: HimnFlags) => change(op, vms, flags))

  addConnectionOptions(
    himn
      .command('status')
      .description("each VM's HIMN VIF, power state, PV drivers and what add would need")
      .argument('<vm...>', 'VM name label, uuid or OpaqueRef'),
  )
    .option('--json', 'print the result as JSON')
    .action((vms: string[], flags: HimnFlags) =>
      withXapi(flags, async (xapi) => {
        const out: HimnStatus[] = []
        const attacher = new HimnAttacher(xapi)
        for (const vm of vms) out.push(await attacher.status(await resolve(attacher, vm)).catch(asCliError))
        emit(flags, out, (rows) =>
          process.stdout.write(
            table(
              rows.map((s) => ({
                host: s.vm.host,
                vm: s.vm.name,
                power_state: s.vm.powerState,
                pv: s.vm.pvDrivers ? 'yes' : 'no',
                status: s.status,
              })),
              ['host', 'vm', 'power_state', 'pv', 'status'],
            ) + '\n',
          ),
        )
      }),
    )
}

async function change(what: 'add' | 'remove', vms: string[], flags: HimnFlags): Promise<void> {
  await withXapi(flags, async (xapi: Xapi) => {
    const attacher = new HimnAttacher(xapi, {
      log: flags.json ? undefined : (line) => process.stderr.write(`${line}\n`),
    })
    const out: HimnChange[] = []
    for (const vm of vms) {
      const ref = await resolve(attacher, vm)
      try {
        out.push(await attacher[what](ref, { allowRestart: flags.allowRestart === true }))
      } catch (e) {
        if (e instanceof HimnError && /without PV drivers/.test(e.message))
          throw new CliError(
            e.message.replace(/ \(setting xenserver\.allow_vm_restart, or --allow-restart\)$/, ''),
            ExitCode.failure,
            `run again with --allow-restart to let xenstack shut ${vm} down and start it`,
          )
        throw asCliError(e)
      }
    }
    emit(flags, out, (rows) => {
      for (const r of rows) {
        if (!r.changed)
          process.stdout.write(`${r.vm}: unchanged${r.vif ? ` (VIF ${r.vif.device}, ${r.vif.mac})` : ''}\n`)
        else process.stdout.write(`${r.vm}: ${r.actions.join('; ')}\n`)
      }
    })
  })
}

/** A HIMN error (no HIMN in the pool, no free device, a VM that does not reach its power state) as one CLI line. */
function asCliError(e: unknown): never {
  if (e instanceof HimnError) throw new CliError(e.message, ExitCode.failure)
  throw e
}

async function resolve(attacher: HimnAttacher, vm: string): Promise<string> {
  try {
    return await attacher.resolveVm(vm)
  } catch (e) {
    if (e instanceof HimnError) throw new CliError(e.message, ExitCode.notFound, 'list VMs with: xenstack xapi vm-list')
    throw e
  }
}
