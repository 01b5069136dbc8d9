/**
 * `xenstack pool add|list|show|remove` — connection profiles for XenServer pools, kept in the state store's pools
 * table (state/pools.ts) with the password encrypted at rest. Other commands use one with `--pool NAME` or
 * `XENSTACK_POOL`. `add` logs in once before saving (unless `--no-check`), so a wrong password or an untrusted
 * certificate is found now, not in the middle of a deployment.
 */
import type { Command } from 'commander'
import { readFileSync } from 'node:fs'
import { tlsOptions, type PoolRecord, type PoolTls } from '../../state/pools.js'
import { StateError, StateStore } from '../../state/store.js'
import { openXapi, passwordFromUser } from '../connection.js'
import { CliError, ExitCode } from '../errors.js'
import { emit, table } from '../output.js'

interface AddOpts {
  url: string
  username: string
  passwordStdin?: boolean
  insecure?: boolean
  ca?: string
  fingerprint?: string
  replace?: boolean
  check: boolean
  json?: boolean
  dataDir?: string
}

function withStore<T>(dataDir: string | undefined, fn: (s: StateStore) => Promise<T> | T): Promise<T> {
  const s = StateStore.open({ dataDir })
  return Promise.resolve()
    .then(() => fn(s))
    .catch((e: unknown) => {
      if (e instanceof StateError)
        throw new CliError(
          e.message,
          e.code === 'not_found' ? ExitCode.notFound : e.code === 'invalid' ? ExitCode.invalidInput : ExitCode.failure,
          e.code === 'not_found' ? 'profiles: xenstack pool list' : undefined,
        )
      throw e
    })
    .finally(() => s.close())
}

/** What is shown of a profile: never the password, not even encrypted. */
function publicProfile(p: PoolRecord, nodes?: string[]) {
  return {
    name: p.name,
    url: p.url,
    username: p.username,
    tls: {
      verify: p.tls.verify,
      ...(p.tls.fingerprint ? { fingerprint: p.tls.fingerprint } : {}),
      ...(p.tls.ca ? { ca: 'custom' } : {}),
    },
    ...(nodes ? { nodes } : {}),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  }
}

const trust = (t: PoolTls) =>
  t.fingerprint
    ? `pinned ${t.fingerprint.slice(0, 16)}…`
    : !t.verify
      ? 'NOT VERIFIED'
      : t.ca
        ? 'custom CA'
        : 'system CAs'

export function register(program: Command): void {
  const pool = program
    .command('pool')
    .description('connection profiles for XenServer pools (used with --pool NAME or $XENSTACK_POOL)')
  const dataDir = (c: Command) =>
    c.option('--data-dir <dir>', 'state directory (default: $XENSTACK_HOME or ~/.xenstack)')

  dataDir(
    pool
      .command('add')
      .description('add (or with --replace, change) a profile; logs in once to check it')
      .argument('<name>', 'profile name')
      .requiredOption('--url <url>', "the pool master's XAPI URL, https://host[:port]")
      .option('--username <user>', 'XAPI user', 'root')
      .option('--password-stdin', 'read the password from stdin (else $XENSTACK_XAPI_PASSWORD or a prompt)')
      .option('--insecure', 'do NOT verify the TLS certificate (stored with the profile; warned about)')
      .option('--ca <file>', 'PEM CA certificate to verify the pool with')
      .option('--fingerprint <sha256>', "pin the master's certificate by its SHA-256 fingerprint")
      .option('--replace', 'replace the profile of that name')
      .option('--no-check', 'save without logging in first')
      .option('--json', 'print the saved profile as JSON'),
  ).action(async (name: string, o: AddOpts) => {
    const password = await passwordFromUser(o, process.env, `password for ${o.username} at ${o.url}: `)
    let ca: string | undefined
    if (o.ca) {
      try {
        ca = readFileSync(o.ca, 'utf8')
      } catch (e) {
        throw new CliError(`--ca ${o.ca}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, ExitCode.notFound)
      }
    }
    const tls: PoolTls = { verify: !o.insecure, ca, fingerprint: o.fingerprint }
    if (o.insecure)
      process.stderr.write(
        `warning: pool ${name} is saved with TLS verification OFF: anyone on the path can read its password\n`,
      )
    await withStore(o.dataDir, async (s) => {
      const exists = s.pools.get(name)
      if (exists && !o.replace)
        throw new CliError(`pool profile "${name}" already exists`, ExitCode.failure, 'add --replace to change it')
      if (o.check) {
        // Check the URL's shape through the repository's rules before connecting anywhere.
        if (!/^https?:\/\/[^/\s]+\/?$/.test(o.url))
          throw new CliError(`--url ${o.url}: expected https://host[:port] (or http://)`, ExitCode.usage)
        const options = { url: o.url, username: o.username, password, tls: tlsOptions(tls), logger: { warn: () => {} } }
        const x = await openXapi({ profile: name, options })
        await x.close().catch(() => undefined)
      }
      const saved = exists
        ? s.pools.update(name, { url: o.url, username: o.username, password, tls })
        : s.pools.add({ name, url: o.url, username: o.username, password, tls })
      emit(o, publicProfile(saved), (p) =>
        process.stdout.write(
          `pool ${p.name} ${exists ? 'replaced' : 'added'}: ${p.url} as ${p.username}, TLS ${trust(saved.tls)}${o.check ? ' (login checked)' : ''}\n`,
        ),
      )
    })
  })

  dataDir(pool.command('list').description('list the profiles').option('--json', 'print JSON')).action(
    (o: { json?: boolean; dataDir?: string }) =>
      withStore(o.dataDir, (s) => {
        const list = s.pools.list()
        emit(
          o,
          list.map((p) => publicProfile(p)),
          () => {
            if (!list.length)
              return void process.stdout.write('no pool profiles; add one: xenstack pool add NAME --url URL\n')
            process.stdout.write(
              table(
                list.map((p) => ({ name: p.name, url: p.url, username: p.username, tls: trust(p.tls) })),
                ['name', 'url', 'username', 'tls'],
              ) + '\n',
            )
          },
        )
      }),
  )

  dataDir(
    pool
      .command('show')
      .description('show a profile and the nodes using it')
      .argument('<name>')
      .option('--json', 'print JSON'),
  ).action((name: string, o: { json?: boolean; dataDir?: string }) =>
    withStore(o.dataDir, (s) => {
      const p = s.pools.require(name)
      const nodes = s.pools.nodesUsing(name)
      emit(o, publicProfile(p, nodes), (d) => {
        process.stdout.write(
          `${d.name}\n  url:      ${d.url}\n  username: ${d.username}\n  password: ******** (encrypted at rest)\n`,
        )
        process.stdout.write(`  tls:      ${trust(p.tls)}\n  nodes:    ${nodes.join(', ') || 'none'}\n`)
      })
    }),
  )

  dataDir(
    pool
      .command('remove')
      .description('remove a profile (refused while a node belongs to the pool)')
      .argument('<name>')
      .option('--json', 'print JSON'),
  ).action((name: string, o: { json?: boolean; dataDir?: string }) =>
    withStore(o.dataDir, (s) => {
      s.pools.remove(name)
      emit(o, { removed: name }, () => process.stdout.write(`pool ${name} removed\n`))
    }),
  )
}
