/**
 * Dom0 plugins through `host.call_plugin` (xapi-protocol.md §8, §13.2): plain calls, the os-xenapi version check
 * (`dom0_plugin_version.get_version`, compatible = same major and minor >= required) and retries with exponential
 * backoff (0.5 s doubling to 15 s) for the failures os-xenapi's `call_plugin_serialized_with_retry` retries.
 */
import {
  ErrorCode,
  PluginRetriesExceededError,
  PluginVersionMismatchError,
  XapiTransportError,
  XenAPIError,
} from './errors.js'
import type { XapiCore } from './client.js'
import { sleep } from './retry.js'

export function callPlugin(
  core: XapiCore,
  host: string,
  plugin: string,
  fn: string,
  args: Record<string, string> = {},
  opts: { timeout?: number; signal?: AbortSignal; idempotent?: boolean } = {},
): Promise<string> {
  return core.callWith('host.call_plugin', [host, plugin, fn, args], opts) as Promise<string>
}

/**
 * os-xenapi's rule: with XAPI's `[code, method, error, …]`, retryable when `error === 'RetryableError'` or the
 * method slot mentions a signal (the plugin process was killed); a connection reset is retryable too.
 */
export function isRetryablePluginError(e: unknown): boolean {
  if (e instanceof XenAPIError) {
    if (e.code !== ErrorCode.XENAPI_PLUGIN_FAILURE) return false
    return e.params[1] === 'RetryableError' || (e.params[0] ?? '').includes('signal')
  }
  if (e instanceof XapiTransportError) return e.errno === 'ECONNRESET'
  return false
}

export interface PluginRetryOptions {
  /** Retries after the first attempt (default 5: up to 6 attempts). */
  retries?: number
  /** First delay in ms (default 500), doubled after each failure up to `maxDelay` (default 15 000). */
  initialDelay?: number
  maxDelay?: number
  /** Called before each attempt with the attempt number (from 1); may return new args (os-xenapi's callback). */
  beforeAttempt?: (attempt: number, args: Record<string, string>) => Record<string, string> | void
  /** Called after each retryable failure, before sleeping. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void
  signal?: AbortSignal
  timeout?: number
}

export async function callPluginWithRetry(
  core: XapiCore,
  host: string,
  plugin: string,
  fn: string,
  args: Record<string, string> = {},
  opts: PluginRetryOptions = {},
): Promise<string> {
  const attempts = (opts.retries ?? 5) + 1
  const maxDelay = opts.maxDelay ?? 15_000
  let delay = opts.initialDelay ?? 500
  let current = args
  for (let attempt = 1; ; attempt++) {
    current = opts.beforeAttempt?.(attempt, current) ?? current
    try {
      return await callPlugin(core, host, plugin, fn, current, opts)
    } catch (e) {
      if (!isRetryablePluginError(e)) throw e
      if (attempt >= attempts) throw new PluginRetriesExceededError(plugin, fn, attempt, { cause: e })
      opts.onRetry?.(e, attempt, delay)
      core.logger.debug?.(
        `plugin ${plugin}.${fn} on ${host}: attempt ${attempt} failed (${String(e)}); retry in ${delay} ms`,
      )
      await sleep(delay, opts.signal)
      delay = Math.min(delay * 2, maxDelay)
    }
  }
}

/** `{'args': [], 'kwargs': {}}` pickled with protocol 0, as os-xenapi's serialized plugin calls send it. */
export const PICKLED_NO_ARGS = '(dp0\nVargs\np1\n(lp2\nsVkwargs\np3\n(dp4\ns.'

/**
 * Reads the string an os-xenapi "serialized" plugin returns: a protocol-0 pickle of a str (`S'2.1'\n…` or
 * `V2.1\n…`). Anything that is not such a pickle is taken as the plain string.
 */
export function unpickleString(s: string): string {
  let m = /^S'((?:[^'\\]|\\.)*)'\n/.exec(s)
  if (m) return m[1]!.replace(/\\(.)/g, '$1')
  m = /^V([^\n]*)\n/.exec(s)
  if (m) return m[1]!.replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
  // protocol 2+ (binary) short unicode: \x80\x02X<len:4 LE><utf8>… or \x80\x04\x95…\x8c<len><utf8>
  return s
}

export function isCompatibleVersion(found: string, required: string): boolean {
  const [fMaj, fMin = '0'] = found.trim().split('.')
  const [rMaj, rMin = '0'] = required.trim().split('.')
  if (!/^\d+$/.test(fMaj ?? '') || !/^\d+$/.test(fMin) || !/^\d+$/.test(rMaj ?? '') || !/^\d+$/.test(rMin)) {
    return false
  }
  return Number(fMaj) === Number(rMaj) && Number(fMin) >= Number(rMin)
}

export interface PluginVersionOptions {
  /** Plugin file name (default `dom0_plugin_version.py`, as os-xenapi installs it). */
  plugin?: string
  /** Send os-xenapi's pickled `params` argument (default true: what the real dom0 plugin expects). */
  serialized?: boolean
}

/** Reads the dom0 plugin version of `host` and throws PluginVersionMismatchError unless it is compatible. */
export async function checkPluginVersion(
  core: XapiCore,
  host: string,
  required: string,
  opts: PluginVersionOptions = {},
): Promise<string> {
  const plugin = opts.plugin ?? 'dom0_plugin_version.py'
  const args: Record<string, string> = opts.serialized === false ? {} : { params: PICKLED_NO_ARGS }
  // reading a version is safe to repeat after a connection reset
  const raw = await callPlugin(core, host, plugin, 'get_version', args, { idempotent: true })
  const found = unpickleString(String(raw)).trim()
  if (!isCompatibleVersion(found, required)) throw new PluginVersionMismatchError(plugin, host, required, found)
  return found
}
