/**
 * `xenstack env create|list|show|delete|apply|export`, `env settings get|set|validate`, `env nodes list|assign|remove`.
 *
 * Environments are made and changed through the plugin framework (createEnvironment, changeSettings) and the
 * environment files of src/envfile; this module only parses flags and prints. Password values are never printed
 * (reads are redacted) and can be set from an environment variable so they stay out of shell history.
 */
import type { Command } from 'commander'
import { writeFileSync } from 'node:fs'
import {
  changeSettings,
  createEnvironment,
  environmentModels,
  EnvironmentError,
  resolveRelease,
} from '../../plugins/environment.js'
import { validateEnvironmentSettings } from '../../plugins/settings.js'
import { isOrphaned } from '../../engine/engine.js'
import { EngineStore } from '../../engine/store.js'
import { REDACTED } from '../../state/secrets.js'
import { StateError, type StateStore } from '../../state/store.js'
import { openCliStateStore } from '../state.js'
import { applyEnvironmentFile, exportEnvironment, valueAt } from '../../envfile/apply.js'
import { environmentRoles, roleProblems } from '../../envfile/roles.js'
import { EnvFileError, formatEnvFileIssue, readEnvFile } from '../../envfile/envfile.js'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'

interface Common {
  json?: boolean
  dataDir?: string
}

const collect = (v: string, prev: string[] = []) => [...prev, v]

/** Opens the store, runs `fn`, maps the framework's errors to one line + hint, closes the store. */
async function withStore<T>(o: Common, fn: (s: StateStore) => T | Promise<T>): Promise<T> {
  const s = openCliStateStore({ dataDir: o.dataDir })
  try {
    return await fn(s)
  } catch (e) {
    throw cliError(e)
  } finally {
    s.close()
  }
}

function cliError(e: unknown): unknown {
  if (e instanceof StateError)
    return new CliError(
      e.message,
      e.code === 'not_found' ? ExitCode.notFound : e.code === 'invalid' ? ExitCode.invalidInput : ExitCode.failure,
      e.code === 'not_found' && /environment/.test(e.message) ? 'environments: xenstack env list' : undefined,
    )
  if (e instanceof EnvironmentError) {
    // Several problems: one per line first, then the one-line summary.
    if (e.problems.length > 1) for (const p of e.problems) process.stderr.write(`  ${p}\n`)
    return new CliError(
      e.problems.length > 1 ? `${e.message.split(':')[0]}: ${e.problems.length} problems (listed above)` : e.message,
      ExitCode.invalidInput,
    )
  }
  if (e instanceof EnvFileError) {
    for (const i of e.issues.slice(0, -1)) process.stderr.write(formatEnvFileIssue(i) + '\n')
    const last = e.issues.at(-1)!
    return new CliError(
      formatEnvFileIssue(last),
      last.line === 0 ? ExitCode.notFound : ExitCode.invalidInput,
      e.issues.length > 1 ? `${e.issues.length} problems in all` : undefined,
    )
  }
  return e
}

/** `a.b` → `a.b.value`; `a.b.value` and `a.metadata.enabled` as given. */
function settingPath(p: string): string {
  const parts = p.split('.')
  if (parts.length === 2) return `${p}.value`
  if (parts.length < 2) throw new CliError(`setting "${p}": expected GROUP.SETTING (e.g. common.debug)`, ExitCode.usage)
  return p
}

/** A value as the setting's type wants it (checkbox → boolean, number → number, text_list → list). */
function typedValue(tree: Record<string, any>, path: string, raw: string): unknown {
  const setting = valueAt(tree, path.split('.').slice(0, -1).join('.')) as Record<string, any> | undefined
  if (!setting || typeof setting !== 'object')
    throw new CliError(`no setting at ${path}`, ExitCode.notFound, 'list them: xenstack env settings get ENV GROUP')
  if (path.endsWith('.metadata.enabled') || setting.type === 'checkbox' || typeof setting.value === 'boolean') {
    if (!['true', 'false'].includes(raw))
      throw new CliError(`${path}: expected true or false, found "${raw}"`, ExitCode.usage)
    return raw === 'true'
  }
  if (setting.type === 'number' || typeof setting.value === 'number') {
    const n = Number(raw)
    if (raw.trim() === '' || Number.isNaN(n))
      throw new CliError(`${path}: expected a number, found "${raw}"`, ExitCode.usage)
    return n
  }
  if (Array.isArray(setting.value)) return raw === '' ? [] : raw.split(',').map((s) => s.trim())
  return raw
}

function summary(s: StateStore, name: string) {
  const e = s.environments.require(name)
  const nodes = s.environments.nodes(name)
  return {
    name: e.name,
    release: e.release,
    status: e.status,
    components: e.components,
    plugins: e.plugins.filter((p) => p.enabled).map((p) => ({ name: p.name, version: p.version })),
    nodes: nodes.map((n) => ({
      name: n.name,
      roles: n.roles,
      status: n.status,
      ...(typeof n.data?.pool === 'string' ? { pool: n.data.pool } : {}),
    })),
    createdAt: e.createdAt,
    updatedAt: e.updatedAt,
  }
}

function parseAssignments(list: string[] = [], what: string): [string, string][] {
  return list.map((a) => {
    const i = a.indexOf('=')
    if (i < 1) throw new CliError(`${what} "${a}": expected PATH=VALUE`, ExitCode.usage)
    return [a.slice(0, i), a.slice(i + 1)]
  })
}

export function register(program: Command): void {
  const envCmd = program
    .command('env')
    .description('environments: create, list, show, delete, apply/export files, settings, nodes')
  const common = (c: Command, json = true) => {
    if (json) c.option('--json', 'print JSON')
    return c.option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')
  }

  common(
    envCmd
      .command('create')
      .description('create an environment from a release, components and plugins')
      .argument('<name>')
      .option('--release <name|version>', 'release (default: the shipped release)')
      .option('--component <name>', 'select a component (repeatable; default: the release defaults)', collect)
      .option('--plugin <name[==version]>', 'enable a plugin (repeatable)', collect)
      .option('--set <group.setting=value>', 'a setting value (repeatable)', collect)
      .option(
        '--set-from-env <group.setting=VARIABLE>',
        'a setting value read from an environment variable (passwords)',
        collect,
      ),
  ).action(
    (
      name: string,
      o: Common & { release?: string; component?: string[]; plugin?: string[]; set?: string[]; setFromEnv?: string[] },
    ) =>
      withStore(o, (s) => {
        const settings: Record<string, unknown> = {}
        for (const [p, v] of parseAssignments(o.set, '--set')) settings[settingPath(p)] = parseLoose(v)
        for (const [p, v] of parseAssignments(o.setFromEnv, '--set-from-env')) settings[settingPath(p)] = fromEnv(v)
        const plugins = (o.plugin ?? []).map((p) => {
          const [pname, version] = p.split('==')
          return { name: pname, version }
        })
        createEnvironment(s, { name, release: o.release, components: o.component, plugins, settings })
        emit(o, summary(s, name), (d) =>
          process.stdout.write(
            `environment ${d.name} created (${d.release}; plugins: ${d.plugins.map((p) => p.name).join(', ') || 'none'})\n`,
          ),
        )
      }),
  )

  common(envCmd.command('list').description('list environments')).action((o: Common) =>
    withStore(o, (s) => {
      const list = s.environments.list().map((e) => summary(s, e.name))
      emit(o, list, (d) => {
        if (!d.length) return void process.stdout.write('no environments\n')
        process.stdout.write(
          table(
            d.map((e) => ({ ...e, nodes: e.nodes.length, plugins: e.plugins.map((p) => p.name).join(', ') })),
            ['name', 'release', 'status', 'nodes', 'plugins'],
          ) + '\n',
        )
      })
    }),
  )

  common(
    envCmd.command('show').description('an environment: release, components, plugins, nodes').argument('<name>'),
  ).action((name: string, o: Common) =>
    withStore(o, (s) => {
      emit(o, summary(s, name), (d) => {
        process.stdout.write(`${d.name} — ${d.status}\n  release:    ${d.release}\n`)
        process.stdout.write(`  components: ${d.components.join(', ') || 'none'}\n`)
        process.stdout.write(`  plugins:    ${d.plugins.map((p) => `${p.name}==${p.version}`).join(', ') || 'none'}\n`)
        process.stdout.write(
          d.nodes.length
            ? table(
                d.nodes.map((n) => ({ ...n, roles: n.roles.join(', ') })),
                ['name', 'roles', 'status', 'pool'],
              ).replace(/^/gm, '  ') + '\n'
            : '  no nodes\n',
        )
      })
    }),
  )

  common(envCmd.command('delete').description('delete an environment and its nodes').argument('<name>')).action(
    (name: string, o: Common) =>
      withStore(o, (s) => {
        s.environments.require(name)
        const engine = new EngineStore(s.db)
        const last = engine.latestDeployment(name)
        if (last && (last.status === 'running' || last.status === 'pending') && !isOrphaned(engine, last.id))
          throw new CliError(
            `environment ${name} has deployment ${last.id} running (process ${last.pid}); not deleted`,
            ExitCode.failure,
            `stop it first: xenstack deploy stop ${name}`,
          )
        // One transaction: the environment and what the engine remembers of it (history, redeploy digests) go
        // together, so a new environment of the same name starts with a first deploy.
        s.transaction(() => {
          engine.forgetEnvironment(name)
          s.environments.delete(name)
        })
        emit(o, { deleted: name }, () => process.stdout.write(`environment ${name} deleted\n`))
      }),
  )

  common(
    envCmd
      .command('apply')
      .description('create or update an environment from a YAML environment file (a second apply changes nothing)')
      .argument('<file>')
      .option('--replace', 'delete and re-create the environment when its release, components or plugins differ')
      .option('--dry-run', 'print what would change, change nothing'),
  ).action((file: string, o: Common & { replace?: boolean; dryRun?: boolean }) =>
    withStore(o, (s) => {
      const f = readEnvFile(file)
      for (const w of f.warnings) process.stderr.write(`warning: ${formatEnvFileIssue(w)}\n`)
      const r = applyEnvironmentFile(s, f, { replace: o.replace, dryRun: o.dryRun })
      emit(o, r, (d) => {
        const would = d.dryRun ? 'would be ' : ''
        for (const c of d.changes) process.stdout.write(`${d.dryRun ? 'would: ' : ''}${c}\n`)
        process.stdout.write(
          d.changes.length
            ? `environment ${d.environment} ${would}${d.created ? 'created' : 'updated'}${d.dryRun ? ' (dry run: nothing changed)' : ''}\n`
            : `environment ${d.environment}: no changes\n`,
        )
      })
    }),
  )

  common(
    envCmd
      .command('export')
      .description('write an environment file that "env apply" reproduces')
      .argument('<name>')
      .option('-o, --output <file>', 'write to FILE (mode 0600) instead of stdout')
      .option(
        '--secrets <how>',
        'encrypted (this data directory only) or env ({env: XENSTACK_SECRET_…} placeholders)',
        'encrypted',
      ),
    false,
  ).action((name: string, o: Common & { output?: string; secrets: string }) =>
    withStore(o, (s) => {
      if (o.secrets !== 'encrypted' && o.secrets !== 'env')
        throw new CliError(`--secrets ${o.secrets}: expected encrypted or env`, ExitCode.usage)
      const text = exportEnvironment(s, name, { secrets: o.secrets })
      if (o.output) {
        writeFileSync(o.output, text, { mode: 0o600 })
        process.stderr.write(`environment ${name} written to ${o.output}\n`)
      } else process.stdout.write(text)
    }),
  )

  const settings = envCmd.command('settings').description("an environment's settings: get, set, validate")
  common(
    settings
      .command('get')
      .description('setting values (all, a GROUP, or GROUP.SETTING); passwords show as ********')
      .argument('<env>')
      .argument('[path]'),
  ).action((name: string, path: string | undefined, o: Common) =>
    withStore(o, (s) => {
      const tree = s.environments.settings(name) // redacted
      const rows: { path: string; value: unknown; type?: string; label?: string }[] = []
      for (const [group, body] of Object.entries(tree)) {
        if (!body || typeof body !== 'object') continue
        for (const [key, v] of Object.entries(body as Record<string, any>)) {
          if (key === 'metadata' || !v || typeof v !== 'object' || !('value' in v)) continue
          rows.push({ path: `${group}.${key}`, value: v.value, type: v.type, label: v.label })
        }
      }
      const wanted = path?.replace(/\.value$/, '')
      const selected = wanted ? rows.filter((r) => r.path === wanted || r.path.startsWith(`${wanted}.`)) : rows
      if (wanted && !selected.length)
        throw new CliError(
          `environment ${name} has no setting ${path}`,
          ExitCode.notFound,
          `groups: ${Object.keys(tree).join(', ')}`,
        )
      if (wanted && selected.length === 1 && selected[0].path === wanted)
        return emit(o, selected[0], (d) =>
          process.stdout.write(`${typeof d.value === 'string' ? d.value : JSON.stringify(d.value)}\n`),
        )
      emit(o, selected, (d) => process.stdout.write(table(d, ['path', 'value', 'type']) + '\n'))
    }),
  )

  common(
    settings
      .command('set')
      .description('change settings (checked against restrictions, roles and plugins; nothing saved on a problem)')
      .argument('<env>')
      .argument('[assignments...]', 'GROUP.SETTING=VALUE (GROUP.metadata.enabled=true|false toggles a plugin)')
      .option('--from-env <group.setting=VARIABLE>', 'take a value from an environment variable (passwords)', collect),
  ).action((name: string, assignments: string[], o: Common & { fromEnv?: string[] }) =>
    withStore(o, (s) => {
      const tree = s.environments.settings(name)
      const changes: Record<string, unknown> = {}
      for (const [p, v] of parseAssignments(assignments, 'setting')) {
        const path = settingPath(p)
        const value = typedValue(tree, path, v)
        if (valueAt(tree, path.replace(/\.value$/, '.type')) === 'password')
          process.stderr.write(
            `warning: ${p}: a password on the command line lands in shell history; use --from-env ${p}=VARIABLE\n`,
          )
        changes[path] = value
      }
      for (const [p, v] of parseAssignments(o.fromEnv, '--from-env')) {
        const path = settingPath(p)
        changes[path] = typedValue(tree, path, fromEnv(v))
      }
      if (!Object.keys(changes).length)
        throw new CliError('nothing to set', ExitCode.usage, 'xenstack env settings set ENV GROUP.SETTING=VALUE')
      changeSettings(s, name, changes)
      const after = s.environments.settings(name)
      const shown = Object.keys(changes).map((path) => ({ path, value: valueAt(after, path) }))
      emit(o, shown, (d) => {
        for (const c of d)
          process.stdout.write(`${c.path} = ${c.value === REDACTED ? REDACTED : JSON.stringify(c.value)}\n`)
      })
    }),
  )

  common(
    settings
      .command('validate')
      .description("check an environment's settings (types, regexes, restrictions)")
      .argument('<env>'),
  ).action((name: string, o: Common) =>
    withStore(o, (s) => {
      const env = s.environments.require(name)
      const models = environmentModels(s, name, { reveal: true })
      const errors = validateEnvironmentSettings(resolveRelease(s, env.release), models.settings as any, {
        cluster: models.cluster,
      }).map((e) => ({ path: e.path, label: e.label, message: e.message }))
      emit(o, { environment: name, valid: errors.length === 0, errors }, (d) => {
        for (const e of d.errors) process.stdout.write(`${e.path}: ${e.message}\n`)
        if (d.valid) process.stdout.write(`settings of ${name} are valid\n`)
      })
      if (errors.length)
        throw new CliError(
          `settings of ${name}: ${errors.length} error${errors.length === 1 ? '' : 's'}`,
          ExitCode.invalidInput,
        )
    }),
  )

  const nodes = envCmd.command('nodes').description("an environment's nodes: list, assign roles, remove")
  common(nodes.command('list').description('nodes with roles, status and pool').argument('<env>')).action(
    (name: string, o: Common) =>
      withStore(o, (s) => {
        const list = summary(s, name).nodes
        emit(o, list, (d) =>
          process.stdout.write(
            d.length
              ? table(
                  d.map((n) => ({ ...n, roles: n.roles.join(', ') })),
                  ['name', 'roles', 'status', 'pool'],
                ) + '\n'
              : `no nodes in ${name}\n`,
          ),
        )
      }),
  )
  common(
    nodes
      .command('assign')
      .description('give a node its roles (and pool); --add creates the node')
      .argument('<env>')
      .argument('<node>')
      .requiredOption('--roles <a,b>', 'roles, comma-separated (replace the current ones)')
      .option('--pool <name>', 'the pool (connection profile) the node belongs to')
      .option('--add', 'add the node when the environment does not have it'),
  ).action((name: string, node: string, o: Common & { roles: string; pool?: string; add?: boolean }) =>
    withStore(o, (s) => {
      s.environments.require(name)
      const roles = o.roles
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean)
      const known = Object.keys(environmentRoles(s, name)).sort()
      const unknown = roles.filter((r) => !known.includes(r))
      if (unknown.length)
        throw new CliError(
          `unknown role${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`,
          ExitCode.usage,
          `roles: ${known.join(', ')}`,
        )
      if (o.pool && !s.pools.get(o.pool))
        throw new CliError(`no pool profile "${o.pool}"`, ExitCode.notFound, 'xenstack pool add NAME --url URL')
      const all = s.environments.nodes(name)
      const current = all.find((n) => n.name === node)
      const problems = roleProblems(s, name, [
        ...all.filter((n) => n.name !== node).map((n) => ({ name: n.name, roles: n.roles })),
        { name: node, roles },
      ]).filter((p) => p.node === undefined || p.node === node)
      if (problems.length)
        throw new CliError(
          `node ${node}: ${problems.map((p) => p.message).join('; ')}`,
          ExitCode.invalidInput,
          `roles: ${known.join(', ')}`,
        )
      if (!current && !o.add)
        throw new CliError(
          `node "${node}" does not exist in environment "${name}"`,
          ExitCode.notFound,
          'add it with --add',
        )
      const data = { ...(current?.data ?? {}), ...(o.pool ? { pool: o.pool } : {}) }
      const rec = current
        ? s.environments.updateNode(name, node, { roles, data })
        : s.environments.addNode(name, { name: node, roles, data })
      emit(o, { environment: name, node: rec.name, roles: rec.roles, pool: rec.data.pool }, (d) =>
        process.stdout.write(
          `node ${d.node} of ${name}: ${d.roles.join(', ') || 'no roles'}${d.pool ? ` (pool ${d.pool})` : ''}\n`,
        ),
      )
    }),
  )
  common(
    nodes.command('remove').description('remove a node from the environment').argument('<env>').argument('<node>'),
  ).action((name: string, node: string, o: Common) =>
    withStore(o, (s) => {
      s.environments.removeNode(name, node)
      emit(o, { environment: name, removed: node }, () => process.stdout.write(`node ${node} removed from ${name}\n`))
    }),
  )
}

/** `--set` values: JSON when they parse (true, 3, ["a"]), else the string. */
function parseLoose(v: string): unknown {
  try {
    return JSON.parse(v)
  } catch {
    return v
  }
}

function fromEnv(variable: string): string {
  const v = process.env[variable]
  if (v === undefined) throw new CliError(`environment variable ${variable} is not set`, ExitCode.usage)
  return v
}
