#!/usr/bin/env node
// The installed `xenstack` command. A committed, executable file (the compiled CLI under dist/ is built after npm
// links bins, so it cannot carry the executable bit itself); it runs dist/src/cli/main.js.
import '../dist/src/cli/main.js'
