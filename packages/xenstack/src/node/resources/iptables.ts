/**
 * iptables chains and rules, checked before they are added (`-S` for chains, `-C` for rules) so a re-run never
 * duplicates them, and `IptablesPersist` which saves the running rules with the OS's mechanism when the saved
 * file differs: `/etc/iptables/rules.v4` (Debian family, iptables-persistent) or `/etc/sysconfig/iptables`
 * (RHEL family, including XenServer dom0).
 */
import { shellQuote } from '../executor.js'
import type { CheckResult, NodeContext, Resource } from '../resource.js'
import type { Ensure } from './file.js'

const TABLES = ['filter', 'nat', 'mangle', 'raw', 'security']

function checkTable(table: string): void {
  if (!TABLES.includes(table))
    throw new Error(`iptables table ${JSON.stringify(table)} is not one of ${TABLES.join(', ')}`)
}

export interface IptablesChainOptions {
  table?: string
  chain: string
  ensure?: Ensure
}

/** Chains defined in a table (`-N` user chains and `-P` built-ins), from `iptables -S`. */
async function chainsOf(ctx: NodeContext, table: string): Promise<Set<string>> {
  const r = await ctx.exec.run(['iptables', '-w', '-t', table, '-S'])
  const out = new Set<string>()
  for (const line of r.stdout.split('\n')) {
    const m = /^-(?:N|P)\s+(\S+)/.exec(line)
    if (m) out.add(m[1])
  }
  return out
}

export class IptablesChain implements Resource {
  readonly id: string
  readonly table: string
  constructor(readonly options: IptablesChainOptions) {
    this.table = options.table ?? 'filter'
    checkTable(this.table)
    this.id = `iptables chain ${this.table}/${options.chain}`
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const present = (await chainsOf(ctx, this.table)).has(this.options.chain)
    const want = this.options.ensure !== 'absent'
    const s = (b: boolean): string => (b ? 'present' : 'absent')
    if (present === want) return { inSync: true, current: s(present), desired: s(want), diff: [] }
    return {
      inSync: false,
      current: s(present),
      desired: s(want),
      diff: [
        want
          ? `+ iptables -t ${this.table} -N ${this.options.chain}`
          : `- iptables -t ${this.table} -X ${this.options.chain}`,
      ],
    }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { chain, ensure } = this.options
    if (ensure === 'absent') {
      await ctx.exec.run(['iptables', '-w', '-t', this.table, '-F', chain])
      await ctx.exec.run(['iptables', '-w', '-t', this.table, '-X', chain])
    } else await ctx.exec.run(['iptables', '-w', '-t', this.table, '-N', chain])
  }
}

export interface IptablesRuleOptions {
  table?: string
  chain: string
  /** The rule specification, e.g. `['-p', 'tcp', '--dport', '6640', '-j', 'ACCEPT']`. */
  rule: readonly string[]
  /** `append` (default) adds at the end; `insert` (or a 1-based position) adds at the top. */
  position?: 'append' | 'insert' | number
  ensure?: Ensure
}

export class IptablesRule implements Resource {
  readonly id: string
  readonly table: string
  constructor(readonly options: IptablesRuleOptions) {
    this.table = options.table ?? 'filter'
    checkTable(this.table)
    if (options.rule.length === 0)
      throw new Error(`iptables rule in ${this.table}/${options.chain}: empty rule specification`)
    this.id = `iptables rule ${this.table}/${options.chain} ${options.rule.join(' ')}`
  }

  async #present(ctx: NodeContext): Promise<boolean> {
    const r = await ctx.exec.run(['iptables', '-w', '-t', this.table, '-C', this.options.chain, ...this.options.rule], {
      allowedExitCodes: [0, 1, 2],
    })
    if (r.code === 0) return true
    // 1: no such rule (or no such chain yet). 2: a target chain that does not exist yet — absent too, it comes
    // into being earlier in the same plan; anything else about the rule is an error worth showing.
    if (r.code === 1 || /Couldn't load target|No chain|does not exist/i.test(r.stderr)) return false
    throw new Error(`${this.id}: iptables -C failed (exit ${r.code}): ${r.stderr.trim()}`)
  }

  #line(op: string): string {
    return `iptables -t ${this.table} ${op} ${this.options.chain} ${this.options.rule.map(shellQuote).join(' ')}`
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const present = await this.#present(ctx)
    const want = this.options.ensure !== 'absent'
    const s = (b: boolean): string => (b ? 'present' : 'absent')
    if (present === want) return { inSync: true, current: s(present), desired: s(want), diff: [] }
    const pos = this.options.position
    const op = !want ? '-D' : pos === undefined || pos === 'append' ? '-A' : '-I'
    return { inSync: false, current: s(present), desired: s(want), diff: [`${want ? '+' : '-'} ${this.#line(op)}`] }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const { chain, rule, position, ensure } = this.options
    const base = ['iptables', '-w', '-t', this.table]
    if (ensure === 'absent') await ctx.exec.run([...base, '-D', chain, ...rule])
    else if (position === undefined || position === 'append') await ctx.exec.run([...base, '-A', chain, ...rule])
    else await ctx.exec.run([...base, '-I', chain, String(position === 'insert' ? 1 : position), ...rule])
  }
}

/** iptables-save output without comments and with chain counters zeroed, for comparing saved and running rules. */
export function normalizeIptablesSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/\s\[\d+:\d+\]$/, ' [0:0]'))
    .join('\n')
}

export interface IptablesPersistOptions {
  /** Where to save; default by OS family (Debian `/etc/iptables/rules.v4`, RHEL `/etc/sysconfig/iptables`). */
  path?: string
}

export class IptablesPersist implements Resource {
  readonly id: string
  constructor(readonly options: IptablesPersistOptions = {}) {
    this.id = `iptables saved${options.path ? ` to ${options.path}` : ''}`
  }

  async #path(ctx: NodeContext): Promise<string> {
    if (this.options.path) return this.options.path
    const f = await ctx.facts()
    if (f.osFamily === 'debian') return '/etc/iptables/rules.v4'
    if (f.osFamily === 'redhat') return '/etc/sysconfig/iptables'
    throw new Error(`cannot tell where to save iptables rules on OS ${f.osId} (give a path)`)
  }

  async check(ctx: NodeContext): Promise<CheckResult> {
    const path = await this.#path(ctx)
    const sep = '--xenstack-saved--'
    const r = await ctx.exec.run(
      `iptables-save && echo ${sep} && { cat -- ${shellQuote(path)} 2>/dev/null || echo ${sep}absent; }`,
    )
    const [runningText = '', savedText = ''] = r.stdout.split(`${sep}\n`)
    const running = normalizeIptablesSave(runningText)
    const saved = savedText.startsWith(`${sep}absent`) ? undefined : normalizeIptablesSave(savedText)
    if (saved === running) {
      // In a plan, rules earlier in the list have not been added yet: the save will be needed after them.
      const pending =
        ctx.dryRun && [...ctx.changed].some((r) => r instanceof IptablesRule || r instanceof IptablesChain)
      if (!pending) return { inSync: true, current: 'saved', desired: 'saved', diff: [] }
      return {
        inSync: false,
        current: 'saved',
        desired: 'saved',
        diff: [`~ save running rules to ${path} (after the changes above)`],
      }
    }
    const savedRules = new Set((saved ?? '').split('\n'))
    const runningRules = new Set(running.split('\n'))
    const diff = [`~ save running rules to ${path}`]
    for (const l of running.split('\n')) if (l.startsWith('-A') && !savedRules.has(l)) diff.push(`+ ${l}`)
    for (const l of (saved ?? '').split('\n')) if (l.startsWith('-A') && !runningRules.has(l)) diff.push(`- ${l}`)
    return { inSync: false, current: saved === undefined ? 'not saved' : 'differs', desired: 'saved', diff }
  }

  async apply(ctx: NodeContext): Promise<void> {
    const p = shellQuote(await this.#path(ctx))
    await ctx.exec.run(
      `set -e; mkdir -p "$(dirname ${p})"; t=$(mktemp "$(dirname ${p})/.iptables.xenstack-XXXXXX"); trap 'rm -f "$t"' EXIT; ` +
        `iptables-save > "$t"; chmod 0600 "$t"; mv -f "$t" ${p}; trap - EXIT`,
    )
  }
}
