/** The lab: real isolated Linux hosts wired to the XAPI simulator. See ./lab.ts for the API. */
export {
  Lab,
  withLab,
  preflight,
  autoLabName,
  labRoot,
  DEFAULT_LAB_ROOT,
  type LabOptions,
  type LabHost,
  type LabSshEndpoint,
  type LabState,
  type LabExecOptions,
} from './lab.js'
export {
  planLab,
  parseCidr,
  DEFAULT_NETWORKS,
  HIMN,
  type LabEnvironment,
  type LabPlan,
  type LabHostPlan,
  type LabRole,
  type LabNetworkName,
  type LabNetworkSettings,
} from './topology.js'
export { CommandError, type RunResult } from './sys.js'
export { linkSimulator, type LabSimulator, type LabSimulatorOptions } from './simulator-link.js'
export { XenstoreDomain } from './xenstore.js'
export { machineSnapshot, compareSnapshots, type MachineSnapshot } from './snapshot.js'
export {
  registerLabServiceKind,
  labServiceKinds,
  startLabServices,
  loadLabServiceModules,
  type LabServiceSpec,
  type LabServiceEndpoint,
  type LabServiceContext,
  type LabServiceImpl,
} from './services.js'
export { registerLabEnvironment, unregisterLabEnvironment } from './environment.js'
