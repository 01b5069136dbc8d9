/**
 * @xenstack/xapi-sim — a XAPI simulator faithful to XenServer's wire behaviour. See README.md for the API.
 */
export { Simulator, createSimulator, DEFAULT_PASSWORD } from './simulator.js'
export type { SimulatorOptions, ListenOptions, Listening } from './simulator.js'
export { Database, newRef, newUuid, frozenEmpty } from './store.js'
export type { Row, Change, ChangeOp, XapiRecord } from './store.js'
export { Dispatcher, WireResult, coerce } from './dispatch.js'
export type { CallContext, MessageImpl, CallHook, CallInfo, CallOutcome, Transport } from './dispatch.js'
export { HttpFront, httpError } from './http.js'
export type { HttpContext, HttpHandler, HttpMiddleware } from './http.js'
export { XapiError, toErrorDescription } from './errors.js'
export { Model, model, NULL_REF, EPOCH } from './model.js'
export type { ClassModel } from './model.js'
export {
  XmlEncoders,
  encodeUntyped,
  decodeMethodCall,
  decodeMethodResponse,
  methodResponse,
  escapeXml,
  formatDouble,
} from './xml.js'
export type { WireValue, DecodedCall } from './xml.js'
export {
  buildPool,
  createGuestMetrics,
  randomMac,
  loopbackAddress,
  softwareVersion,
  RELEASES,
  DEFAULT_TEMPLATES,
} from './builder.js'
export type {
  PoolDescription,
  HostDescription,
  SrDescription,
  NetworkDescription,
  VmDescription,
  UpdateDescription,
  PatchDescription,
  BuiltPool,
} from './builder.js'
export type { Session, SessionLimits } from './semantics/session.js'
export type { TaskLimits } from './semantics/task.js'
export { formatToken, parseToken } from './semantics/event.js'
export { parseQuery, evalQuery, constructorRecord } from './semantics/implicit.js'
export { refreshVmOperations, assertVmOperation, hasPvDrivers, allocate, release, cloneVdi } from './semantics/vm.js'
export { formatXapiDate, nowXapi } from './time.js'

// S2 "sim io": disks, plugins, scenarios, persistence, faults, the server and its CLI.
export {
  VhdFormatError,
  vhdToRaw,
  planVhdExport,
  inspectVhd,
  chsGeometry,
  encodeFooter,
  decodeFooter,
  encodeDynamicHeader,
  decodeDynamicHeader,
  vhdChecksum,
  writeSparse,
  writeOver,
  VHD_SECTOR,
  VHD_DEFAULT_BLOCK_SIZE,
} from './vhd.js'
export type { VhdDiskType, VhdFooter, VhdDynamicHeader, VhdInfo, VhdExport } from './vhd.js'
export { DiskStore, installDiskHandlers } from './disk.js'
export { installXvaHandlers, parseOvaXml, tarMember, tarMembers, xxh64Hex, XVA_CHUNK } from './xva.js'
export { runPlugin, parsePluginOutput, PluginError, PYTHON_SUPPORT_DIR, defaultPluginsDir } from './plugins.js'
export type { PluginCall } from './plugins.js'
export { FaultInjector, FaultRuleError, parseFaultRule, parseFaultFlag, FAULT_KINDS } from './faults.js'
export type { FaultRule, FaultKind, FaultAction, FaultCounters } from './faults.js'
export { installFaults, installAdmin } from './admin.js'
export type { AdminHooks } from './admin.js'
export {
  parseScenario,
  validateScenario,
  loadScenarioFile,
  defaultScenario,
  generatedScenario,
  parseSize,
  ScenarioError,
  KNOWN_VERSIONS,
} from './scenario.js'
export type {
  Scenario,
  ScenarioPool,
  ScenarioHost,
  ScenarioSr,
  ScenarioNetwork,
  ScenarioPif,
  ScenarioVm,
  ScenarioDisk,
  ScenarioPatch,
  ScenarioPlugin,
} from './scenario.js'
export {
  StatePersister,
  readState,
  restoreRows,
  hashPassword,
  verifyPassword,
  StateError,
  STATE_FORMAT,
} from './persist.js'
export type { StateFile, PasswordHash } from './persist.js'
export { startSimServer, generatePassword, poolDescription, installPlugins } from './server.js'
export type { SimServer, SimServerOptions, SimPool } from './server.js'
export { startSimCli, runSimCli, xapiSimMain, simOptionsFromCli, SimCliError } from './cli.js'
export type { SimCliOptions } from './cli.js'
