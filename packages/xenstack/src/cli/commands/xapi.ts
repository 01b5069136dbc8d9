/**
 * `xenstack xapi` — a small `xe`-like view of any pool, real or simulated: `vm-list`, `host-list`, `network-list`,
 * `pif-list`, `vif-list`, `sr-list`, `vdi-list`, `patch-list`, `update-list` (each with `--where` filters,
 * `--params` columns, a table or `--json`), and `plugin-call HOST PLUGIN FN [k=v…]`.
 *
 * Lists read `<Class>.get_all_records` once, plus the records of the classes the shown or filtered references
 * point to (so `resident_on` shows the host's name and `--where resident_on=host1` works by name or uuid).
 */
import type { Command } from 'commander'
import type { Xapi } from '@xenstack/xenapi'
import { classes, getClass } from '@xenstack/xapi-wire'
import { addConnectionOptions, withXapi, type ConnectionFlags } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'
import {
  cell,
  classSpec,
  jsonValue,
  matches,
  parseColumns,
  parseFilter,
  QueryError,
  referencedClasses,
  type Filter,
  type RecordsByRef,
  type RefIndex,
  type XapiRecord,
} from '../xapi-query.js'

interface ListOpts extends ConnectionFlags {
  where?: string[]
  params?: string
  json?: boolean
}

interface ListSpec {
  command: string
  cls: string
  description: string
  columns: string[]
  /** Filters applied unless the user filters on the same field (xe hides templates in vm-list too). */
  defaultWhere?: string[]
}

const LISTS: ListSpec[] = [
  {
    command: 'vm-list',
    cls: 'VM',
    description: 'virtual machines (templates and snapshots hidden unless --where is_a_template=… / is_a_snapshot=…)',
    columns: ['uuid', 'name_label', 'power_state', 'resident_on', 'is_control_domain'],
    defaultWhere: ['is_a_template=false', 'is_a_snapshot=false'],
  },
  {
    command: 'host-list',
    cls: 'host',
    description: 'hosts of the pool',
    columns: ['uuid', 'name_label', 'address', 'enabled', 'software_version:product_version'],
  },
  {
    command: 'network-list',
    cls: 'network',
    description: 'networks',
    columns: ['uuid', 'name_label', 'bridge', 'MTU'],
  },
  {
    command: 'pif-list',
    cls: 'PIF',
    description: 'physical interfaces',
    columns: ['uuid', 'device', 'host', 'network', 'MAC', 'IP', 'management', 'currently_attached'],
  },
  {
    command: 'vif-list',
    cls: 'VIF',
    description: 'virtual interfaces',
    columns: ['uuid', 'device', 'VM', 'network', 'MAC', 'currently_attached'],
  },
  {
    command: 'sr-list',
    cls: 'SR',
    description: 'storage repositories',
    columns: ['uuid', 'name_label', 'type', 'shared', 'physical_size', 'physical_utilisation'],
  },
  {
    command: 'vdi-list',
    cls: 'VDI',
    description: 'virtual disks',
    columns: ['uuid', 'name_label', 'SR', 'virtual_size', 'type', 'read_only'],
  },
  {
    command: 'patch-list',
    cls: 'pool_patch',
    description: 'patches (pool_patch, XenServer ≤ 7.0)',
    columns: ['uuid', 'name_label', 'version', 'pool_applied', 'after_apply_guidance'],
  },
  {
    command: 'update-list',
    cls: 'pool_update',
    description: 'updates (pool_update, XenServer ≥ 7.1)',
    columns: ['uuid', 'name_label', 'version', 'hosts', 'after_apply_guidance'],
  },
]

const collect = (v: string, prev: string[] = []) => [...prev, v]

async function allRecords(xapi: Xapi, cls: string): Promise<RecordsByRef> {
  const r = (await xapi.call(`${cls}.get_all_records`)) as Record<string, XapiRecord>
  return new Map(Object.entries(r))
}

/** Reads a class's records, applies the filters, returns them with a ref index for display. */
export async function queryRecords(
  xapi: Xapi,
  spec: ListSpec,
  filters: Filter[],
  shownFields: ReturnType<typeof parseColumns>,
): Promise<{ rows: [string, XapiRecord][]; refs: RefIndex }> {
  const classes = referencedClasses([...shownFields.map((c) => c.field), ...filters.map((f) => f.field)])
  const [main, ...others] = await Promise.all([spec.cls, ...classes].map((c) => allRecords(xapi, c)))
  const byClass = new Map<string, RecordsByRef>(classes.map((c, i) => [c, others[i]]))
  byClass.set(spec.cls, main)
  const refs: RefIndex = { get: (cls, ref) => byClass.get(cls)?.get(ref) }
  const rows = [...main].filter(([, r]) => filters.every((f) => matches(f, r, refs)))
  rows.sort(([, a], [, b]) =>
    String(a.name_label ?? a.device ?? a.uuid).localeCompare(String(b.name_label ?? b.device ?? b.uuid)),
  )
  return { rows, refs }
}

const listOptions = (c: Command, columns: string) =>
  addConnectionOptions(
    c
      .option('--where <field=value>', 'filter, repeatable (=, !=, <, <=, >, >=, ~; MAP:KEY=value for maps)', collect)
      .option('--params <a,b,c>', `columns (default ${columns}; "all" for every field)`)
      .option('--json', 'print a JSON array (the --params columns, else whole records with their ref)'),
  )

function listCommand(parent: Command, spec: ListSpec): void {
  listOptions(parent.command(spec.command).description(spec.description), spec.columns.join(',')).action(
    (o: ListOpts) => runList(spec, o),
  )
}

/** `xapi list CLASS`: any class XAPI lists (VBD, PBD, pool, task, message, …) with the same filters and columns. */
function genericListCommand(parent: Command): void {
  listOptions(
    parent
      .command('list')
      .description('objects of any class XAPI lists (VBD, PBD, pool, task, …), with the same --where/--params')
      .argument('<class>', 'XAPI class name (VBD, PBD, pool, host_cpu, …)'),
    'uuid and name_label when the class has them',
  ).action((clsName: string, o: ListOpts) => {
    const cls = getClass(clsName) ?? classes.find((c) => c.name.toLowerCase() === clsName.toLowerCase())
    if (!cls?.hasGetAllRecords)
      throw new CliError(
        cls ? `XAPI class ${cls.name} has no get_all_records` : `no XAPI class "${clsName}"`,
        ExitCode.usage,
        `classes: ${classes
          .filter((c) => c.hasGetAllRecords)
          .map((c) => c.name)
          .join(', ')}`,
      )
    const columns = ['uuid', 'name_label'].filter((f) => cls.fields.some((x) => x.name === f))
    return runList({ command: `list ${cls.name}`, cls: cls.name, description: '', columns }, o)
  })
}

async function runList(spec: ListSpec, o: ListOpts): Promise<void> {
  const cls = classSpec(spec.cls)
  let filters: Filter[]
  let columns: ReturnType<typeof parseColumns>
  try {
    filters = (o.where ?? []).map((w) => parseFilter(cls, w))
    const given = new Set(filters.map((f) => f.field.name))
    for (const d of spec.defaultWhere ?? []) {
      const f = parseFilter(cls, d)
      if (!given.has(f.field.name)) filters.push(f)
    }
    columns = parseColumns(cls, o.params, spec.columns)
  } catch (e) {
    if (e instanceof QueryError)
      throw new CliError(e.message, ExitCode.usage, `fields of ${spec.cls}: xenstack xapi ${spec.command} --params all`)
    throw e
  }
  await withXapi(o, async (xapi) => {
    const { rows, refs } = await queryRecords(xapi, spec, filters, columns)
    if (o.json) {
      const out = rows.map(([ref, r]) =>
        o.params
          ? Object.fromEntries(
              columns.map((c) => [
                c.name,
                jsonValue(
                  c.key !== undefined ? (r[c.field.name] as Record<string, unknown>)?.[c.key] : r[c.field.name],
                ),
              ]),
            )
          : { ref, ...(jsonValue(r) as object) },
      )
      emit(o, out, () => undefined)
      return
    }
    const data = rows.map(([, r]) => Object.fromEntries(columns.map((c) => [c.name, cell(r, c, refs)])))
    process.stdout.write(
      (data.length
        ? table(
            data,
            columns.map((c) => c.name),
          )
        : `no ${spec.cls} matches`) + '\n',
    )
  })
}

export function register(program: Command): void {
  const xapi = program
    .command('xapi')
    .description('an xe-like view of any pool (--pool NAME, $XENSTACK_POOL, or --url/--username)')
  for (const spec of LISTS) listCommand(xapi, spec)
  genericListCommand(xapi)
  const call = xapi
    .command('plugin-call')
    .description('call a dom0 plugin function on a host (host.call_plugin): HOST by name, uuid or ref')
    .argument('<host>', 'host name_label, uuid or OpaqueRef')
    .argument('<plugin>', 'plugin file in /etc/xapi.d/plugins')
    .argument('<fn>', 'function')
    .argument('[args...]', 'arguments as key=value')
    .option('--json', 'print {host, plugin, fn, result}')
  addConnectionOptions(call).action(async (host: string, plugin: string, fn: string, args: string[], o: ListOpts) => {
    const pargs: Record<string, string> = {}
    for (const a of args) {
      const i = a.indexOf('=')
      if (i < 1) throw new CliError(`plugin argument "${a}": expected key=value`, ExitCode.usage)
      pargs[a.slice(0, i)] = a.slice(i + 1)
    }
    await withXapi(o, async (x) => {
      const hosts = await allRecords(x, 'host')
      const found = [...hosts].filter(([ref, r]) => ref === host || r.uuid === host || r.name_label === host)
      if (found.length !== 1)
        throw new CliError(
          found.length
            ? `host "${host}" is ambiguous (${found.length} hosts have that name)`
            : `no host "${host}" in the pool`,
          ExitCode.notFound,
          `hosts: ${[...hosts.values()].map((r) => r.name_label).join(', ')}`,
        )
      const [ref, rec] = found[0]
      const result = await x.callPlugin(ref, plugin, fn, pargs)
      emit(o, { host: rec.name_label, plugin, fn, result }, (d) =>
        process.stdout.write(d.result + (d.result.endsWith('\n') ? '' : '\n')),
      )
    })
  })
}
