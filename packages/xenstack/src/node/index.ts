/**
 * Node access: executors (SSH, local) and idempotent resources with plan and apply.
 * See docs/architecture.md ("node access") and the README of issue 6.
 */
export * from './secret.js'
export * from './executor.js'
export * from './local-executor.js'
export * from './ssh-executor.js'
export * from './known-hosts.js'
export * from './facts.js'
export * from './files.js'
export * from './ini.js'
export * from './text-diff.js'
export * from './resource.js'
export * from './resources/file.js'
export * from './resources/iptables.js'
export * from './resources/network.js'
export * from './resources/system.js'
export * from './builders.js'
