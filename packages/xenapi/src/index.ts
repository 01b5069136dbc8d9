/**
 * @xenstack/xenapi — a typed, fast XenAPI client for XenServer and XCP-ng.
 *
 *   const xapi = await connect({ url, username: 'root', password, transport: 'json-rpc' })
 *   await xapi.call('VM.get_all_records')
 *   await xapi.close()
 */
export { connect, Xapi } from './xapi.js'
export { XapiSession, type ConnectOptions, type CallOptions, type XapiCore } from './client.js'
export {
  ErrorCode,
  XenAPIError,
  XapiTransportError,
  XapiTimeoutError,
  PluginVersionMismatchError,
  PluginRetriesExceededError,
  Redactor,
  REDACTED,
  defaultLogger,
  type Logger,
} from './errors.js'
export { CertificatePinError, normaliseFingerprint, swapHost, type TlsOptions, type HttpOptions } from './http.js'
export { Limiter } from './limiter.js'
export {
  RETRY_KINDS,
  XapiCallOutcomeUnknownError,
  isRepeatable,
  transportFailureKind,
  type RetryKind,
  type RetryOptions,
  type RetryStats,
} from './retry.js'
export { UnsupportedTransportError, type TransportKind, type TransportOption } from './transport.js'
export { parseTaskResult, type AsyncCallOptions, type WaitTaskOptions, type TaskStatus } from './tasks.js'
export {
  ObjectCache,
  type CachedObject,
  type WatchOptions,
  type XapiEvent,
  type XapiEventsReset,
  type EventOperation,
} from './events.js'
export {
  isCompatibleVersion,
  isRetryablePluginError,
  unpickleString,
  PICKLED_NO_ARGS,
  type PluginRetryOptions,
  type PluginVersionOptions,
} from './plugins.js'
export { type DiskFormat, type ImportVdiOptions, type ExportVdiOptions } from './streaming.js'
