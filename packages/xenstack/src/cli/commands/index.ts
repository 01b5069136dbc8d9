/**
 * The CLI's command modules. Each exports `register(program)`; add a module here to add a command.
 * Order is the order `xenstack --help` lists them in.
 */
import type { Command } from 'commander'
import * as deploy from './deploy.js'
import * as env from './env.js'
import * as health from './health.js'
import * as himn from './himn.js'
import * as image from './image.js'
import * as lab from './lab.js'
import * as plugins from './plugins.js'
import * as pool from './pool.js'
import * as server from './server.js'
import * as sim from './sim.js'
import * as start from './start.js'
import * as version from './version.js'
import * as xapi from './xapi.js'

export const commandModules: { register(program: Command): void }[] = [
  start,
  server,
  sim,
  lab,
  pool,
  xapi,
  himn,
  image,
  plugins,
  env,
  deploy,
  health,
  version,
]
