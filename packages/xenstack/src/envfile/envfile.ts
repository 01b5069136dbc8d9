/**
 * Environment files: a YAML description of one environment that `xenstack env apply` makes true and
 * `xenstack env export` writes. Every problem is reported with the file, line and column of the value at fault.
 *
 *   name: prod                        # environment name
 *   release: mitaka-9.0               # release name or version (default: the shipped release)
 *   components: [hypervisor:qemu, …]  # wizard selection (default: the release's defaults)
 *   plugins: [fuel-plugin-xenserver]  # plugins to enable: NAME or {name, version}
 *   pools:                            # connection profiles the nodes use (created or updated)
 *     pool1: {url: https://10.0.0.1, username: root, password: {env: XS_PASSWORD}, tls: {verify: true}}
 *     pool2: {}                       # an existing profile, used as it is
 *   nodes:
 *     compute-1: {roles: [compute], pool: pool1, data: {…}}
 *   settings:
 *     common: {debug: true}           # group → setting → value (or "group.setting": value)
 *     fuel-plugin-xenserver: {password: {env: XS_PASSWORD}}
 *
 * A secret (a pool's password, a password setting) is never required in clear: `{env: NAME}` reads it from the
 * environment at apply time, `{encrypted: enc:v1:…}` is a value encrypted with the data directory's key (what
 * `env export` writes). A plain string works too, and is warned about.
 */
import { readFileSync } from 'node:fs'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml'

export interface Position {
  file: string
  line: number
  column: number
  /** False when the path is not in the file (the position is then its nearest ancestor's). */
  found?: boolean
}

export interface EnvFileIssue extends Position {
  /** Path in the document, `nodes.compute-1.roles`. */
  path: string
  message: string
}

export const formatEnvFileIssue = (i: EnvFileIssue) =>
  `${i.file}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message}`

export class EnvFileError extends Error {
  constructor(readonly issues: EnvFileIssue[]) {
    super(issues.map(formatEnvFileIssue).join('\n'))
    this.name = 'EnvFileError'
  }
}

/** A secret as written in the file. */
export type SecretRef = { env: string } | { encrypted: string } | { plain: string }

export interface PoolSpec {
  url?: string
  username?: string
  password?: SecretRef
  tls?: { verify?: boolean; ca?: string; fingerprint?: string }
}

export interface NodeSpec {
  roles: string[]
  pool?: string
  data: Record<string, unknown>
}

export interface EnvFile {
  file: string
  name: string
  release?: string
  components?: string[]
  plugins: { name: string; version?: string }[]
  pools: Map<string, PoolSpec>
  nodes: Map<string, NodeSpec>
  /** Setting values by full path (`common.debug.value`); secrets still as references. */
  settings: Map<string, unknown>
  /** Where a document path (`settings.common.debug`, `pools.p1.password`) is, for errors found later (apply). */
  locate(path: string[]): Position
  /** Warnings (a password in clear). */
  warnings: EnvFileIssue[]
}

const TOP = ['name', 'release', 'components', 'plugins', 'pools', 'nodes', 'settings']

/** A value that is a secret reference ({env}, {encrypted}) rather than a setting value. */
export function asSecretRef(v: unknown): SecretRef | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined
  const keys = Object.keys(v)
  if (keys.length !== 1) return undefined
  const o = v as Record<string, unknown>
  if (typeof o.env === 'string') return { env: o.env }
  if (typeof o.encrypted === 'string') return { encrypted: o.encrypted }
  return undefined
}

const pos = (p: Position): Position => ({ file: p.file, line: p.line, column: p.column })

export function readEnvFile(file: string): EnvFile {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new EnvFileError([
      { file, line: 0, column: 0, path: '', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? e}` },
    ])
  }
  return parseEnvFile(text, file)
}

export function parseEnvFile(text: string, file: string): EnvFile {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true })
  const issues: EnvFileIssue[] = []
  const warnings: EnvFileIssue[] = []
  const at = (offset: number | undefined): Position => {
    const p = lc.linePos(offset ?? 0)
    return { file, line: p.line, column: p.col }
  }
  for (const e of doc.errors) issues.push({ ...at(e.pos[0]), path: '', message: e.message.split('\n')[0] })
  if (issues.length) throw new EnvFileError(issues)
  const locate = (path: string[]): Position => locateIn(doc, path, at)
  const issue = (path: string[], message: string) =>
    issues.push({ ...pos(locate(path)), path: path.join('.'), message })
  let root: unknown
  try {
    root = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    // An alias to a later anchor, or an alias bomb: the yaml library throws without a position.
    throw new EnvFileError([{ ...at(0), path: '', message: `YAML error: ${(e as Error).message.split('\n')[0]}` }])
  }
  if (!root || typeof root !== 'object' || Array.isArray(root)) {
    throw new EnvFileError([
      { ...at(0), path: '', message: 'expected a mapping with name, release, nodes, settings, …' },
    ])
  }
  const r = root as Record<string, unknown>
  for (const k of Object.keys(r)) if (!TOP.includes(k)) issue([k], `unknown key (expected one of ${TOP.join(', ')})`)

  const str = (path: string[], v: unknown, required = false): string | undefined => {
    if (v === undefined || v === null) {
      if (required) issue(path, 'is required')
      return undefined
    }
    if (typeof v !== 'string' || v === '') {
      issue(path, `expected a non-empty string, found ${JSON.stringify(v)}`)
      return undefined
    }
    return v
  }
  const strList = (path: string[], v: unknown): string[] | undefined => {
    if (v === undefined || v === null) return undefined
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
      issue(path, 'expected a list of strings')
      return undefined
    }
    return v as string[]
  }
  const mapping = (path: string[], v: unknown): Record<string, unknown> => {
    if (v === undefined || v === null) return {}
    if (typeof v !== 'object' || Array.isArray(v)) {
      issue(path, 'expected a mapping')
      return {}
    }
    return v as Record<string, unknown>
  }
  const secret = (path: string[], v: unknown): SecretRef | undefined => {
    if (v === undefined || v === null) return undefined
    const ref = asSecretRef(v)
    if (ref) return ref
    if (typeof v === 'string' && v !== '') {
      warnings.push({
        ...pos(locate(path)),
        path: path.join('.'),
        message: 'a password in clear text; prefer {env: VARIABLE} so the file can be shared',
      })
      return { plain: v }
    }
    issue(path, 'expected {env: VARIABLE}, {encrypted: enc:v1:…} or a string')
    return undefined
  }

  const name = str(['name'], r.name, true) ?? ''
  if (name && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name))
    issue(['name'], `"${name}" is not a valid environment name (letters, digits, "_", "." or "-")`)
  // A YAML number (`release: 9.0`) is read as text; a list or mapping is an error, not String()ed.
  const scalarText = (v: unknown): unknown => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v)
  const release = r.release === undefined ? undefined : str(['release'], scalarText(r.release))
  const components = strList(['components'], r.components)

  const plugins: EnvFile['plugins'] = []
  if (r.plugins !== undefined && r.plugins !== null) {
    if (!Array.isArray(r.plugins)) issue(['plugins'], 'expected a list of NAME or {name, version}')
    else
      r.plugins.forEach((p: unknown, i) => {
        if (typeof p === 'string') plugins.push({ name: p })
        else if (p && typeof p === 'object' && typeof (p as any).name === 'string')
          plugins.push({
            name: (p as any).name,
            version:
              (p as any).version === undefined
                ? undefined
                : str(['plugins', String(i), 'version'], scalarText((p as any).version)),
          })
        else issue(['plugins', String(i)], 'expected NAME or {name, version}')
      })
  }

  const pools = new Map<string, PoolSpec>()
  for (const [pname, body] of Object.entries(mapping(['pools'], r.pools))) {
    const p = mapping(['pools', pname], body)
    for (const k of Object.keys(p))
      if (!['url', 'username', 'password', 'tls'].includes(k))
        issue(['pools', pname, k], 'unknown key (expected url, username, password, tls)')
    const spec: PoolSpec = {
      url: str(['pools', pname, 'url'], p.url),
      username: str(['pools', pname, 'username'], p.username),
      password: secret(['pools', pname, 'password'], p.password),
    }
    if (spec.url && !spec.password) issue(['pools', pname], 'a pool with a url needs a password ({env: VARIABLE})')
    if (p.tls !== undefined) {
      const t = mapping(['pools', pname, 'tls'], p.tls)
      if (t.verify !== undefined && typeof t.verify !== 'boolean')
        issue(['pools', pname, 'tls', 'verify'], 'expected true or false')
      spec.tls = {
        verify: t.verify as boolean | undefined,
        ca: str(['pools', pname, 'tls', 'ca'], t.ca),
        fingerprint: str(['pools', pname, 'tls', 'fingerprint'], t.fingerprint),
      }
    }
    pools.set(pname, spec)
  }

  const nodes = new Map<string, NodeSpec>()
  for (const [nname, body] of Object.entries(mapping(['nodes'], r.nodes))) {
    const n = mapping(['nodes', nname], body)
    for (const k of Object.keys(n))
      if (!['roles', 'pool', 'data'].includes(k)) issue(['nodes', nname, k], 'unknown key (expected roles, pool, data)')
    const pool = str(['nodes', nname, 'pool'], n.pool)
    nodes.set(nname, {
      roles: strList(['nodes', nname, 'roles'], n.roles) ?? [],
      pool,
      data: mapping(['nodes', nname, 'data'], n.data),
    })
  }

  const settings = new Map<string, unknown>()
  for (const [key, body] of Object.entries(mapping(['settings'], r.settings))) {
    if (key.includes('.')) {
      // "group.setting": value, or "group.setting.value": value
      const parts = key.split('.')
      settings.set(parts.length === 2 ? `${key}.value` : key, body)
      continue
    }
    for (const [setting, value] of Object.entries(mapping(['settings', key], body)))
      settings.set(`${key}.${setting}.value`, value)
  }
  for (const [path, v] of settings) {
    if (typeof v === 'string' && /passw/i.test(path))
      warnings.push({
        ...pos(locateSetting(locate, path)),
        path: `settings.${path}`,
        message: 'a password in clear text; prefer {env: VARIABLE}',
      })
  }

  if (issues.length) throw new EnvFileError(issues)
  return { file, name, release, components, plugins, pools, nodes, settings, locate, warnings }
}

/** The position of a setting given by full path, whichever form the file used. */
export function locateSetting(locate: EnvFile['locate'], path: string): Position {
  const [group, setting] = path.split('.')
  const nested = locate(['settings', group, setting])
  if (nested.found) return nested
  const dotted = locate(['settings', `${group}.${setting}`])
  return dotted.found ? dotted : locate(['settings', path])
}

function locateIn(doc: Document, path: string[], at: (offset?: number) => Position): Position {
  // Walk as far as the path exists; report the deepest node found (the key's value, else the key).
  let node: unknown = doc.contents
  let best: Position = at(0)
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key)
      if (!pair) return { ...best, found: false }
      const keyNode = pair.key as { range?: [number, number, number] }
      if (keyNode.range) best = at(keyNode.range[0])
      node = pair.value
      const v = node as { range?: [number, number, number] } | null
      if (v?.range && !isMap(node) && !isSeq(node)) best = at(v.range[0])
    } else if (isSeq(node)) {
      const item = node.items[Number(key)] as { range?: [number, number, number] } | undefined
      if (!item) return { ...best, found: false }
      if (item.range) best = at(item.range[0])
      node = item
    } else return { ...best, found: false }
  }
  return { ...best, found: true }
}
