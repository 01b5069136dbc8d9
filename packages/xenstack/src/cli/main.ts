#!/usr/bin/env node
// The `xenstack` executable: runs the CLI program (./program.ts) and sets the exit code.
import { ExitCode } from './errors.js'
import { main } from './program.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (e: unknown) => {
    process.stderr.write(`xenstack: ${String(e)}\n`)
    process.exitCode = ExitCode.failure
  },
)
