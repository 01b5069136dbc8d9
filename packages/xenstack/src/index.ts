// @xenstack/xenstack — the application. Its parts are exported from their own modules as they land.
export { XENSTACK_VERSION } from './version.js'
