/**
 * Routes (`ip route`, persisted per OS family) and sysctl settings (runtime and persisted).
 */
import { ensureTrailingNewline, octal, readTextState, writeFileAtomic } from '../files.js'
import type { CheckResult, NodeContext, Resource } from '../resource.js'
import { lineDiff } from '../text-diff.js'

/** Parses `a.b.c.d/len` and returns its network in canonical form (host bits cleared); throws on bad input. */
export function canonicalCidr(cidr: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(cidr.trim())
  if (!m) throw new Error(`route destination ${JSON.stringify(cidr)}: expected an IPv4 network like 192.168.0.0/24`)
  const octets = m.slice(1, 5).map(Number)
  const len = m[5] === undefined ? 32 : Number(m[5])
  if (octets.some((o) => o > 255) || len > 32)
    throw new Error(`route destination ${JSON.stringify(cidr)}: not a valid IPv4 network`)
  const ip = octets.reduce((a, o) => ((a << 8) | o) >>> 0, 0)
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0
  const net = (ip & mask) >>> 0
  return `${[24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.')}/${len}`
}

export type RoutePersistence = 'auto' | 'udev' | 'ifupdown' | 'ifcfg' | 'none'

export interface RouteOptions {
  /** Destination network in CIDR form (its real prefix length: no /24 assumption). */
  to: string
  via?: string
  dev?: string
  /**
   * How the route survives a reboot. `auto`: RHEL family (XenServer dom0) → `udev` (a rule that re-adds the routes
   * when the interface appears, because dom0's `xenapi` bridge does not exist yet when static routes are applied);
   * Debian family → `ifupdown` (an if-up.d hook). `ifcfg` writes `/etc/sysconfig/network-scripts/route-<dev>`.
   */
  persist?: RoutePersistence
}

interface RouteState {
  via?: string
  dev?: string
}

function parseRoute(line: string): RouteState | undefined {
  if (line.trim() === '') return undefined
  const via = /\bvia\s+(\S+)/.exec(line)?.[1]
  const dev = /\bdev\s+(\S+)/.exec(line)?.[1]
  return { ...(via ? { via } : {}), ...(dev ? { dev } : {}) }
}

/** A file that holds route lines for one device, rebuilt from a header plus its route lines. */
interface PersistFile {
  path: string
  mode: number
  header: string[]
  /** The line for this route. */
  line: string
  /** True for lines that are routes (replaced when their destination matches). */
  isRoute: (line: string) => boolean
  destinationOf: (line: string) => string | undefined
}

export class Route implements Resource {
  readonly id: string
  readonly to: string
  constructor(readonly options: RouteOptions) {
    this.to = canonicalCidr(options.to)
    if (!options.via && !options.dev) throw new Error(`route ${this.to}: give via, dev or both`)
    this.id = `route ${this.to}${options.via ? ` via ${options.via}` : ''}${options.dev ? ` dev ${options.dev}` : ''}`
  }

  #spec(): string[] {
    return [
      this.to,
      ...(this.options.via ? ['via', this.options.via] : []),
      ...(this.options.dev ? ['dev', this.options.dev] : []),
    ]
  }

  async #persistence(ctx: NodeContext): Promise<Exclude<RoutePersistence, 'auto'>> {
    const p = this.options.persist ?? 'auto'
    if (p !== 'auto') return p
    const f = await ctx.facts()
    if (f.osFamily === 'redhat') return 'udev'
    if (f.osFamily === 'debian') return 'ifupdown'
    throw new Error(`${this.id}: cannot tell how to persist routes on OS ${f.osId} (set persist)`)
  }

  #files(kind: Exclude<RoutePersistence, 'auto' | 'none'>): PersistFile[] {
    const dev = this.options.dev
    if (!dev) throw new Error(`${this.id}: persisting a route needs its dev`)
    if (!/^[A-Za-z0-9_.:-]+$/.test(dev)) throw new Error(`${this.id}: device name ${JSON.stringify(dev)} is not valid`)
    const ipLine = `ip route replace ${this.#spec().join(' ')}`
    const ipDest = (l: string): string | undefined => /^ip route replace (\S+)/.exec(l)?.[1]
    if (kind === 'ifcfg') {
      return [
        {
          path: `/etc/sysconfig/network-scripts/route-${dev}`,
          mode: 0o644,
          header: [],
          line: this.#spec().join(' '),
          isRoute: (l) => /^\d/.test(l),
          destinationOf: (l) => /^(\S+)/.exec(l)?.[1],
        },
      ]
    }
    if (kind === 'ifupdown') {
      return [
        {
          path: `/etc/network/if-up.d/xenstack-routes-${dev}`,
          mode: 0o755,
          header: [
            '#!/bin/sh',
            `# Written by xenstack: routes via ${dev}, added when ifupdown brings it up.`,
            `[ "$IFACE" = "${dev}" ] || exit 0`,
          ],
          line: ipLine,
          isRoute: (l) => l.startsWith('ip route replace '),
          destinationOf: ipDest,
        },
      ]
    }
    const script = `/etc/udev/scripts/xenstack-routes-${dev}.sh`
    return [
      {
        path: script,
        mode: 0o755,
        header: [
          '#!/bin/sh',
          `# Written by xenstack: routes via ${dev}, re-added by udev when ${dev} appears (see 90-xenstack-routes-${dev}.rules).`,
          `# Waits (at most 30 s) for ${dev} to get its address, then adds every route.`,
          `i=0; while [ $i -lt 30 ] && ! ip -4 addr show dev ${dev} 2>/dev/null | grep -q inet; do sleep 1; i=$((i+1)); done`,
        ],
        line: ipLine,
        isRoute: (l) => l.startsWith('ip route replace '),
        destinationOf: ipDest,
      },
      {
        path: `/etc/udev/rules.d/90-xenstack-routes-${dev}.rules`,
        mode: 0o644,
        header: [`SUBSYSTEM=="net", ACTION=="add", KERNEL=="${dev}", RUN+="${script}"`],
        line: '',
        isRoute: () => false,
        destinationOf: () => undefined,
      },
    ]
  }

  /** The content a persistence file must have: its header, the other routes it already holds, and this route. */
  #desiredContent(file: PersistFile, current: string | undefined): string {
    const lines = (current ?? '').split('\n').filter((l) => l.trim() !== '')
    // Other routes keep their place; this route replaces its old line in place, or is appended.
    const routes: string[] = []
    let placed = !file.line
    for (const l of lines.filter(file.isRoute)) {
      if (file.destinationOf(l) !== this.to) routes.push(l)
      else if (!placed) {
        routes.push(file.line)
        placed = true
      }
    }
    if (!placed) routes.push(file.line)
    const out = [...file.header, ...routes]
    return ensureTrailingNewline(out.join('\n'))
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const r = await ctx.exec.run(['ip', '-4', 'route', 'show', 'exact', this.to])
    const lines = r.stdout.split('\n').filter((l) => l.trim() !== '')
    const states = lines.map(parseRoute).filter((s): s is RouteState => s !== undefined)
    const { via, dev } = this.options
    const ok = states.some((s) => (via === undefined || s.via === via) && (dev === undefined || s.dev === dev))
    const diff: string[] = []
    const current = lines.length === 0 ? 'absent' : lines.join('; ')
    if (!ok)
      diff.push(
        lines.length === 0
          ? `+ ip route add ${this.#spec().join(' ')}`
          : `~ ${lines.join('; ')} → ${this.#spec().join(' ')}`,
      )
    const kind = await this.#persistence(ctx)
    if (kind !== 'none') {
      for (const file of this.#files(kind)) {
        const { text, stat: st } = await readTextState(ctx.exec, file.path)
        const want = this.#desiredContent(file, text)
        if (text !== want)
          diff.push(...(text === undefined ? [`+ create ${file.path}`] : []), ...lineDiff(text ?? '', want))
        if (st && st.mode !== file.mode) diff.push(`~ mode of ${file.path} ${octal(st.mode)} → ${octal(file.mode)}`)
      }
    }
    return { inSync: diff.length === 0, current, desired: this.#spec().join(' '), diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    await ctx.exec.run(['ip', 'route', 'replace', ...this.#spec()])
    const kind = await this.#persistence(ctx)
    if (kind === 'none') return
    for (const file of this.#files(kind)) {
      const { text, stat: st } = await readTextState(ctx.exec, file.path)
      const want = this.#desiredContent(file, text)
      if (text === want && st?.mode === file.mode) continue
      await ctx.exec.run(['mkdir', '-p', '--', file.path.replace(/\/[^/]*$/, '')])
      await writeFileAtomic(ctx.exec, file.path, want, { mode: file.mode })
    }
  }
}

export interface SysctlOptions {
  key: string
  value: string | number
  /**
   * Where the setting is persisted (default `/etc/sysctl.conf`, which `sysctl --system` reads last, so nothing in
   * /etc/sysctl.d overrides it; dom0 and Debian both read it).
   */
  file?: string
}

const normalizeSysctl = (v: string): string => v.trim().split(/\s+/).join(' ')

export class Sysctl implements Resource {
  readonly id: string
  readonly file: string
  constructor(readonly options: SysctlOptions) {
    if (!/^[a-z0-9_.\-/]+$/i.test(options.key))
      throw new Error(`sysctl key ${JSON.stringify(options.key)} is not valid`)
    this.file = options.file ?? '/etc/sysctl.conf'
    this.id = `sysctl ${options.key}`
  }

  #keyPattern(): RegExp {
    const k = this.options.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\./g, '[./]')
    return new RegExp(`^\\s*${k}\\s*=`)
  }

  #edit(text: string | undefined): string {
    const want = `${this.options.key} = ${this.options.value}`
    const lines = (text ?? '').replace(/\n$/, '').split('\n')
    if (text === undefined || text === '') return want + '\n'
    const re = this.#keyPattern()
    const hits = lines.map((l, i) => (re.test(l) ? i : -1)).filter((i) => i >= 0)
    if (hits.length === 0) return ensureTrailingNewline(text) + want + '\n'
    const last = hits[hits.length - 1]
    return ensureTrailingNewline(
      lines
        .map((l, i) => (i === last ? want : l))
        .filter((_, i) => i === last || !hits.includes(i))
        .join('\n'),
    )
  }

  #persistedValue(text: string | undefined): string | undefined {
    const re = this.#keyPattern()
    const hit = (text ?? '')
      .split('\n')
      .filter((l) => re.test(l))
      .at(-1)
    return hit === undefined ? undefined : normalizeSysctl(hit.replace(re, ''))
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const want = normalizeSysctl(String(this.options.value))
    const r = await ctx.exec.run(['sysctl', '-n', this.options.key], { allowedExitCodes: [0, 1, 255] })
    if (r.code !== 0) throw new Error(`sysctl ${this.options.key}: cannot read it: ${r.stderr.trim()}`)
    const runtime = normalizeSysctl(r.stdout)
    const { text } = await readTextState(ctx.exec, this.file)
    const persisted = this.#persistedValue(text)
    const diff: string[] = []
    if (runtime !== want) diff.push(`~ ${this.options.key} (running) ${runtime} → ${want}`)
    if (persisted !== want || this.#edit(text) !== text)
      diff.push(
        persisted === undefined
          ? `+ ${this.options.key} = ${want} in ${this.file}`
          : `~ ${this.options.key} in ${this.file}: ${persisted} → ${want}`,
      )
    return {
      inSync: diff.length === 0,
      current: `${runtime} (running), ${persisted ?? 'not persisted'}`,
      desired: want,
      diff,
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    await ctx.exec.run(['sysctl', '-w', `${this.options.key}=${this.options.value}`])
    const { text, stat: st } = await readTextState(ctx.exec, this.file)
    const next = this.#edit(text)
    if (next !== text)
      await writeFileAtomic(ctx.exec, this.file, next, { mode: st?.mode ?? 0o644, owner: st?.owner, group: st?.group })
  }
}
