/** `xenstack devstack install` (issue 13 §2): devstack on XenServer as checked, recorded, resumable steps. */
export * from './config.js'
export * from './install.js'
export * from './progress.js'
export * from './render.js'
export * from './xva-transfer.js'
