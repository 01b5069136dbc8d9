/** Guided host preparation (issue 13): the guides' procedures as commands that check, plan and apply. */
export * from './gateway.js'
export * from './private-lab.js'
