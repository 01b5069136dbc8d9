/**
 * A guest's view of xenstore for lab hosts. Each compute host gets a unix socket (<host dir>/xenstored/socket,
 * bind-mounted at /run/xenstored/socket inside the host, whatever its network namespace) served by the
 * process holding the lab; the `xenstore-read|write|rm|ls` programs in the host's PATH talk to it.
 *
 * Keys are relative to the domain's home (/local/domain/<domid>), as a guest uses them (`vm-data/himn_mac`);
 * absolute paths under the home are accepted too. The content is the VM's `xenstore_data` as the simulator holds
 * it (kept in sync by the lab's simulator link) plus what the guest wrote itself; `domid`, `name` and `vm` are
 * present as in a real guest. What the guest writes is reported through `onGuestChange`, so XAPI can see what a
 * guest agent publishes (see simulator-link.ts).
 *
 * Protocol: one JSON request line per connection — {"op":"read"|"write"|"rm"|"ls","key","value"} — answered by one
 * JSON line {"ok":true,"value"|"entries"} or {"ok":false,"error"}.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { rmSync } from 'node:fs'

export class XenstoreDomain {
  /** Keys written by XAPI (VM.xenstore_data). */
  private fromXapi = new Map<string, string>()
  /** Keys written by the guest (win over XAPI's until XAPI writes the key again). */
  private fromGuest = new Map<string, string>()
  private removed = new Set<string>()
  private server?: Server
  /** Told of every key the guest writes (value) or removes (undefined): the simulator link reflects them to XAPI. */
  onGuestChange?: (key: string, value: string | undefined) => void

  constructor(
    readonly domid: number,
    readonly name: string,
    public vmUuid = '',
  ) {}

  get home(): string {
    return `/local/domain/${this.domid}`
  }

  /** Replaces the XAPI-side data (VM.xenstore_data); keys XAPI changed win over the guest's. */
  setXapiData(data: Record<string, string>): void {
    const next = new Map(Object.entries(data))
    for (const [k, v] of next) {
      if (this.fromXapi.get(k) !== v) {
        this.fromGuest.delete(k)
        this.removed.delete(k)
      }
    }
    this.fromXapi = next
  }

  private builtins(): Map<string, string> {
    return new Map([
      ['domid', String(this.domid)],
      ['name', this.name],
      ['vm', `/vm/${this.vmUuid}`],
    ])
  }

  private normalize(key: string): string {
    let k = key.trim()
    if (k.startsWith(this.home + '/')) k = k.slice(this.home.length + 1)
    else if (k === this.home) k = ''
    else if (k.startsWith('/')) throw new Error(`${key}: only this domain's keys (under ${this.home}) are readable`)
    return k.replace(/\/+$/, '')
  }

  entries(): Map<string, string> {
    const all = new Map([...this.builtins(), ...this.fromXapi, ...this.fromGuest])
    for (const k of this.removed) all.delete(k)
    return all
  }

  read(key: string): string {
    const k = this.normalize(key)
    const v = this.entries().get(k)
    if (v === undefined) {
      // a directory node reads as empty, like xenstored
      for (const e of this.entries().keys()) if (e.startsWith(k + '/')) return ''
      throw new Error(`could not read path ${key}`)
    }
    return v
  }

  write(key: string, value: string): void {
    const k = this.normalize(key)
    if (!k) throw new Error(`cannot write ${key}`)
    this.removed.delete(k)
    this.fromGuest.set(k, value)
    this.onGuestChange?.(k, value)
  }

  rm(key: string): void {
    const k = this.normalize(key)
    for (const e of this.entries().keys())
      if (e === k || e.startsWith(k + '/')) {
        this.fromGuest.delete(e)
        this.removed.add(e)
        this.onGuestChange?.(e, undefined)
      }
  }

  ls(key: string): [string, string][] {
    const k = this.normalize(key)
    const prefix = k ? k + '/' : ''
    return [...this.entries()].filter(([e]) => e.startsWith(prefix)).sort(([a], [b]) => a.localeCompare(b))
  }

  /** What the guest wrote (for tests and for reflecting into XAPI). */
  guestWrites(): Record<string, string> {
    return Object.fromEntries(this.fromGuest)
  }

  async listen(socketPath: string): Promise<void> {
    rmSync(socketPath, { force: true })
    this.server = createServer((sock) => this.serve(sock))
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject)
      this.server!.listen(socketPath, () => resolve())
    })
    // never what keeps a process alive (a test that forgets down, a crashed caller)
    this.server.unref()
  }

  async close(): Promise<void> {
    const s = this.server
    this.server = undefined
    if (s) await new Promise<void>((r) => s.close(() => r()))
  }

  private serve(sock: Socket): void {
    let buf = ''
    sock.setEncoding('utf8')
    sock.on('error', () => {})
    sock.on('data', (chunk: string) => {
      buf += chunk
      const nl = buf.indexOf('\n')
      if (nl < 0) return
      let reply: Record<string, unknown>
      try {
        const req = JSON.parse(buf.slice(0, nl)) as { op?: string; key?: string; value?: string }
        const key = String(req.key ?? '')
        switch (req.op) {
          case 'read':
            reply = { ok: true, value: this.read(key) }
            break
          case 'write':
            this.write(key, String(req.value ?? ''))
            reply = { ok: true }
            break
          case 'rm':
            this.rm(key)
            reply = { ok: true }
            break
          case 'ls':
            reply = { ok: true, entries: this.ls(key) }
            break
          default:
            reply = { ok: false, error: `unknown operation ${JSON.stringify(req.op)}` }
        }
      } catch (e) {
        reply = { ok: false, error: (e as Error).message }
      }
      sock.end(JSON.stringify(reply) + '\n')
    })
  }
}
