#!/usr/bin/env node
// Lab bring-up/teardown benchmark: a 2-host pool (2 dom0 + 2 compute VMs + controller + storage = 6 hosts with
// sshd each, dnsmasq per dom0, HTTP probe, XAPI relays, simulator) brought up and down repeatedly
//   - in-process (`Lab.up({ hosts: 2, simulator: true })` / `lab.down()`, what withLab does), and
//   - through the CLI (`xenstack lab up --hosts 2 --json` / `xenstack lab down`: node start, supervisor, wait).
// Also the first ssh command on a fresh host (key exchange + auth) and one direct exec. For scale, the reference
// bash recipe (../shared/reference/lab-proof.sh, 4 hosts, no simulator) reports ~550 ms up and ~250 ms down on an
// idle machine; it is not run here (it uses fixed namespace names and would collide with other users).
// Prints min/median/max per phase. Benchmarks are not tests: nothing here asserts.
// Usage: npx tsc -b packages/xenstack && sudo node bench/lab.mjs [--runs 5] [--hosts 2]
import { execFileSync, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { Lab } from '../packages/xenstack/dist/src/lab/index.js'

const execFileP = promisify(execFile)
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`)
  return i === -1 ? def : Number(process.argv[i + 1])
}
const RUNS = arg('runs', 5)
const HOSTS = arg('hosts', 2)
const CLI = fileURLToPath(new URL('../packages/xenstack/dist/src/cli/main.js', import.meta.url))

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return `min ${s[0]} ms, median ${s[Math.floor(s.length / 2)]} ms, max ${s[s.length - 1]} ms (n=${s.length})`
}
const ms = (t) => Math.round(performance.now() - t)

const results = {}
const add = (k, v) => (results[k] ??= []).push(v)

for (let i = 0; i < RUNS; i++) {
  let t = performance.now()
  const lab = await Lab.up({ name: `bench${process.pid.toString(36)}`, hosts: HOSTS, simulator: true })
  add('in-process up', ms(t))
  t = performance.now()
  await execFileP('ssh', ['-F', lab.sshConfigFile, 'compute-1', 'true'])
  add('first ssh compute-1 true', ms(t))
  t = performance.now()
  await lab.exec('compute-1', ['true'])
  add('direct exec compute-1 true', ms(t))
  t = performance.now()
  await lab.down()
  add('in-process down', ms(t))

  t = performance.now()
  execFileSync(process.execPath, [
    CLI,
    'lab',
    'up',
    '--name',
    `benchcli${process.pid.toString(36)}`,
    '--hosts',
    String(HOSTS),
    '--json',
  ])
  add('CLI lab up (incl. node start)', ms(t))
  t = performance.now()
  execFileSync(process.execPath, [CLI, 'lab', 'down', '--name', `benchcli${process.pid.toString(36)}`])
  add('CLI lab down (incl. node start)', ms(t))
}

console.log(
  `lab bench: ${HOSTS}-host pool (${HOSTS * 2 + 2} lab hosts + switch), ${RUNS} runs, load ${execFileSync('cat', ['/proc/loadavg']).toString().trim()}`,
)
for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(50)} ${stats(v)}`)
