/**
 * Making an environment file true (`env apply`) and writing one from the store (`env export`).
 *
 * apply: pools are added or updated, then the environment is created through the plugin framework's
 * `createEnvironment` or, when it exists, reconciled: settings that differ go through `changeSettings` (with its
 * dependency checks), nodes are added, changed or removed. Release, components and plugins cannot change in place
 * (a different environment; `replace` deletes and re-creates it). Everything happens in one transaction: a
 * failure leaves the store as it was. A second apply of the same file changes nothing.
 *
 * export: the release, selection, enabled plugins, the pools the nodes use, the nodes, and every setting value that
 * differs from the release's and plugins' defaults — with secrets as `{encrypted: …}` (this data directory's key)
 * or, with `secrets: 'env'`, `{env: NAME}` placeholders to fill in.
 */
import { isDeepStrictEqual } from 'node:util'
import { stringify } from 'yaml'
import {
  changeSettings,
  compatiblePlugins,
  createEnvironment,
  EnvironmentError,
  resolveRelease,
} from '../plugins/environment.js'
import { mergeSettings } from '../plugins/settings.js'
import { normaliseFingerprint } from '@xenstack/xenapi'
import { REDACTED } from '../state/secrets.js'
import { StateError, type StateStore } from '../state/store.js'
import { roleProblems } from './roles.js'
import { EnvFileError, locateSetting, type EnvFile, type EnvFileIssue, type SecretRef } from './envfile.js'

export interface ApplyOptions {
  /** Where `{env: NAME}` secrets are read (default process.env). */
  env?: NodeJS.ProcessEnv
  /** Delete and re-create an existing environment whose release, components or plugins differ. */
  replace?: boolean
  /** Work out every change, then roll the transaction back: nothing is written. */
  dryRun?: boolean
}

/** Thrown inside the transaction to roll a dry run back, carrying what it would have changed. */
class DryRunRollback {
  constructor(readonly result: ApplyResult) {}
}

export interface ApplyResult {
  environment: string
  created: boolean
  /** True when nothing was written (`dryRun`): `changes` is what an apply would do. */
  dryRun: boolean
  /** One line per change made ("setting common.debug.value changed", "node compute-2 added"). */
  changes: string[]
}

function reveal(store: StateStore, ref: SecretRef, env: NodeJS.ProcessEnv, fail: (m: string) => void): string {
  if ('plain' in ref) return ref.plain
  if ('env' in ref) {
    const v = env[ref.env]
    if (v === undefined || v === '') fail(`environment variable ${ref.env} is not set`)
    return v ?? ''
  }
  try {
    return store.secrets.decrypt(ref.encrypted)
  } catch (e) {
    fail(`${(e as Error).message} (an {encrypted} value only works with the data directory that exported it)`)
    return ''
  }
}

export function valueAt(tree: Record<string, any>, path: string): unknown {
  return path.split('.').reduce<any>((o, k) => (o && typeof o === 'object' ? o[k] : undefined), tree)
}

/** Whether a settings path (`group.setting.value`) is a `type: password` setting's value. */
export function isPasswordSetting(tree: Record<string, any>, path: string): boolean {
  const parts = path.split('.')
  return (
    valueAt(tree, parts.slice(0, -1).join('.')) !== undefined &&
    valueAt(tree, [...parts.slice(0, -1), 'type'].join('.')) === 'password'
  )
}

export function applyEnvironmentFile(store: StateStore, f: EnvFile, opts: ApplyOptions = {}): ApplyResult {
  const env = opts.env ?? process.env
  const issues: EnvFileIssue[] = []
  const issueAt = (path: string[], message: string) => issues.push({ ...f.locate(path), path: path.join('.'), message })

  // Secrets first: every missing variable is reported at once, before anything is written.
  const poolPasswords = new Map<string, string>()
  for (const [name, p] of f.pools)
    if (p.password)
      poolPasswords.set(
        name,
        reveal(store, p.password, env, (m) => issueAt(['pools', name, 'password'], m)),
      )
  const settings: Record<string, unknown> = {}
  for (const [path, v] of f.settings) {
    const ref =
      v && typeof v === 'object' && !Array.isArray(v) && ('env' in v || 'encrypted' in v) ? (v as SecretRef) : undefined
    settings[path] = ref
      ? reveal(store, ref, env, (m) => {
          const p = locateSetting(f.locate, path)
          issues.push({ file: p.file, line: p.line, column: p.column, path: `settings.${path}`, message: m })
        })
      : v
  }
  for (const [name, n] of f.nodes)
    if (n.pool && !f.pools.has(n.pool) && !store.pools.get(n.pool))
      issueAt(['nodes', name, 'pool'], `no pool "${n.pool}" in the file's pools nor in the profiles`)
  if (issues.length) throw new EnvFileError(issues)

  const changes: string[] = []
  const nodes = [...f.nodes].map(([name, n]) => ({
    name,
    roles: n.roles,
    data: n.pool ? { ...n.data, pool: n.pool } : { ...n.data },
  }))
  const located = (e: unknown): never => {
    // Errors of the framework name the setting or node: point at it in the file when we can.
    if (e instanceof EnvironmentError || e instanceof StateError) {
      const problems = e instanceof EnvironmentError ? e.problems : [e.message]
      throw new EnvFileError(
        problems.map((message) => {
          // The setting the problem names (framework messages say "group.setting" somewhere in them).
          const setting = [...f.settings.keys()]
            .map((k) => k.replace(/\.value$/, ''))
            .find((k) =>
              new RegExp(`(^|[\\s(])${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.value)?($|[\\s):,;])`).test(message),
            )
          const p = setting ? locateSetting(f.locate, `${setting}.value`) : f.locate(['name'])
          return {
            file: p.file,
            line: p.line,
            column: p.column,
            path: setting ? `settings.${setting}` : 'name',
            message,
          }
        }),
      )
    }
    throw e
  }

  const finish = (r: Omit<ApplyResult, 'dryRun'>): ApplyResult => {
    // The nodes as they now are, checked like the server's nodes page (conflicting roles, disabled roles).
    const problems = roleProblems(
      store,
      f.name,
      store.environments.nodes(f.name).map((n) => ({ name: n.name, roles: n.roles })),
    )
    if (problems.length)
      throw new EnvFileError(
        problems.map((p) => {
          const at = f.locate(p.node ? ['nodes', p.node, 'roles'] : ['nodes'])
          return {
            file: at.file,
            line: at.line,
            column: at.column,
            path: p.node ? `nodes.${p.node}.roles` : 'nodes',
            message: p.message,
          }
        }),
      )
    if (opts.dryRun) throw new DryRunRollback({ ...r, dryRun: true })
    return { ...r, dryRun: false }
  }
  try {
    return store.transaction(() => {
      for (const [name, p] of f.pools) {
        if (!p.url) {
          if (!store.pools.get(name))
            issueAt(['pools', name], `pool "${name}" has no url and no profile of that name exists`)
          continue
        }
        const want = {
          url: p.url,
          username: p.username ?? 'root',
          password: poolPasswords.get(name)!,
          tls: { verify: p.tls?.verify ?? true, ca: p.tls?.ca, fingerprint: p.tls?.fingerprint },
        }
        const have = store.pools.get(name, { reveal: true })
        if (!have) {
          store.pools.add({ name, ...want })
          changes.push(`pool ${name} added`)
        } else {
          const fp = (x?: string) => (x ? normaliseFingerprint(x) : undefined)
          const same =
            have.url === new URL(want.url).origin &&
            have.username === want.username &&
            have.password === want.password &&
            have.tls.verify === want.tls.verify &&
            (have.tls.ca ?? undefined) === (want.tls.ca ?? undefined) &&
            fp(have.tls.fingerprint) === fp(want.tls.fingerprint)
          if (!same) {
            store.pools.update(name, want)
            changes.push(`pool ${name} updated`)
          }
        }
      }
      if (issues.length) throw new EnvFileError(issues)

      let existing = store.environments.get(f.name)
      if (existing) {
        const release = resolveRelease(store, f.release)
        const differences: string[] = []
        if (existing.release !== release.name) differences.push(`release ${existing.release} → ${release.name}`)
        if (f.components && !isDeepStrictEqual([...existing.components].sort(), [...f.components].sort()))
          differences.push(`components ${existing.components.join(', ')} → ${f.components.join(', ')}`)
        for (const p of f.plugins) {
          const ep = existing.plugins.find((x) => x.name === p.name)
          if (!ep?.enabled || (p.version && ep.version !== p.version))
            differences.push(`plugin ${p.name}${p.version ? `==${p.version}` : ''} enabled`)
        }
        if (differences.length) {
          if (!opts.replace)
            throw new EnvFileError([
              {
                ...f.locate(['name']),
                path: 'name',
                message: `environment "${f.name}" exists with another ${differences.join('; ')}: these cannot change in place (apply with --replace to delete and re-create it)`,
              },
            ])
          store.environments.delete(f.name)
          changes.push(`environment ${f.name} deleted to be re-created (${differences.join('; ')})`)
          existing = undefined
        }
      }
      if (!existing) {
        createEnvironment(store, {
          name: f.name,
          release: f.release,
          components: f.components,
          plugins: f.plugins,
          settings,
          nodes,
        })
        changes.push(`environment ${f.name} created with ${nodes.length} node${nodes.length === 1 ? '' : 's'}`)
        return finish({ environment: f.name, created: true, changes })
      }

      const current = store.environments.settings(f.name, { reveal: true })
      const changed = Object.fromEntries(
        Object.entries(settings).filter(([path, v]) => !isDeepStrictEqual(valueAt(current, path), v)),
      )
      if (Object.keys(changed).length) {
        changeSettings(store, f.name, changed)
        for (const path of Object.keys(changed)) changes.push(`setting ${path} changed`)
      }
      const have = new Map(store.environments.nodes(f.name).map((n) => [n.name, n]))
      for (const n of nodes) {
        const h = have.get(n.name)
        if (!h) {
          store.environments.addNode(f.name, n)
          changes.push(`node ${n.name} added (${n.roles.join(', ') || 'no roles'})`)
        } else if (!isDeepStrictEqual(h.roles, n.roles) || !isDeepStrictEqual(h.data, n.data)) {
          store.environments.updateNode(f.name, n.name, { roles: n.roles, data: n.data })
          changes.push(`node ${n.name} changed`)
        }
      }
      for (const name of have.keys())
        if (!f.nodes.has(name)) {
          store.environments.removeNode(f.name, name)
          changes.push(`node ${name} removed`)
        }
      return finish({ environment: f.name, created: false, changes })
    })
  } catch (e) {
    if (e instanceof DryRunRollback) return e.result
    return located(e)
  }
}

export interface ExportOptions {
  /** `encrypted` (default): secrets as {encrypted: …} for this data directory; `env`: {env: NAME} placeholders. */
  secrets?: 'encrypted' | 'env'
}

const envName = (...parts: string[]) =>
  'XENSTACK_SECRET_' +
  parts
    .join('_')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .toUpperCase()

/** The environment as an environment file (YAML text) that `applyEnvironmentFile` reproduces. */
export function exportEnvironment(store: StateStore, name: string, opts: ExportOptions = {}): string {
  const env = store.environments.require(name)
  const release = resolveRelease(store, env.release)
  const secret = (plain: string, ...path: string[]) =>
    opts.secrets === 'env' ? { env: envName(...path) } : { encrypted: store.secrets.encrypt(plain) }

  const enabled = env.plugins.filter((p) => p.enabled)
  const defaults = mergeSettings(
    release,
    compatiblePlugins(store, release).map((p) => ({ ...p, data: p.data })),
    env.plugins,
  ) as Record<string, any>
  const current = store.environments.settings(name, { reveal: true })
  const settings: Record<string, Record<string, unknown>> = {}
  for (const [group, body] of Object.entries(current)) {
    if (!body || typeof body !== 'object') continue
    for (const [key, s] of Object.entries(body as Record<string, any>)) {
      if (key === 'metadata' || !s || typeof s !== 'object' || !('value' in s)) continue
      const path = `${group}.${key}.value`
      if (isDeepStrictEqual(valueAt(defaults, path), s.value)) continue
      const v =
        s.type === 'password' && typeof s.value === 'string' && s.value !== '' && s.value !== REDACTED
          ? secret(s.value, group, key)
          : s.value
      ;(settings[group] ??= {})[key] = v
    }
  }

  const nodes: Record<string, unknown> = {}
  const poolNames = new Set<string>()
  for (const n of store.environments.nodes(name)) {
    const { pool, ...data } = n.data ?? {}
    if (typeof pool === 'string') poolNames.add(pool)
    nodes[n.name] = {
      roles: n.roles,
      ...(typeof pool === 'string' ? { pool } : {}),
      ...(Object.keys(data).length ? { data } : {}),
    }
  }
  const pools: Record<string, unknown> = {}
  for (const p of [...poolNames].sort()) {
    const rec = store.pools.get(p, { reveal: true })
    if (!rec) {
      pools[p] = {}
      continue
    }
    pools[p] = {
      url: rec.url,
      username: rec.username,
      password: secret(rec.password, 'pool', p),
      tls: {
        verify: rec.tls.verify,
        ...(rec.tls.ca ? { ca: rec.tls.ca } : {}),
        ...(rec.tls.fingerprint ? { fingerprint: rec.tls.fingerprint } : {}),
      },
    }
  }
  const doc = {
    name: env.name,
    release: release.name,
    components: env.components,
    ...(enabled.length ? { plugins: enabled.map((p) => ({ name: p.name, version: p.version })) } : {}),
    ...(poolNames.size ? { pools } : {}),
    nodes,
    settings,
  }
  const header =
    `# xenstack environment ${env.name}, exported ${new Date().toISOString()}\n` +
    (opts.secrets === 'env'
      ? '# secrets are read from the XENSTACK_SECRET_* environment variables named below when applied\n'
      : "# secrets are encrypted with this data directory's secret.key: apply them with the same data directory\n")
  return header + stringify(doc, { lineWidth: 0 })
}
