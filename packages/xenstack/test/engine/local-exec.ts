/** A minimal local NodeExecutor for engine tests (node access's LocalExecutor is the product one). */
import { spawn } from 'node:child_process'
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { ExecResult, ExecRunOptions, NodeExecutor } from '../../src/engine/ports.js'

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

export class TestLocalExecutor implements NodeExecutor {
  constructor(readonly host = 'local') {}

  run(command: string | readonly string[], o: ExecRunOptions = {}): Promise<ExecResult> {
    const line = typeof command === 'string' ? command : command.map(q).join(' ')
    return new Promise((resolve, reject) => {
      const child = spawn('sh', ['-c', line], {
        cwd: o.cwd,
        env: { ...process.env, ...o.env },
        stdio: [o.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout?.on('data', (b) => (stdout += b))
      child.stderr?.on('data', (b) => (stderr += b))
      const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined
      child.on('error', reject)
      child.on('close', (code) => {
        if (timer) clearTimeout(timer)
        const r = { code: code ?? 128, stdout, stderr }
        if (!(o.allowedExitCodes ?? [0]).includes(r.code))
          reject(new Error(`${this.host}: ${line} exited with ${r.code}: ${stderr}`))
        else resolve(r)
      })
      if (child.stdin) {
        child.stdin.on('error', () => {}) // the command may exit without reading its input
        child.stdin.end(o.stdin)
      }
    })
  }

  async put(path: string, data: string | Buffer, o: { mode?: number } = {}): Promise<void> {
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, data)
    await chmod(path, o.mode ?? 0o644)
  }

  get(path: string): Promise<Buffer> {
    return readFile(path)
  }
}
