/**
 * How an XAPI-using command finds its pool: `--pool NAME` (or `XENSTACK_POOL`), a connection profile from the state
 * store, or `--url`/`--username` ad hoc. The password comes from the profile (stored encrypted), from
 * `XENSTACK_XAPI_PASSWORD`, from stdin with `--password-stdin`, or from a no-echo prompt on a terminal — never from an
 * argv value, which would land in shell history and in `ps`.
 *
 * TLS is verified by default (system CAs, `--ca FILE` or a pinned `--fingerprint`); `--insecure` turns verification
 * off and says so on stderr. Connection failures become one CliError line: exit 4 (unreachable) for a refused
 * connection, a timeout, a TLS failure or wrong credentials — the password never appears in them.
 */
import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { connect, XapiTransportError, XenAPIError, type ConnectOptions, type Xapi } from '@xenstack/xenapi'
import { CliError, ExitCode } from './errors.js'
import { readSecret } from './prompt.js'
import { lookupPoolProfile, type PoolProfile } from './pool-profiles.js'

export interface ConnectionFlags {
  pool?: string
  url?: string
  username?: string
  passwordStdin?: boolean
  insecure?: boolean
  ca?: string
  fingerprint?: string
  transport?: string
  timeout?: string
  dataDir?: string
}

/** Adds the connection flags to a command (every command that talks to XAPI). */
export function addConnectionOptions(c: Command): Command {
  return c
    .option('--pool <name>', 'connection profile (see "xenstack pool list"); default $XENSTACK_POOL')
    .option('--url <url>', 'XAPI URL of the pool master, ad hoc (http[s]://host[:port])')
    .option('--username <user>', 'XAPI user with --url (default root)')
    .option('--password-stdin', 'read the password from stdin (else $XENSTACK_XAPI_PASSWORD or a prompt)')
    .option('--insecure', 'do NOT verify the TLS certificate (warned about; prefer --ca or --fingerprint)')
    .option('--ca <file>', 'PEM CA certificate to verify the pool with instead of the system CAs')
    .option('--fingerprint <sha256>', "pin the pool's certificate by its SHA-256 fingerprint")
    .option('--transport <kind>', 'json-rpc, xml-rpc or auto (default auto)')
    .option('--timeout <ms>', 'per-call timeout in milliseconds (default 60000)')
    .option('--data-dir <dir>', 'state directory holding the profiles (default: $XENSTACK_HOME or ~/.xenstack)')
}

export interface ResolvedConnection {
  /** The profile's name, or `undefined` ad hoc. */
  profile?: string
  options: ConnectOptions
}

const TRANSPORTS = ['json-rpc', 'xml-rpc', 'auto'] as const

/** Works out URL, user, password and TLS from the flags, the environment and the profile. */
export async function resolveConnection(
  flags: ConnectionFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedConnection> {
  const poolName = flags.pool ?? (flags.url ? undefined : env.XENSTACK_POOL)
  if (flags.pool && flags.url)
    throw new CliError('--pool and --url are exclusive', ExitCode.usage, 'a profile already names its URL')
  let profile: PoolProfile | undefined
  if (poolName) profile = lookupPoolProfile(poolName, flags.dataDir)
  const url = flags.url ?? profile?.url
  if (!url)
    throw new CliError(
      'no pool to talk to',
      ExitCode.usage,
      'give --pool NAME (profiles: "xenstack pool list"), set XENSTACK_POOL, or --url URL --username USER',
    )
  if (!/^https?:\/\/[^/\s]+/.test(url))
    throw new CliError(`--url ${url}: expected http://host[:port] or https://host[:port]`, ExitCode.usage)
  const transport = flags.transport ?? 'auto'
  if (!(TRANSPORTS as readonly string[]).includes(transport))
    throw new CliError(`--transport ${transport}: expected one of ${TRANSPORTS.join(', ')}`, ExitCode.usage)
  let timeout: number | undefined
  if (flags.timeout !== undefined) {
    timeout = Number(flags.timeout)
    if (!Number.isInteger(timeout) || timeout <= 0)
      throw new CliError(`--timeout ${flags.timeout}: expected a positive number of milliseconds`, ExitCode.usage)
  }
  const password =
    profile?.password ??
    (await passwordFromUser(flags, env, `password for ${flags.username ?? profile?.username ?? 'root'} at ${url}: `))
  const tls = {
    insecure: flags.insecure ?? profile?.tls?.insecure,
    ca: flags.ca ? readCa(flags.ca) : profile?.tls?.ca,
    fingerprint: flags.fingerprint ?? profile?.tls?.fingerprint,
  }
  if (tls.insecure && url.startsWith('https:'))
    process.stderr.write(
      `warning: TLS certificate verification is OFF for ${new URL(url).host}: anyone on the path can read the password\n`,
    )
  return {
    profile: profile?.name,
    options: {
      url,
      username: flags.username ?? profile?.username ?? 'root',
      password,
      transport: transport as ConnectOptions['transport'],
      timeout,
      tls,
      // xenapi's own insecure warning would repeat ours.
      logger: { warn: (m) => (/DISABLED/.test(m) ? undefined : process.stderr.write(`warning: ${m}\n`)) },
    },
  }
}

/** The password of an ad hoc connection (or `pool add`): env, stdin or a no-echo prompt. */
export async function passwordFromUser(
  flags: { passwordStdin?: boolean },
  env: NodeJS.ProcessEnv,
  prompt: string,
): Promise<string> {
  if (flags.passwordStdin) {
    const text = readFileSync(0, 'utf8').replace(/\r?\n$/, '')
    if (!text) throw new CliError('--password-stdin: stdin was empty', ExitCode.usage)
    return text
  }
  if (env.XENSTACK_XAPI_PASSWORD !== undefined) return env.XENSTACK_XAPI_PASSWORD
  if (!process.stdin.isTTY)
    throw new CliError(
      'no password: stdin is not a terminal to prompt on',
      ExitCode.usage,
      'set XENSTACK_XAPI_PASSWORD or pipe it with --password-stdin',
    )
  return readSecret(prompt)
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (e) {
    throw new CliError(`--ca ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.notFound)
  }
}

/** Connects (logging in), turning connection and login failures into one CliError line. */
export async function openXapi(c: ResolvedConnection): Promise<Xapi> {
  try {
    return await connect(c.options)
  } catch (e) {
    throw connectionError(e, c)
  }
}

/** Resolves, connects, runs `fn`, always logs out. */
export async function withXapi<T>(flags: ConnectionFlags, fn: (xapi: Xapi, c: ResolvedConnection) => Promise<T>) {
  const c = await resolveConnection(flags)
  const xapi = await openXapi(c)
  try {
    return await fn(xapi, c)
  } catch (e) {
    throw connectionError(e, c)
  } finally {
    await xapi.close().catch(() => undefined)
  }
}

/** One line for what went wrong talking to the pool; anything else is passed through unchanged. */
export function connectionError(e: unknown, c: ResolvedConnection): unknown {
  if (e instanceof CliError) return e
  const where = c.profile ? `pool ${c.profile} (${c.options.url})` : c.options.url
  const scrub = (s: string) => (c.options.password ? s.split(c.options.password).join('******') : s)
  if (e instanceof XenAPIError) {
    if (e.code === 'SESSION_AUTHENTICATION_FAILED')
      return new CliError(
        `${where}: login as ${c.options.username} refused (SESSION_AUTHENTICATION_FAILED)`,
        ExitCode.unreachable,
        c.profile
          ? `update the profile's password: xenstack pool add ${c.profile} --url ${c.options.url} --username ${c.options.username} --replace`
          : 'check the user and XENSTACK_XAPI_PASSWORD',
      )
    return new CliError(scrub(`${where}: ${e.message}`), ExitCode.failure)
  }
  if (e instanceof XapiTransportError) {
    const errno = e.errno
    const tlsProblem = /certificate|self[- ]signed|CERT|fingerprint|TLS/i.test(`${e.message} ${errno ?? ''}`)
    return new CliError(
      scrub(`${where} is unreachable: ${e.message}${errno && !e.message.includes(errno) ? ` (${errno})` : ''}`),
      ExitCode.unreachable,
      tlsProblem
        ? 'trust the pool with --ca FILE or --fingerprint SHA256 (or --insecure, which is not safe)'
        : 'check the URL, that XAPI runs there and that this machine can reach it',
    )
  }
  if (e instanceof Error && /CertificatePinError/.test(e.name))
    return new CliError(
      scrub(`${where}: ${e.message}`),
      ExitCode.unreachable,
      'the fingerprint does not match the certificate',
    )
  return e
}
