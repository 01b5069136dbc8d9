/**
 * Runs the CLI in-process (fast) with its stdout/stderr captured, or as a real child process (end to end).
 * In-process capture follows the call's async context (AsyncLocalStorage), so the test runner's own output,
 * written from its context, is never swallowed.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { main } from '../../src/cli/program.js'

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export const cliBin = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

const capture = new AsyncLocalStorage<{ stdout: string[]; stderr: string[] }>()
let patched = false

function patch(): void {
  if (patched) return
  patched = true
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name]
    const original = stream.write.bind(stream) as (...args: unknown[]) => boolean
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const sink = capture.getStore()
      if (!sink) return original(chunk, ...rest)
      sink[name].push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'))
      const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined
      cb?.()
      return true
    }) as typeof stream.write
  }
}

/** `xenstack ARGS` in this process; `env` entries are set for the call (undefined removes one). */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  patch()
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  const sink = { stdout: [] as string[], stderr: [] as string[] }
  try {
    const code = await capture.run(sink, () => main(args))
    return { code, stdout: sink.stdout.join(''), stderr: sink.stderr.join('') }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}

/** `xenstack ARGS` as a child process, optionally with `input` on stdin. */
export function spawnCli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...opts.env }
    for (const [k, v] of Object.entries(opts.env ?? {})) if (v === undefined) delete env[k]
    const p = spawn(process.execPath, [cliBin, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    p.on('error', reject)
    // 'close' (the process exited and its stdout/stderr are drained), not 'exit', which can come before the last
    // output is read; a grandchild that keeps the pipes open gets 5 s after the exit before what was read is taken
    let graceTimer: NodeJS.Timeout | undefined
    const done = (code: number | null) => {
      clearTimeout(timer)
      clearTimeout(graceTimer)
      resolve({ code, stdout, stderr })
    }
    p.on('exit', (code) => (graceTimer = setTimeout(() => done(code), 5000)))
    p.on('close', (code) => done(code))
    p.stdin.end(opts.input ?? '')
  })
}
