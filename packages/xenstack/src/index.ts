// @xenstack/xenstack — the application. Its parts are exported from their own modules as they land.
export { XENSTACK_VERSION } from './version.js'
export { Lab, withLab, type LabOptions, type LabHost } from './lab/index.js'
export * as node from './node/index.js'
