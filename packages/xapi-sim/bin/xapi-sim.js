#!/usr/bin/env node
// The xapi-sim command: a XAPI simulator on the command line (same flags as `xenstack sim`).
import { xapiSimMain } from '../dist/src/cli.js'

await xapiSimMain(process.argv.slice(2))
