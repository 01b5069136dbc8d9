/**
 * Node facts, gathered once per executor (one command) and cached: OS family, hostname, interfaces.
 */
import type { Executor } from './executor.js'

export type OsFamily = 'debian' | 'redhat' | 'unknown'

export interface NetworkInterface {
  name: string
  mac?: string
  up: boolean
  /** CIDR notation, e.g. `169.254.0.2/16`. */
  ipv4: string[]
}

export interface NodeFacts {
  osFamily: OsFamily
  /** `ID` from /etc/os-release, e.g. `debian`, `centos`, `xenserver`. */
  osId: string
  osVersion: string
  hostname: string
  interfaces: NetworkInterface[]
  /** Whether systemd is the running init (decides systemctl vs service). */
  systemd: boolean
}

const SEP = '--xenstack-facts--'

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (m) out[m[1]] = m[2].replace(/^["']|["']$/g, '')
  }
  return out
}

export function osFamilyOf(
  osRelease: Record<string, string>,
  hasRedhatRelease: boolean,
  hasDebianVersion: boolean,
): OsFamily {
  // os-release decides when it names a known family; the marker files are the fallback for old systems.
  const ids = `${osRelease.ID ?? ''} ${osRelease.ID_LIKE ?? ''}`.toLowerCase().split(/\s+/)
  if (ids.some((i) => ['rhel', 'centos', 'fedora', 'xenserver', 'xcp-ng', 'rocky', 'almalinux'].includes(i)))
    return 'redhat'
  if (ids.some((i) => ['debian', 'ubuntu'].includes(i))) return 'debian'
  if (hasRedhatRelease) return 'redhat'
  if (hasDebianVersion) return 'debian'
  return 'unknown'
}

export function parseInterfaces(links: string, addrs: string): NetworkInterface[] {
  const byName = new Map<string, NetworkInterface>()
  for (const line of links.split('\n')) {
    const m = /^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(?:.*?\slink\/\S+\s+([0-9a-f:]{17})(?:\s|$))?/.exec(line)
    if (!m) continue
    byName.set(m[1], { name: m[1], ...(m[3] ? { mac: m[3] } : {}), up: m[2].split(',').includes('UP'), ipv4: [] })
  }
  for (const line of addrs.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\S+)/.exec(line)
    if (!m) continue
    byName.get(m[1])?.ipv4.push(m[2])
  }
  return [...byName.values()]
}

const cache = new WeakMap<Executor, Promise<NodeFacts>>()

export function gatherFacts(exec: Executor): Promise<NodeFacts> {
  let p = cache.get(exec)
  if (!p) {
    p = collect(exec)
    cache.set(exec, p)
    p.catch(() => cache.delete(exec))
  }
  return p
}

/** Forget cached facts (after a change that alters them, e.g. a hostname change). */
export function forgetFacts(exec: Executor): void {
  cache.delete(exec)
}

async function collect(exec: Executor): Promise<NodeFacts> {
  const script = [
    'cat /etc/os-release 2>/dev/null',
    `echo ${SEP}`,
    'test -e /etc/redhat-release && echo redhat-release; test -e /etc/debian_version && echo debian_version; test -d /run/systemd/system && echo systemd',
    `echo ${SEP}`,
    'hostname',
    `echo ${SEP}`,
    'ip -o link show 2>/dev/null',
    `echo ${SEP}`,
    'ip -o -4 addr show 2>/dev/null',
  ].join('; ')
  const { stdout } = await exec.run(script)
  const [osText = '', marks = '', hostname = '', links = '', addrs = ''] = stdout.split(`${SEP}\n`)
  const os = parseOsRelease(osText)
  return {
    osFamily: osFamilyOf(os, marks.includes('redhat-release'), marks.includes('debian_version')),
    osId: os.ID ?? 'unknown',
    osVersion: os.VERSION_ID ?? '',
    hostname: hostname.trim(),
    interfaces: parseInterfaces(links, addrs),
    systemd: marks.includes('systemd'),
  }
}
