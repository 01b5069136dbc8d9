/**
 * A standalone keystone-less Glance v2 API on 127.0.0.1 for tests and local use, everything (configuration,
 * database, image files, log) under one directory.
 *
 * The port is chosen by the kernel, race-free: a tiny Python launcher binds 127.0.0.1:0, prints the port and
 * execs glance-api with the listening socket inherited through Glance's own GLANCE_TEST_SOCKET_FD hook
 * (glance/common/utils.py get_test_suite_socket; recipe, pitfall 6). `bind_port = 0` does not work (Glance turns 0
 * into 9292), and two Glances on one port would silently share it (SO_REUSEPORT, pitfall 4).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  GLANCE_PYTHON,
  GLANCE_READY_TIMEOUT_MS,
  glanceApiArgv,
  glanceConfigFiles,
  glanceDataSubdirs,
  glanceHttpStatus,
  glanceInstalled,
  glanceLogTail,
  glanceManageArgv,
  type GlanceServerLayout,
} from './server-config.js'

export interface StandaloneGlance {
  url: string
  pid: number
  dir: string
  logFile: string
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>
}

const LAUNCHER = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
s.set_inheritable(True)
os.environ["GLANCE_TEST_SOCKET_FD"] = str(s.fileno())
sys.stdout.write("%d\\n" % s.getsockname()[1])
sys.stdout.flush()
os.execv(sys.argv[1], sys.argv[1:])
`

export async function startStandaloneGlance(
  dir: string,
  opts: { readyTimeoutMs?: number; keystone?: GlanceServerLayout['keystone'] } = {},
): Promise<StandaloneGlance> {
  if (!glanceInstalled()) throw new Error(`python3-glance is not installed for ${GLANCE_PYTHON}; run scripts/setup.sh`)
  const timeout = opts.readyTimeoutMs ?? GLANCE_READY_TIMEOUT_MS
  if (!(timeout > 0)) throw new Error(`startStandaloneGlance: readyTimeoutMs must be a positive number, got ${timeout}`)
  // bind_port is ignored (the launcher's socket is used); bindHost only documents it
  const layout: GlanceServerLayout = {
    confDir: dir,
    dataDir: dir,
    bindHost: '127.0.0.1',
    port: 9292,
    keystone: opts.keystone,
  }
  for (const d of glanceDataSubdirs(layout)) mkdirSync(d, { recursive: true })
  for (const f of glanceConfigFiles(layout)) writeFileSync(f.path, f.content, { mode: f.mode })
  const logFile = join(dir, 'glance-api.log')

  const sync = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const argv = glanceManageArgv(layout)
    const p = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (b: Buffer) => (out += b.toString()))
    p.stderr.on('data', (b: Buffer) => (out += b.toString()))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, out }))
  })
  writeFileSync(join(dir, 'glance-db-sync.log'), sync.out)
  if (sync.code !== 0)
    throw new Error(
      `glance-manage db_sync in ${dir} failed (exit ${sync.code}):\n${sync.out.trim().split('\n').slice(-8).join('\n')}`,
    )

  // one deadline for the whole start after db_sync: the launcher binding its port and the API answering
  const deadline = Date.now() + timeout
  const fd = openSync(logFile, 'a')
  const api = glanceApiArgv(layout)
  const child = spawn(GLANCE_PYTHON, ['-c', LAUNCHER, ...api], { stdio: ['ignore', 'pipe', fd] })
  closeSync(fd)
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }
  try {
    let timer: NodeJS.Timeout | undefined
    const port = await new Promise<number>((resolve, reject) => {
      let buf = ''
      child.stdout!.on('data', (b: Buffer) => {
        buf += b.toString()
        const m = /^(\d+)\n/.exec(buf)
        if (m) resolve(Number(m[1]))
      })
      child.on('exit', (code) =>
        reject(new Error(`glance launcher exited (${code}) before binding a port: ${glanceLogTail(logFile)}`)),
      )
      child.on('error', reject)
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `glance launcher in ${dir} bound no port within ${timeout} ms; end of ${logFile}:\n${glanceLogTail(logFile)}`,
            ),
          ),
        Math.max(0, deadline - Date.now()),
      )
      timer.unref()
    }).finally(() => clearTimeout(timer))
    // the API writes nothing useful to stdout after the exec; keep the pipe drained
    child.stdout!.resume()
    const url = `http://127.0.0.1:${port}`
    let status: number
    while ((status = await glanceHttpStatus(`${url}/healthcheck`, 2000)) !== 200) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(
          `glance-api in ${dir} exited before it was ready; end of ${logFile}:\n${glanceLogTail(logFile)}`,
        )
      if (Date.now() > deadline)
        throw new Error(
          `glance-api in ${dir}: ${url}/healthcheck not ready after ${timeout} ms (last status ${status || 'no answer'}); ` +
            `end of ${logFile}:\n${glanceLogTail(logFile)}`,
        )
      await new Promise((r) => setTimeout(r, 100))
    }
    return { url, pid: child.pid!, dir, logFile, stop }
  } catch (e) {
    await stop()
    throw e
  }
}
