/**
 * `host.call_plugin`: runs a real plugin file the way XAPI does (xapi-protocol.md §8).
 *
 * `<dir>/<plugin>` is executed with one argument, the XML-RPC methodCall `fn(session, args)`; its standard output
 * must be one XML-RPC methodResponse holding a XAPI envelope (or a bare string). Outcomes map as XAPI maps them:
 * Success → the string; Failure → the same error re-raised; no file → XENAPI_MISSING_PLUGIN; non-zero exit,
 * signal, fault or unparsable output → XENAPI_PLUGIN_FAILURE with XAPI's parameters.
 *
 * Python plugins find our own dom0 support modules (`XenAPIPlugin`, `XenAPI`) on their PYTHONPATH; a plugin whose
 * first line names no interpreter, or names python, runs under Debian's /usr/bin/python3 (where os-xenapi lives).
 */
import { spawn } from 'node:child_process'
import { constants, existsSync } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { join, dirname, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeMethodCall, decodeMethodResponse, XmlRpcFault } from '@xenstack/xapi-wire'

/** A XAPI error (code + params), as a plugin run produces it. Dispatch turns it into a Failure envelope. */
export class PluginError extends Error {
  constructor(
    readonly code: string,
    readonly params: string[],
  ) {
    super(`${code} ${JSON.stringify(params)}`)
    this.name = 'PluginError'
  }
}

/** Directory holding our XenAPIPlugin.py / XenAPI.py (packages/xapi-sim/python, next to package.json). */
export const PYTHON_SUPPORT_DIR = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return join(dir, 'python')
})()
export const SYSTEM_PYTHON = '/usr/bin/python3'

export interface PluginCall {
  /** Directory of the host's plugins (its /etc/xapi.d/plugins). */
  pluginsDir: string
  plugin: string
  fn: string
  args: Record<string, string>
  sessionRef: string
  /** URL plugins that call back into XAPI use (exported as XENSTACK_XAPI_URL). */
  xapiUrl?: string
  /** Kill the plugin after this long (XAPI has no limit by default; the simulator defaults to 10 min). */
  timeoutMs?: number
  env?: Record<string, string>
}

const MAX_OUTPUT = 64 * 1024 * 1024

/** Resolves the plugin file, refusing names that would leave the plugins directory. */
function pluginPath(dir: string, plugin: string): string | undefined {
  if (plugin === '' || plugin.includes('/') || plugin.includes('\0') || plugin === '.' || plugin === '..')
    return undefined
  const p = resolve(dir, plugin)
  return p.startsWith(resolve(dir) + sep) ? p : undefined
}

/** How to run the file: directly when it is executable with a non-python shebang, else through a Python. */
async function commandFor(path: string): Promise<{ cmd: string; argv: string[] }> {
  const head = (await readFile(path)).subarray(0, 256).toString('latin1')
  const shebang = head.startsWith('#!') ? head.slice(2, head.indexOf('\n') >>> 0).trim() : ''
  let executable = true
  try {
    await access(path, constants.X_OK)
  } catch {
    executable = false
  }
  const isPython = shebang === '' ? path.endsWith('.py') : /\bpython[0-9.]*\b/.test(shebang)
  if (isPython) return { cmd: SYSTEM_PYTHON, argv: [path] }
  if (executable) return { cmd: path, argv: [] }
  // Not executable and not Python: XAPI would fail to exec it.
  return { cmd: path, argv: [] }
}

/** Runs one plugin call; resolves with the plugin's string result or rejects with a PluginError. */
export async function runPlugin(call: PluginCall): Promise<string> {
  const path = pluginPath(call.pluginsDir, call.plugin)
  if (path === undefined) throw new PluginError('XENAPI_MISSING_PLUGIN', [call.plugin])
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new Error('not a file')
  } catch {
    throw new PluginError('XENAPI_MISSING_PLUGIN', [call.plugin])
  }
  const request = encodeMethodCall(call.fn, [call.sessionRef, call.args])
  const { cmd, argv } = await commandFor(path)
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PYTHONPATH: [PYTHON_SUPPORT_DIR, call.pluginsDir, process.env.PYTHONPATH].filter(Boolean).join(':'),
    PYTHONDONTWRITEBYTECODE: '1',
    ...(call.xapiUrl ? { XENSTACK_XAPI_URL: call.xapiUrl } : {}),
    ...call.env,
  }
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>(
    (resolvePromise, reject) => {
      const child = spawn(cmd, [...argv, request], { cwd: call.pluginsDir, env, stdio: ['ignore', 'pipe', 'pipe'] })
      const out: Buffer[] = []
      const err: Buffer[] = []
      let size = 0
      const collect = (into: Buffer[]) => (b: Buffer) => {
        size += b.length
        if (size > MAX_OUTPUT) child.kill('SIGKILL')
        else into.push(b)
      }
      child.stdout.on('data', collect(out))
      child.stderr.on('data', collect(err))
      const timer = setTimeout(() => child.kill('SIGKILL'), call.timeoutMs ?? 600_000)
      child.on('error', (e) => {
        clearTimeout(timer)
        reject(new PluginError('XENAPI_PLUGIN_FAILURE', ['exec', call.plugin, e.message]))
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        resolvePromise({
          code,
          signal,
          out: Buffer.concat(out).toString('utf8'),
          err: Buffer.concat(err).toString('utf8'),
        })
      })
    },
  )
  if (result.signal !== null)
    throw new PluginError('XENAPI_PLUGIN_FAILURE', [`signal: ${result.signal}`, result.out, result.err])
  if (result.code !== 0) throw new PluginError('XENAPI_PLUGIN_FAILURE', ['non-zero exit', result.out, result.err])
  return parsePluginOutput(result.out)
}

/** Interprets a plugin's standard output (exported for tests). */
export function parsePluginOutput(output: string): string {
  let value: unknown
  try {
    value = decodeMethodResponse(output.trim())
  } catch (e) {
    if (e instanceof XmlRpcFault)
      throw new PluginError('XENAPI_PLUGIN_FAILURE', ['fault', String(e.faultCode), e.faultString])
    throw new PluginError('XENAPI_PLUGIN_FAILURE', ['failed to parse plugin output', output, (e as Error).message])
  }
  if (typeof value === 'string') return value
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const env = value as Record<string, unknown>
    if (env.Status === 'Success') {
      if (typeof env.Value === 'string') return env.Value
      throw new PluginError('XENAPI_PLUGIN_FAILURE', [
        'failed to parse plugin output',
        output,
        `expected the plugin to return a string, got ${describe(env.Value)}`,
      ])
    }
    if (env.Status === 'Failure' && Array.isArray(env.ErrorDescription) && env.ErrorDescription.length > 0) {
      const [code, ...params] = env.ErrorDescription.map((x) => String(x))
      throw new PluginError(code, params)
    }
  }
  throw new PluginError('XENAPI_PLUGIN_FAILURE', [
    'failed to parse plugin output',
    output,
    `expected a string or a {Status, Value} envelope, got ${describe(value)}`,
  ])
}

function describe(v: unknown): string {
  if (v === null) return 'nil'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'a struct' : `a ${typeof v}`
}

/** The default plugins directory of a host under a state directory. */
export function defaultPluginsDir(stateDir: string, hostName: string): string {
  return join(stateDir, 'hosts', hostName, 'etc', 'xapi.d', 'plugins')
}
