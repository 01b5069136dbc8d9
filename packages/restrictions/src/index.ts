// @xenstack/restrictions — Fuel's restrictions language, restriction forms, settings validation and component
// logic, with no Node imports so that the web UI and the server share one implementation.
export * from './expression.js'
export * from './restrictions.js'
export * from './components.js'
export * from './settings.js'
export * from './roles.js'
