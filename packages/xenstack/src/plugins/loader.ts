/**
 * Loading a Fuel plugin (package_version 1.0.0–6.0.0) from its files: build tokens, YAML with positions,
 * the JSON Schema of its package_version, then checks schemas cannot express (setting value types, restriction
 * expressions, component requirements, task graph). Every problem is an Issue naming file, line, column,
 * path, what was found and what was expected; loading never stops at the first one.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs'
import { join, relative, dirname } from 'node:path'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import {
  ComponentDefinitionError,
  normalizeRestriction,
  parseExpression,
  requirementsOf,
  bindingsOf,
  ExpressionSyntaxError,
  SETTING_TYPES,
  type Component,
} from '@xenstack/restrictions'
import { describeValue, parseYaml, ValidationError, type DocPath, type Issue, type YamlSource } from './source.js'
import {
  compareVersions,
  FILES,
  LEGACY_STAGE,
  MIN_FUEL_VERSION,
  PACKAGE_VERSIONS,
  schemaFor,
  type PackageVersion,
  type PluginFileName,
} from './schemas.js'
import { checkTaskGraph, REQUIRED_PARAMETERS, type DeploymentTask, type LocatedTask } from './graph.js'

/** A plugin's files by relative path ('metadata.yaml', 'deployment_scripts/x.sh', …). */
export type PluginFiles = Map<string, Buffer>

export interface LoadOptions {
  /** Values for `@TOKEN@` build tokens (merged over the ones read from branding.inc). */
  defines?: Record<string, string>
  /** The release's core tasks, for reference and cycle checks (without it only the plugin's own tasks count). */
  coreTasks?: LocatedTask[]
  /** Name of the release the core tasks come from, for messages. */
  releaseName?: string
  /** The release's components: a plugin may not define one of these names. */
  releaseComponents?: Component[]
}

export interface LoadedPlugin {
  name: string
  version: string
  packageVersion: PackageVersion
  title: string
  description: string
  metadata: Record<string, any>
  /** environment_config.yaml `attributes` (settings of the plugin). */
  attributes: Record<string, any>
  components: Component[]
  deploymentTasks: DeploymentTask[]
  legacyTasks: Record<string, any>[]
  nodeRoles: Record<string, any>
  volumes: Record<string, any> | undefined
  networkRoles: Record<string, any>[]
  nodeConfig: Record<string, any>
  nicConfig: Record<string, any>
  bondConfig: Record<string, any>
  nodeTags: Record<string, any>
  /** The parsed files, with positions. */
  sources: Partial<Record<PluginFileName, YamlSource>>
}

export interface LoadResult {
  plugin?: LoadedPlugin
  issues: Issue[]
  errors: Issue[]
}

const ajv = new Ajv({ allErrors: true, strict: false })
const validators = new Map<string, ValidateFunction>()
function validatorFor(file: PluginFileName, v: PackageVersion): ValidateFunction {
  const key = `${file}@${v}`
  let fn = validators.get(key)
  if (!fn) {
    fn = ajv.compile(schemaFor(file, v))
    validators.set(key, fn)
  }
  return fn
}

/** Reads a plugin directory (skipping .git, .build and node_modules) into memory. */
export function readPluginDir(dir: string): PluginFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`${dir}: not a directory (expected a plugin source directory with metadata.yaml)`)
  }
  const files: PluginFiles = new Map()
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name === '.git' || name === '.build' || name === 'node_modules') continue
      const p = join(d, name)
      const st = statSync(p)
      if (st.isDirectory()) walk(p)
      else if (st.isFile()) files.set(relative(dir, p).split('\\').join('/'), readFileSync(p))
    }
  }
  walk(dir)
  return files
}

/** Reads `KEY=VALUE` lines of a Makefile include (branding.inc). */
export function parseBranding(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)\s*[:?]?=\s*(.*?)\s*$/.exec(line)
    if (m) out[m[1]] = m[2]
  }
  return out
}

/** Build tokens a plugin Makefile substitutes (fuel-plugin-xenserver: HYPERVISOR_NAME, PLUGIN_NAME, …). */
export const TOKEN = /@([A-Z][A-Z0-9_]*)@/g

/**
 * Substitutes `@TOKEN@` with `defines` as the plugin's Makefile would (sed over every file). Tokens without a
 * value are returned with their positions so that they can be reported precisely.
 */
export function substituteTokens(
  text: string,
  defines: Record<string, string>,
): { text: string; missing: { token: string; line: number; column: number }[] } {
  const missing: { token: string; line: number; column: number }[] = []
  const out = text.replace(TOKEN, (whole, name: string, offset: number) => {
    if (Object.prototype.hasOwnProperty.call(defines, name)) return defines[name]
    const before = text.slice(0, offset)
    const line = before.split('\n').length
    missing.push({ token: whole, line, column: offset - before.lastIndexOf('\n') })
    return whole
  })
  return { text: out, missing }
}

function pathFromPointer(pointer: string): DocPath {
  if (!pointer) return []
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s))
}

function valueAt(data: unknown, path: DocPath): unknown {
  let cur: any = data
  for (const p of path) cur = cur?.[p]
  return cur
}

/** Turns ajv's errors into issues with positions, what was expected and what was found. */
export function schemaIssues(source: YamlSource, errors: ErrorObject[], version: string): Issue[] {
  const issues: Issue[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    const path = pathFromPointer(e.instancePath)
    const value = valueAt(source.data, path)
    let issue: Issue
    const p = e.params as Record<string, any>
    switch (e.keyword) {
      case 'required':
        issue = source.issue(path, `missing required field "${p.missingProperty}" (package_version ${version})`, {
          expected: `a field "${p.missingProperty}"`,
          found: describeValue(value),
        })
        break
      case 'additionalProperties':
        issue = source.issue(
          [...path, p.additionalProperty],
          `unknown field "${p.additionalProperty}" (package_version ${version})`,
          {
            expected: 'only the fields of the format',
            found: `"${p.additionalProperty}"`,
            atKey: true,
          },
        )
        break
      case 'enum':
        issue = source.issue(path, `value not allowed for package_version ${version}`, {
          expected: `one of ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`,
          found: describeValue(value),
        })
        break
      case 'type':
        issue = source.issue(path, `wrong type`, {
          expected: `${[p.type].flat().join(' or ')}`,
          found: describeValue(value),
        })
        break
      case 'pattern':
        issue = source.issue(path, `value does not match the required pattern`, {
          expected: `a string matching ${p.pattern}`,
          found: describeValue(value),
        })
        break
      default:
        issue = source.issue(path, e.message ?? e.keyword, { found: describeValue(value) })
    }
    const key = `${issue.line}:${issue.column}:${issue.message}`
    if (!seen.has(key)) {
      seen.add(key)
      issues.push(issue)
    }
  }
  return issues
}

/** Every restriction and condition expression in a document, with its path (restrictions, conditions, limits). */
export function collectExpressions(
  data: unknown,
  path: DocPath = [],
): { path: DocPath; condition: string; strict: boolean; raw: unknown }[] {
  const out: { path: DocPath; condition: string; strict: boolean; raw: unknown }[] = []
  const walk = (v: unknown, p: DocPath) => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, [...p, i]))
    if (!v || typeof v !== 'object') return
    for (const [k, x] of Object.entries(v)) {
      if (k === 'restrictions' && Array.isArray(x)) {
        x.forEach((r, i) => {
          try {
            const n = normalizeRestriction(r)
            out.push({ path: [...p, k, i], condition: n.condition, strict: n.strict, raw: r })
          } catch {
            out.push({ path: [...p, k, i], condition: '', strict: true, raw: r })
          }
        })
      } else if (k === 'condition' && typeof x === 'string' && !Array.isArray(v)) {
        out.push({ path: [...p, k], condition: x, strict: true, raw: x })
      } else walk(x, [...p, k])
    }
  }
  walk(data, path)
  return out
}

/** Checks each restriction's shape and expression syntax; a syntax error points into the expression. */
export function expressionIssues(source: YamlSource, data: unknown = source.data): Issue[] {
  const issues: Issue[] = []
  for (const e of collectExpressions(data)) {
    try {
      normalizeRestriction(e.raw)
      parseExpression(e.condition)
    } catch (err) {
      if (err instanceof ExpressionSyntaxError) {
        issues.push(
          source.issue(
            e.path,
            `restriction expression does not parse: ${err.reason} at column ${err.column} of "${err.expression}"`,
            {
              expected: 'an expression in the restrictions language',
            },
          ),
        )
      } else {
        issues.push(
          source.issue(e.path, (err as Error).message, { expected: 'a restriction', found: describeValue(e.raw) }),
        )
      }
    }
  }
  return issues
}

/** nailgun's ATTRIBUTE_SCHEMA value check per setting type, with the setting's label in the message. */
export function settingIssues(
  source: YamlSource,
  attrs: Record<string, any>,
  base: DocPath,
  requireKnownType = true,
): Issue[] {
  const issues: Issue[] = []
  for (const [key, s] of Object.entries(attrs ?? {})) {
    if (key === 'metadata' || !s || typeof s !== 'object') continue
    const p = [...base, key]
    const label = s.label ?? key
    if (typeof s.type !== 'string') continue
    if (requireKnownType && !(SETTING_TYPES as readonly string[]).includes(s.type)) {
      issues.push(
        source.issue([...p, 'type'], `setting "${label}" has an unknown type`, {
          expected: `one of ${SETTING_TYPES.join(', ')}`,
          found: `"${s.type}"`,
        }),
      )
      continue
    }
    const v = s.value
    // nailgun generates some values when an environment is created ({generator: password, …}).
    const generated = v !== null && typeof v === 'object' && !Array.isArray(v) && 'generator' in v
    const bad = (expected: string) =>
      issues.push(
        source.issue([...p, 'value'], `setting "${label}" (${s.type}) has a value of the wrong type`, {
          expected,
          found: s.type === 'password' ? 'a value (hidden)' : describeValue(v),
        }),
      )
    switch (generated ? 'generated' : s.type) {
      case 'checkbox':
        if (typeof v !== 'boolean') bad('true or false')
        break
      case 'radio':
      case 'select':
        if (typeof v !== 'string') bad('a string naming one of values[].data')
        else if (Array.isArray(s.values) && !s.values.some((x: any) => x?.data === v)) {
          // A warning: Fuel accepted it (its schema only asks for a string) and the UI shows no choice selected.
          issues.push(
            source.issue([...p, 'value'], `setting "${label}" has a value that is not among its values`, {
              severity: 'warning',
              expected: `one of ${s.values.map((x: any) => JSON.stringify(x?.data)).join(', ')}`,
              found: describeValue(v),
            }),
          )
        }
        if (!Array.isArray(s.values))
          issues.push(
            source.issue(p, `setting "${label}" (${s.type}) needs "values"`, {
              expected: 'values: [{data, label}]',
              found: 'no values',
            }),
          )
        break
      case 'text':
      case 'textarea':
      case 'password':
        if (!(typeof v === 'string' || (v === null && (s.nullable || s.type === 'text'))))
          bad(s.nullable ? 'a string or null' : 'a string')
        break
      case 'number':
        if (!(typeof v === 'number' || (v === null && s.nullable))) bad('a number')
        break
      case 'text_list':
      case 'textarea_list':
        if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) bad('a list of strings')
        break
    }
    if (s.regex?.source !== undefined) {
      try {
        new RegExp(s.regex.source)
      } catch (e) {
        issues.push(
          source.issue(
            [...p, 'regex', 'source'],
            `setting "${label}": regex does not compile: ${(e as Error).message}`,
            { expected: 'a valid regular expression', found: JSON.stringify(s.regex.source) },
          ),
        )
      }
    }
  }
  return issues
}

function componentIssues(source: YamlSource, components: Component[]): Issue[] {
  const issues: Issue[] = []
  const seen = new Map<string, number>()
  components.forEach((c, i) => {
    if (!c || typeof c !== 'object' || typeof c.name !== 'string') return
    if (seen.has(c.name)) {
      issues.push(
        source.issue([i, 'name'], `component "${c.name}" is defined twice (first at item ${seen.get(c.name)})`, {
          expected: 'a unique name',
          found: `"${c.name}"`,
        }),
      )
    }
    seen.set(c.name, i)
    try {
      requirementsOf(c)
    } catch (e) {
      if (e instanceof ComponentDefinitionError)
        issues.push(source.issue([i, 'requires'], e.message, { expected: 'one form of requires' }))
      else throw e
    }
    try {
      bindingsOf(c)
    } catch (e) {
      issues.push(
        source.issue([i, 'bind'], (e as Error).message, {
          expected: '"model:path", {"model:path": value} or ["model:path", value]',
        }),
      )
    }
  })
  return issues
}

function legacyTaskIssues(source: YamlSource, tasks: Record<string, any>[]): Issue[] {
  const issues: Issue[] = []
  tasks.forEach((t, i) => {
    if (!t || typeof t !== 'object') return
    if (typeof t.stage === 'string' && !LEGACY_STAGE.test(t.stage)) {
      issues.push(
        source.issue([i, 'stage'], `unknown stage`, {
          expected: 'pre_deployment or post_deployment, optionally with a /<number> postfix (e.g. post_deployment/100)',
          found: JSON.stringify(t.stage),
        }),
      )
    }
    const req = REQUIRED_PARAMETERS[t.type]
    if (!req || !t.parameters || typeof t.parameters !== 'object') return
    for (const p of req) {
      if (t.parameters[p] === undefined) {
        issues.push(
          source.issue([i, 'parameters'], `${t.type} task needs parameters.${p}`, {
            expected: `parameters: {${req.join(', ')}, timeout}`,
            found: `parameters with ${Object.keys(t.parameters).join(', ')}`,
          }),
        )
      }
    }
  })
  return issues
}

/** Loads and validates a plugin from its files. Never throws for bad input: everything is in `issues`. */
export function loadPluginFiles(files: PluginFiles, subject: string, options: LoadOptions = {}): LoadResult {
  const issues: Issue[] = []
  const result = (plugin?: LoadedPlugin): LoadResult => ({
    plugin,
    issues,
    errors: issues.filter((i) => i.severity === 'error'),
  })
  const branding = files.get('branding.inc')
  const defines = { ...(branding ? parseBranding(branding.toString('utf8')) : {}), ...(options.defines ?? {}) }

  const sources: Partial<Record<PluginFileName, YamlSource>> = {}
  const parse = (name: PluginFileName): YamlSource | undefined => {
    const buf = files.get(name)
    if (!buf) return undefined
    const { text, missing } = substituteTokens(buf.toString('utf8'), defines)
    if (missing.length) {
      for (const m of missing) {
        issues.push({
          severity: 'error',
          file: name,
          line: m.line,
          column: m.column,
          path: '(document)',
          message: `unsubstituted build token ${m.token}: the plugin's Makefile replaces it from branding.inc at build time`,
          expected: `a value for ${m.token.slice(1, -1)} (add branding.inc to the plugin or pass --define ${m.token.slice(1, -1)}=VALUE)`,
          found: m.token,
        })
      }
      return undefined
    }
    const r = parseYaml(name, text)
    issues.push(...r.issues)
    if (r.source) sources[name] = r.source
    return r.source
  }

  const meta = parse('metadata.yaml')
  if (!files.has('metadata.yaml')) {
    issues.push({
      severity: 'error',
      file: 'metadata.yaml',
      line: 0,
      column: 0,
      path: '(document)',
      message: `${subject} has no metadata.yaml`,
      expected: 'metadata.yaml at the top of the plugin',
    })
    return result()
  }
  if (!meta) {
    // Report the build tokens of the other files too, so one run lists everything to substitute.
    for (const name of [...files.keys()]
      .filter((f) => f.endsWith('.yaml') && f !== 'metadata.yaml' && !f.includes('/'))
      .sort()) {
      parse(name as PluginFileName)
    }
    return result()
  }
  const metadata = meta.data as Record<string, any>
  if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) {
    issues.push(
      meta.issue([], 'metadata.yaml must be a map', { expected: 'a map of fields', found: describeValue(metadata) }),
    )
    return result()
  }
  const pv = String(metadata.package_version ?? '')
  if (!(PACKAGE_VERSIONS as readonly string[]).includes(pv)) {
    issues.push(
      meta.issue(['package_version'], `unknown package_version`, {
        expected: `one of ${PACKAGE_VERSIONS.join(', ')}`,
        found: describeValue(metadata.package_version),
      }),
    )
    return result()
  }
  const version = pv as PackageVersion

  for (const [name, spec] of Object.entries(FILES) as [PluginFileName, (typeof FILES)[PluginFileName]][]) {
    const present = files.has(name)
    const known = compareVersions(version, spec.since) >= 0
    const required =
      spec.requiredFrom !== undefined &&
      compareVersions(version, spec.requiredFrom) >= 0 &&
      (spec.requiredUntil === undefined || compareVersions(version, spec.requiredUntil) <= 0)
    if (!present && required) {
      issues.push({
        severity: 'error',
        file: name,
        line: 0,
        column: 0,
        path: '(document)',
        message: `missing ${name}, required by package_version ${version}`,
        expected: `a file ${name}`,
      })
    }
    if (present && !known) {
      issues.push({
        severity: 'warning',
        file: name,
        line: 1,
        column: 1,
        path: '(document)',
        message: `${name} is ignored: it was introduced in package_version ${spec.since} and this plugin declares ${version}`,
      })
    }
  }

  const check = (name: PluginFileName, src: YamlSource | undefined, emptyAllowed: boolean): unknown => {
    if (!src) return undefined
    let data = src.data
    if (data === null || data === undefined) {
      if (!emptyAllowed) issues.push(src.issue([], `${name} is empty`, { expected: 'content', found: 'an empty file' }))
      return undefined
    }
    const validate = validatorFor(name, version)
    if (!validate(data)) issues.push(...schemaIssues(src, validate.errors ?? [], version))
    issues.push(...expressionIssues(src))
    data = src.data
    return data
  }

  check('metadata.yaml', meta, false)
  const min = MIN_FUEL_VERSION[version]
  if (Array.isArray(metadata.fuel_version)) {
    metadata.fuel_version.forEach((fv: unknown, i: number) => {
      if (typeof fv === 'string' && compareVersions(fv, min) < 0) {
        issues.push(
          meta.issue(
            ['fuel_version', i],
            `Fuel ${fv} is older than ${min}, the minimum for package_version ${version}`,
            { expected: `a Fuel version >= ${min}`, found: `"${fv}"` },
          ),
        )
      }
    })
  }

  const known = (name: PluginFileName) => compareVersions(version, FILES[name].since) >= 0
  const load = (name: PluginFileName, emptyAllowed = true) =>
    known(name) ? check(name, parse(name), emptyAllowed) : undefined

  const env = load('environment_config.yaml') as Record<string, any> | undefined
  const attributes = (env?.attributes && typeof env.attributes === 'object' ? env.attributes : {}) as Record<
    string,
    any
  >
  if (env && sources['environment_config.yaml'])
    issues.push(...settingIssues(sources['environment_config.yaml'], attributes, ['attributes']))

  const legacyTasks = (load('tasks.yaml') as Record<string, any>[] | undefined) ?? []
  if (sources['tasks.yaml'] && Array.isArray(legacyTasks))
    issues.push(...legacyTaskIssues(sources['tasks.yaml'], legacyTasks))

  // A file whose top level is not a list has its schema error already; its content is then ignored.
  const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : [])
  const deploymentTasks = list<DeploymentTask>(load('deployment_tasks.yaml')).filter((t) => t && typeof t === 'object')
  const components = list<Component>(load('components.yaml')).filter((c) => c && typeof c === 'object')
  if (sources['components.yaml']) {
    const src = sources['components.yaml']
    issues.push(...componentIssues(src, components))
    const taken = new Set((options.releaseComponents ?? []).map((c) => c.name))
    components.forEach((c, i) => {
      if (taken.has(c.name)) {
        issues.push(
          src.issue(
            [i, 'name'],
            `Plugin ${metadata.name} is overlapping with the release${options.releaseName ? ` "${options.releaseName}"` : ''}: component "${c.name}" is already defined by the release`,
            {
              expected: 'a component name the release does not define',
              found: `"${c.name}"`,
            },
          ),
        )
      }
    })
  }
  const nodeRoles = (load('node_roles.yaml') as Record<string, any> | undefined) ?? {}
  const volumes = load('volumes.yaml') as Record<string, any> | undefined
  const networkRoles = (load('network_roles.yaml') as Record<string, any>[] | undefined) ?? []
  const nodeConfig = (load('node_config.yaml') as Record<string, any> | undefined) ?? {}
  if (sources['node_config.yaml']) {
    for (const [section, body] of Object.entries(nodeConfig)) {
      if (body && typeof body === 'object')
        issues.push(...settingIssues(sources['node_config.yaml'], body, [section], false))
    }
  }
  const nicConfig = (load('nic_config.yaml') as Record<string, any> | undefined) ?? {}
  if (sources['nic_config.yaml']) issues.push(...settingIssues(sources['nic_config.yaml'], nicConfig, [], false))
  const bondConfig = (load('bond_config.yaml') as Record<string, any> | undefined) ?? {}
  if (sources['bond_config.yaml']) issues.push(...settingIssues(sources['bond_config.yaml'], bondConfig, [], false))
  const nodeTags = (load('node_tags.yaml') as Record<string, any> | undefined) ?? {}

  if (sources['deployment_tasks.yaml'] && Array.isArray(deploymentTasks)) {
    const located: LocatedTask[] = deploymentTasks.map((task, index) => ({
      task,
      owner: String(metadata.name ?? subject),
      source: sources['deployment_tasks.yaml'],
      index,
    }))
    issues.push(...checkTaskGraph(located, options.coreTasks ?? []))
  }

  const plugin: LoadedPlugin = {
    name: String(metadata.name ?? ''),
    version: String(metadata.version ?? ''),
    packageVersion: version,
    title: String(metadata.title ?? metadata.name ?? ''),
    description: String(metadata.description ?? ''),
    metadata,
    attributes,
    components: components.map((c) => ({ ...c, source: String(metadata.name) })),
    deploymentTasks,
    legacyTasks: Array.isArray(legacyTasks) ? legacyTasks : [],
    nodeRoles,
    volumes,
    networkRoles: Array.isArray(networkRoles) ? networkRoles : [],
    nodeConfig,
    nicConfig,
    bondConfig,
    nodeTags,
    sources,
  }
  return result(plugin)
}

/** Loads a plugin directory; a `plugin_source/` layout finds branding.inc one level up, like the Makefile. */
export function loadPluginDir(
  dir: string,
  options: LoadOptions = {},
): LoadResult & { files: PluginFiles; dir: string } {
  // A plugin repository (Makefile, branding.inc, plugin_source/): the plugin is plugin_source/.
  if (!existsSync(join(dir, 'metadata.yaml')) && existsSync(join(dir, 'plugin_source', 'metadata.yaml'))) {
    dir = join(dir, 'plugin_source')
  }
  const files = readPluginDir(dir)
  if (!files.has('branding.inc')) {
    const up = join(dirname(dir.replace(/\/+$/, '')), 'branding.inc')
    if (existsSync(up)) files.set('branding.inc', readFileSync(up))
  }
  return { ...loadPluginFiles(files, dir, options), files, dir }
}

/** Like loadPluginFiles, but throws a ValidationError listing every error. */
export function requireValidPlugin(r: LoadResult, subject: string): LoadedPlugin {
  if (r.errors.length || !r.plugin) throw new ValidationError(subject, r.issues)
  return r.plugin
}
