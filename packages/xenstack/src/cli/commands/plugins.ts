/**
 * `xenstack plugins check|build|install|list|remove|update` and `xenstack release list|show`.
 * Everything that prints data prints JSON with `--json`; failures are one line plus a hint (issues of an
 * invalid plugin are listed first, one per line, file:line:column first).
 */
import type { Command } from 'commander'
import { existsSync } from 'node:fs'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'
import { loadPluginDir, type LoadOptions } from '../../plugins/loader.js'
import { formatIssue, ValidationError, type Issue } from '../../plugins/source.js'
import {
  buildPlugin,
  installPlugin,
  parsePluginRef,
  PluginLifecycleError,
  removePlugin,
  updatePlugin,
} from '../../plugins/lifecycle.js'
import { builtinReleases, findRelease, loadReleaseFile, releaseToJSON, type Release } from '../../releases/release.js'
import { StateError, StateStore, type InstalledPlugin } from '../../state/store.js'
import { redactPasswords } from '../../state/secrets.js'
import { openCliStateStore } from '../state.js'

interface Common {
  json?: boolean
  dataDir?: string
  define?: string[]
  release?: string
}

const collect = (v: string, prev: string[] = []) => [...prev, v]

function defines(list: string[] = []): Record<string, string> {
  const out: Record<string, string> = {}
  for (const d of list) {
    const i = d.indexOf('=')
    if (i < 1)
      throw new CliError(`--define ${d}: expected NAME=VALUE`, ExitCode.usage, 'e.g. --define PLUGIN_VERSION=4.90')
    out[d.slice(0, i)] = d.slice(i + 1)
  }
  return out
}

/** The release a plugin is checked against: --release NAME|FILE, else the shipped release. */
function releaseFor(opt?: string): Release {
  const releases = builtinReleases()
  if (!opt) return releases[0]
  if (existsSync(opt)) {
    const r = loadReleaseFile(opt)
    if (r.errors.length || !r.release) {
      r.issues.forEach((i) => process.stderr.write(formatIssue(i) + '\n'))
      throw new CliError(`release ${opt} is invalid: ${r.errors.length} errors`, ExitCode.invalidInput)
    }
    return r.release
  }
  const found = findRelease(releases, opt)
  if (!found) {
    throw new CliError(
      `no release "${opt}"`,
      ExitCode.notFound,
      `known releases: ${releases.map((r) => r.name).join(', ')}; or give a release YAML file`,
    )
  }
  return found
}

function loadOptions(o: Common): LoadOptions {
  const release = releaseFor(o.release)
  return {
    defines: defines(o.define),
    coreTasks: release.tasks,
    releaseName: release.name,
    releaseComponents: release.components,
  }
}

function openStore(o: Common): StateStore {
  try {
    return openCliStateStore({ dataDir: o.dataDir })
  } catch (e) {
    throw new CliError(
      `cannot open the state store: ${(e as Error).message}`,
      ExitCode.failure,
      'check --data-dir / XENSTACK_HOME',
    )
  }
}

function withStore<T>(o: Common, fn: (s: StateStore) => T): T {
  const s = openStore(o)
  try {
    return fn(s)
  } finally {
    s.close()
  }
}

/** Maps the framework's errors to one CLI line + hint (issue lines go to stderr first). */
function fail(e: unknown): never {
  if (e instanceof ValidationError) {
    for (const i of e.issues) process.stderr.write(formatIssue(i) + '\n')
    const n = e.issues.filter((i) => i.severity === 'error').length
    throw new CliError(
      `${e.subject} is invalid: ${n} error${n === 1 ? '' : 's'} (listed above)`,
      ExitCode.invalidInput,
      'fix them, then run "xenstack plugins check DIR"',
    )
  }
  if (e instanceof PluginLifecycleError) {
    throw new CliError(
      e.message,
      e.code === 'not_found' ? ExitCode.notFound : e.code === 'invalid' ? ExitCode.invalidInput : ExitCode.failure,
      e.hint,
    )
  }
  if (e instanceof StateError)
    throw new CliError(e.message, e.code === 'not_found' ? ExitCode.notFound : ExitCode.failure)
  throw e
}

const summary = (p: InstalledPlugin) => ({
  name: p.name,
  version: p.version,
  major: p.major,
  packageVersion: p.packageVersion,
  title: p.title,
  releases: (p.data.metadata.releases ?? []).map((r: any) => `${r.os} ${r.version}`),
  dir: p.dir,
  archiveSha256: p.archiveSha256 ?? null,
  files: p.files.length,
  installedAt: p.installedAt,
})

export function register(program: Command): void {
  const plugins = program
    .command('plugins')
    .description('Fuel-compatible plugins: check, build, install, list, remove, update')
  const withCommon = (c: Command, opts: { store?: boolean; load?: boolean } = {}) => {
    c.option('--json', 'print JSON')
    if (opts.store) c.option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')
    if (opts.load) {
      c.option('--define <NAME=VALUE>', 'value of a @NAME@ build token (repeatable; branding.inc is read too)', collect)
      c.option(
        '--release <name|file>',
        'release whose core graph task references are checked against (default: the shipped release)',
      )
    }
    return c
  }

  withCommon(
    plugins.command('check <dir>').description('validate a plugin directory (schemas, expressions, task graph)'),
    { load: true },
  ).action((dir: string, o: Common) => {
    let r
    try {
      r = loadPluginDir(dir, loadOptions(o))
    } catch (e) {
      if (e instanceof CliError) throw e
      throw new CliError((e as Error).message, ExitCode.notFound)
    }
    const errors = r.issues.filter((i) => i.severity === 'error')
    const warnings = r.issues.filter((i) => i.severity === 'warning')
    const data = {
      dir,
      valid: errors.length === 0,
      plugin: r.plugin
        ? { name: r.plugin.name, version: r.plugin.version, packageVersion: r.plugin.packageVersion }
        : null,
      errors,
      warnings,
    }
    emit(o, data, (d) => {
      for (const i of [...d.errors, ...d.warnings] as Issue[]) console.log(formatIssue(i))
      if (d.valid) {
        console.log(
          `${d.plugin!.name} ${d.plugin!.version} (package_version ${d.plugin!.packageVersion}): valid${d.warnings.length ? `, ${d.warnings.length} warning(s)` : ''}`,
        )
      }
    })
    if (errors.length) {
      throw new CliError(
        `${dir}: ${errors.length} error${errors.length === 1 ? '' : 's'}${o.json ? '' : ' (listed above)'}`,
        ExitCode.invalidInput,
        'each line gives file:line:column, the path in the document, what was expected and found',
      )
    }
  })

  withCommon(
    plugins
      .command('build <dir>')
      .description('validate, then package the plugin as <name>-<version>.tar.gz with checksums'),
    { load: true },
  )
    .option('-o, --output <dir>', 'where to write the archive', '.')
    .action((dir: string, o: Common & { output: string }) => {
      let r
      try {
        r = buildPlugin(dir, o.output, loadOptions(o))
      } catch (e) {
        fail(e)
      }
      emit(o, r, (d) => console.log(`built ${d.file} (${d.files} files, sha256 ${d.sha256})`))
    })

  withCommon(plugins.command('install <file>').description('install a plugin archive into the state store'), {
    store: true,
    load: true,
  }).action((file: string, o: Common) =>
    withStore(o, (s) => {
      let p
      try {
        p = installPlugin(s, file, loadOptions(o))
      } catch (e) {
        fail(e)
      }
      emit(o, summary(p), (d) =>
        console.log(`installed ${d.name}==${d.version} (package_version ${d.packageVersion}) in ${d.dir}`),
      )
    }),
  )

  withCommon(
    plugins.command('update <file>').description('replace an installed plugin by a newer version of the same major'),
    { store: true, load: true },
  ).action((file: string, o: Common) =>
    withStore(o, (s) => {
      let r
      try {
        r = updatePlugin(s, file, loadOptions(o))
      } catch (e) {
        fail(e)
      }
      emit(o, { from: summary(r.from), to: summary(r.to) }, (d) =>
        console.log(`updated ${d.to.name} from ${d.from.version} to ${d.to.version}`),
      )
    }),
  )

  withCommon(plugins.command('list').description('list installed plugins'), { store: true }).action((o: Common) =>
    withStore(o, (s) => {
      const list = s.plugins.list().map((p) => ({ ...summary(p), enabledIn: s.plugins.enabledIn(p.name, p.version) }))
      emit(o, list, (d) => {
        if (!d.length) return console.log('no plugins installed')
        console.log(
          table(
            d.map((p) => ({ ...p, releases: p.releases.join(', '), enabledIn: p.enabledIn.join(', ') })),
            ['name', 'version', 'packageVersion', 'releases', 'enabledIn'],
          ),
        )
      })
    }),
  )

  withCommon(
    plugins
      .command('show <name==version>')
      .description('show an installed plugin: metadata, settings, components, tasks, files'),
    { store: true },
  ).action((ref: string, o: Common) =>
    withStore(o, (s) => {
      let parsed: { name: string; version: string }
      try {
        parsed = parsePluginRef(ref)
      } catch (e) {
        fail(e)
      }
      const p = s.plugins.get(parsed.name, parsed.version)
      if (!p) {
        const known = s.plugins.list().map((x) => `${x.name}==${x.version}`)
        throw new CliError(
          `plugin ${ref} is not installed`,
          ExitCode.notFound,
          `installed: ${known.join(', ') || 'none'}`,
        )
      }
      const data = {
        ...summary(p),
        enabledIn: s.plugins.enabledIn(p.name, p.version),
        metadata: p.data.metadata,
        attributes: redactPasswords(p.data.attributes) as Record<string, unknown>,
        components: p.data.components as { name: string }[],
        deploymentTasks: p.data.deploymentTasks as { id: string }[],
        legacyTasks: p.data.legacyTasks,
        nodeRoles: p.data.nodeRoles,
        fileList: p.files,
      }
      emit(o, data, (d) => {
        console.log(`${d.name}==${d.version} — ${d.title} (package_version ${d.packageVersion})`)
        console.log(`  releases:   ${d.releases.join(', ')}`)
        console.log(
          `  settings:   ${
            Object.keys(d.attributes)
              .filter((k) => k !== 'metadata')
              .join(', ') || 'none'
          }`,
        )
        console.log(`  components: ${d.components.map((c) => c.name).join(', ') || 'none'}`)
        console.log(
          `  tasks:      ${d.deploymentTasks.map((t) => t.id).join(', ') || `${d.legacyTasks.length} legacy`}`,
        )
        console.log(`  enabled in: ${d.enabledIn.join(', ') || 'no environment'}`)
        console.log(`  files:      ${d.fileList.length} in ${d.dir}`)
      })
    }),
  )

  withCommon(
    plugins
      .command('remove <name==version>')
      .description('remove an installed plugin (refused while an environment has it enabled)'),
    { store: true },
  ).action((ref: string, o: Common) =>
    withStore(o, (s) => {
      let p
      try {
        p = removePlugin(s, ref)
      } catch (e) {
        fail(e)
      }
      emit(o, { removed: { name: p.name, version: p.version } }, (d) =>
        console.log(`removed ${d.removed.name}==${d.removed.version}`),
      )
    }),
  )

  const release = program
    .command('release')
    .description('OpenStack releases: settings, components, roles and the core deployment graph')
  release
    .command('list')
    .description('list the releases')
    .option('--json', 'print JSON')
    .action((o: Common) => {
      const list = builtinReleases().map((r) => ({
        name: r.name,
        version: r.version,
        operatingSystem: r.operatingSystem,
        state: r.state,
        components: r.components.length,
        tasks: r.tasks.length,
      }))
      emit(o, list, (d) => console.log(table(d, ['name', 'version', 'operatingSystem', 'components', 'tasks'])))
    })
  release
    .command('show <name-or-file>')
    .description('show a release (a shipped release by name or version, or a release YAML file)')
    .option('--json', 'print JSON')
    .action((key: string, o: Common) => {
      const r = releaseFor(key)
      const data = { ...releaseToJSON(r), settings: redactPasswords(r.settings) } as ReturnType<
        typeof releaseToJSON
      > & {
        name: string
        version: string
        operatingSystem: string
        stages: string[]
        groups: string[]
        roles: Record<string, unknown>
        components: { name: string }[]
        settings: Record<string, unknown>
        tasks: unknown[]
      }
      emit(o, data, (d) => {
        console.log(`${d.name} (${d.version}, ${d.operatingSystem})`)
        console.log(`  stages:     ${d.stages.join(' → ')}`)
        console.log(`  groups:     ${d.groups.join(', ')}`)
        console.log(`  roles:      ${Object.keys(d.roles).join(', ')}`)
        console.log(`  components: ${d.components.map((c) => c.name).join(', ')}`)
        console.log(`  settings:   ${Object.keys(d.settings).join(', ')}`)
        console.log(`  tasks:      ${d.tasks.length}`)
      })
    })
}
