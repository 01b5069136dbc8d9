/**
 * What the lab must leave untouched on the machine, as comparable text: network namespaces, root-namespace
 * links, addresses, routes, iptables, forwarding, hostname, lab-sensitive paths under /etc and /root, mounts
 * and processes that mention a lab dir. Other labs may come and go while a test runs (tests run in parallel),
 * so `compareSnapshots` ignores lines that belong to other labs and compares everything else.
 */
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { run } from './sys.js'
import { labRoot } from './lab.js'

export interface MachineSnapshot {
  sections: Record<string, string[]>
}

const SENSITIVE_PATHS = [
  '/etc/hostname',
  '/etc/hosts',
  '/etc/resolv.conf',
  '/etc/xapi.d',
  '/etc/nova',
  '/etc/neutron',
  '/etc/ssh',
  '/etc/modprobe.d',
  '/etc/sysctl.d',
  '/etc/udev/rules.d',
  '/etc/crontab',
  '/etc/iptables',
  '/var/spool/cron/crontabs',
  '/var/lib/misc',
  '/root/.ssh',
  '/boot/guest',
  '/images',
  '/opt/xensource',
]

function fingerprint(path: string, depth = 0): string[] {
  if (!existsSync(path)) return [`${path} absent`]
  const st = statSync(path)
  if (!st.isDirectory()) {
    let h = ''
    try {
      h = createHash('sha1').update(readFileSync(path)).digest('hex').slice(0, 12)
    } catch {
      h = 'unreadable'
    }
    return [`${path} ${st.mode.toString(8)} ${st.size} ${h}`]
  }
  const out = [`${path}/ ${st.mode.toString(8)}`]
  if (depth < 3) for (const e of readdirSync(path).sort()) out.push(...fingerprint(join(path, e), depth + 1))
  return out
}

export async function machineSnapshot(root?: string): Promise<MachineSnapshot> {
  const labsDir = labRoot(root)
  const sh = async (argv: string[]) => (await run(argv)).stdout.split('\n').filter(Boolean)
  const [netns, links, addrs, routes4, routes6, rules, iptables] = await Promise.all([
    sh(['ip', 'netns', 'list']),
    sh(['ip', '-o', 'link']).then((l) => l.map((x) => x.split(': ')[1]?.split('@')[0] ?? x).sort()),
    sh(['ip', '-o', 'addr']).then((l) => l.map((x) => x.split(/\s+/).slice(1, 4).join(' ')).sort()),
    sh(['ip', 'route', 'show', 'table', 'all']),
    sh(['ip', '-6', 'route', 'show', 'table', 'all']),
    sh(['ip', 'rule']),
    sh(['iptables-save']).then((l) => l.filter((x) => !x.startsWith('#')).map((x) => x.replace(/\[\d+:\d+\]/, ''))),
  ])
  const mounts: string[] = []
  const procs: string[] = []
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n'))
        if (line.includes(labsDir))
          // root, mount point, and the lab path in the options (upperdir or lowerdir), so the line says which
          // lab it belongs to even for a read-only overlay that has no upperdir.
          mounts.push(line.split(' ').slice(3, 5).join(' ') + ' ' + labPathIn(line, labsDir))
    } catch {
      // gone
    }
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
      if (cmd.includes(labsDir) && pid !== String(process.pid)) procs.push(cmd.trim())
    } catch {
      // gone
    }
  }
  return {
    sections: {
      netns: netns.map((n) => n.split(' ')[0]).sort(),
      links,
      addrs,
      routes: [...routes4, ...routes6]
        .filter((r) => !/^(local|multicast|broadcast) /.test(r) || r.includes('xl'))
        .sort(),
      rules,
      iptables,
      sysctl: ['net/ipv4/ip_forward', 'net/ipv4/conf/all/forwarding', 'net/ipv6/conf/all/forwarding'].map(
        (k) => `${k}=${readFileSync(`/proc/sys/${k}`, 'utf8').trim()}`,
      ),
      hostname: [hostname()],
      paths: SENSITIVE_PATHS.flatMap((p) => fingerprint(p)),
      mounts: [...new Set(mounts)].sort(),
      processes: procs.sort(),
    },
  }
}

/**
 * Lines that differ between two snapshots, ignoring other labs' namespaces, admin links, their addresses
 * and routes, and their mounts and processes. `lab` names the lab whose leftovers we look for (its name and
 * admin slot), so its own lines are never ignored.
 */
export function compareSnapshots(
  before: MachineSnapshot,
  after: MachineSnapshot,
  lab: { name: string; slot: number; dir: string },
): string[] {
  const ours = (line: string) =>
    line.includes(`xsl-${lab.name}-`) || new RegExp(`\\bxl${lab.slot}h\\d`).test(line) || line.includes(lab.dir)
  const otherLab = (line: string) =>
    !ours(line) &&
    (/\bxsl-[a-z0-9-]+/.test(line) ||
      /\bxl\d{3}h\d+/.test(line) ||
      line.includes(labRoot()) ||
      /198\.18\.2[0-4]\d\./.test(line))
  const diffs: string[] = []
  for (const key of Object.keys(before.sections)) {
    const b = before.sections[key].filter((l) => !otherLab(l))
    const a = (after.sections[key] ?? []).filter((l) => !otherLab(l))
    const bs = new Set(b)
    const as = new Set(a)
    for (const l of b) if (!as.has(l)) diffs.push(`${key}: - ${l}`)
    for (const l of a) if (!bs.has(l)) diffs.push(`${key}: + ${l}`)
  }
  return diffs
}

/** The first overlay directory option (upperdir, lowerdir) of a mountinfo line that lies under `labsDir`. */
function labPathIn(mountinfoLine: string, labsDir: string): string | undefined {
  for (const m of mountinfoLine.matchAll(/(upperdir|lowerdir)=([^,\s]+)/g))
    for (const dir of m[2].split(':')) if (dir.startsWith(labsDir)) return `${m[1]}=${dir}`
  return undefined
}
