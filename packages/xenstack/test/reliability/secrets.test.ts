// Issue 14 item 5, the measured secrets sweep. The default two-host lab environment (as lab-deploy.test.ts sets it
// up: two XenServer hosts of one simulated pool, a controller running a real Glance, a storage node) is driven
// through the real server (`startServer`, token auth, real HTTP) and the CLI on the same data dir:
//   - every password setting of the environment gets a fresh random value (Keystone's admin password; the
//     XenServer password is the lab pool's own), saved through the API;
//   - a full deploy through the API, followed on the event stream; a health run of every set through the fuel-ostf
//     API, followed on its stream;
//   - a deploy with a wrong XenServer password (pool profile replaced through the CLI, setting through the API)
//     that must fail, then the right one back;
//   - a lab host's SSH host key regenerated: the next deployment is refused, naming the host and the new key's
//     fingerprint.
// Then every secret (each password, the wrong one, the API token and its secret part) is searched, in plain text and
// as JSON-escaped, URL-encoded, hex, base64 and base64url at every alignment, in: every file of the data dir (state.db
// raw bytes, its WAL and shared memory, plugin files), every row of every table, every HTTP answer (the OpenAPI
// document's GET routes crawled with every real parameter value, bodies and headers), the event streams, what this
// process and the CLI printed, the lab's logs and every file its hosts wrote (sshd, Glance, services, /etc, /root, …),
// the simulated pool's XAPI objects, and the machine's /var/log and /tmp files written meanwhile. The one place a
// secret belongs — the XenServer password in the compute VMs' nova/neutron configuration, which those services need,
// readable by root and the service group only — is listed and counted apart.
// Figures go to test-artifacts/reliability/secrets.json.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { scratchDirs } from '@xenstack/testkit'
import { xenserverNatives } from '../../src/integration/index.js'
import { startServer, type RunningServer } from '../../src/server/index.js'
import { ENCODINGS, needlesOf, Sweep, type Secret } from './secrets-sweep.js'
import type { StateStore } from '../../src/state/store.js'
import { xenstack as runCli, type CliRun } from '../lab-fixture/cli.js'
import { requireDeployLab, upDeployLab, useSqliteOnly } from '../lab-fixture/deploy-lab.js'
import { writeFigures } from './figures.js'

const tmp = scratchDirs()

/** The CLI on the SQLite store (as the test's server uses it), with a 5 min hang guard. */
const xenstack = (home: string, args: string[], stdin?: string): Promise<CliRun> =>
  runCli(home, args, { stdin, env: { DATABASE_URL: '' }, timeoutMs: 300_000 })

/** Everything this process writes to stdout/stderr from now on (the server and engine run in it). */
function captureOutput(): { text: () => string; stop: () => void } {
  const chunks: string[] = []
  const out = process.stdout.write.bind(process.stdout)
  const err = process.stderr.write.bind(process.stderr)
  const tap = (orig: typeof out) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString())
      return (orig as (...a: unknown[]) => boolean)(chunk, ...rest)
    }) as typeof out
  process.stdout.write = tap(out)
  process.stderr.write = tap(err)
  return {
    text: () => chunks.join(''),
    stop: () => {
      process.stdout.write = out
      process.stderr.write = err
    },
  }
}

/** An event stream's raw text from now until `close()`. */
function recordStream(url: string): { text: () => string; close: () => Promise<void> } {
  const ac = new AbortController()
  let text = ''
  const done = (async () => {
    try {
      const res = await fetch(url, { signal: ac.signal })
      if (res.status !== 200) throw new Error(`${url.replace(/access_token=[^&]+/, 'access_token=…')}: ${res.status}`)
      const decoder = new TextDecoder()
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>)
        text += decoder.decode(chunk, { stream: true })
    } catch (e) {
      if (!ac.signal.aborted) throw e
    }
  })()
  return {
    text: () => text,
    close: async () => {
      ac.abort()
      await done
    },
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 500))
  }
}

/** Every row of every table of a state store, read through its own driver (either backend). */
function tableRows(state: StateStore): { table: string; rows: Record<string, unknown>[] }[] {
  const list =
    state.backend === 'sqlite'
      ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
      : 'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1'
  const tables = state.db.prepare(list).all() as { name: string }[]
  return tables.map(({ name }) => ({
    table: name,
    rows: state.db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[],
  }))
}

test('the sweep finds a secret in every encoding it claims, at every offset inside base64', () => {
  const secret = { what: 'probe', value: 'S3c/x+"abc&%def' }
  const sweep = new Sweep(needlesOf(secret))
  const places: string[] = []
  const put = (kind: string, content: string) => {
    places.push(`${kind}: ${places.length}`)
    sweep.search(kind, String(places.length - 1), content)
  }
  for (const pre of ['', 'a', 'ab', 'abc']) {
    const doc = Buffer.from(`{"k":"${pre}${secret.value}"}`)
    put('base64', doc.toString('base64'))
    put('base64url', doc.toString('base64url'))
    put('hex', doc.toString('hex'))
  }
  put('JSON', JSON.stringify({ p: secret.value }))
  put('URL', `/x?p=${encodeURIComponent(secret.value)}`)
  put('form', new URLSearchParams({ p: secret.value }).toString())
  put('plain', `password = ${secret.value}\n`)
  assert.deepEqual(
    places.filter((p) => !sweep.findings.some((f) => f.place === p)),
    [],
    'places where the sweep missed the secret',
  )
  // and nothing where it is not
  const clean = new Sweep(needlesOf(secret))
  clean.search('other', 'x', Buffer.from(`{"k":"S3c/x+ abc&%def"}`).toString('base64') + ' S3c/x+')
  assert.deepEqual(clean.findings, [])
})

test('secrets: no password or API token in logs, task output, errors, state rows, files, HTTP answers, streams or CLI output', async (t: TestContext) => {
  if (!(await requireDeployLab(t, [['ssh-keygen', () => existsSync('/usr/bin/ssh-keygen')]]))) return

  // SQLite, explicitly (for this process and the CLI it runs): the sweep reads the database file and its WAL, which
  // only SQLite has; the repositories that encrypt and hash are the same on PostgreSQL. It also keeps this lab test
  // out of the runner's PostgreSQL pass (one lab deployment per CI run is enough).
  useSqliteOnly(t)
  const started = Date.now()
  const home = tmp('xenstack-secrets-')
  const { lab, env, password: xsPassword, upMs: labUpMs } = await upDeployLab(home)
  const output = captureOutput()
  let server: RunningServer | undefined
  const streams: { name: string; text: () => string; close: () => Promise<void> }[] = []
  const answers: { place: string; text: string }[] = []
  const cli: CliRun[] = []
  const timings: Record<string, number> = {}
  const lap = (what: string, since: number) => (timings[what] = Math.round(performance.now() - since))
  timings['lab up'] = labUpMs
  try {
    const wrongPassword = `Wr0ng-${randomBytes(12).toString('base64url')}`
    server = await startServer({ dataDir: home, databaseUrl: '', port: 0, natives: xenserverNatives() })
    const token = server.newToken!
    const base = server.url
    const auth = { authorization: `Bearer ${token}` }
    const api = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(base + url, {
        method,
        headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
      })
      const text = await res.text()
      answers.push({ place: `${method} ${url} → ${res.status}`, text: JSON.stringify([...res.headers]) + text })
      let json: any
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      return { status: res.status, json, text }
    }
    const stream = (name: string, url: string) => {
      const s = recordStream(`${base}${url}?access_token=${encodeURIComponent(token)}`)
      streams.push({ name, ...s })
      return s
    }

    // Every password setting gets a value of its own (characters that JSON and URL encodings change included).
    const settings = (await api('GET', `/api/v1/environments/${env}/settings`)).json as Record<string, any>
    const passwordPaths: string[] = []
    for (const [group, body] of Object.entries(settings))
      for (const [key, s] of Object.entries<any>(body ?? {}))
        if (s && typeof s === 'object' && s.type === 'password') passwordPaths.push(`${group}.${key}`)
    assert.ok(passwordPaths.includes('xenserver.password'), `password settings: ${passwordPaths.join(', ')}`)
    const secrets: Secret[] = [
      { what: 'XenServer password', value: xsPassword },
      { what: 'wrong XenServer password', value: wrongPassword },
      { what: 'API token', value: token },
      // the part after `xst_<id>_` (base64url: it may itself contain '_')
      { what: 'API token secret', value: /^xst_[0-9a-f]{16}_(.+)$/.exec(token)![1] },
    ]
    const changes: Record<string, string> = {}
    for (const p of passwordPaths.filter((p) => p !== 'xenserver.password')) {
      const value = `S3c/${p.split('.')[0]}+"${randomBytes(12).toString('base64url')}&%`
      changes[`${p}.value`] = value
      secrets.push({ what: `setting ${p}`, value })
    }
    if (Object.keys(changes).length) {
      const saved = await api('PUT', `/api/v1/environments/${env}/settings`, { changes })
      assert.equal(saved.status, 200, saved.text)
    }

    // 1. A full deploy through the API, followed on the environment's event stream.
    const envStream = stream('environment events', `/api/v1/environments/${env}/events`)
    const deploy = async (what: string) => {
      const t0 = performance.now()
      const started = await api('POST', `/api/v1/environments/${env}/deployments`, {})
      assert.equal(started.status, 202, `${what}: ${started.text}`)
      const id = started.json.deployment as number
      const end = await until(
        `${what} (deployment ${id})`,
        async () => {
          const d = await api('GET', `/api/v1/deployments/${id}`)
          return d.json?.status && d.json.status !== 'running' && d.json.status !== 'pending' ? d.json : undefined
        },
        600_000,
      )
      lap(what, t0)
      return end as { status: string; tasks: { node: string; task: string; status: string; error?: unknown }[] }
    }
    const first = await deploy('deploy')
    assert.equal(
      first.status,
      'ready',
      `the deploy failed: ${JSON.stringify(first.tasks.filter((x) => x.error)).slice(0, 4000)}`,
    )

    // 2. A health run of every set through the fuel-ostf API, followed on its stream.
    const healthStream = stream('health events', `/api/v1/environments/${env}/health/events`)
    const t1 = performance.now()
    const sets = (await api('GET', `/api/health/v1/testsets/${env}`)).json as { id: string }[]
    assert.ok(sets.length > 0)
    const runs = await api(
      'POST',
      '/api/health/v1/testruns',
      sets.map((s) => ({ testset: s.id, metadata: { cluster_id: env } })),
    )
    assert.equal(runs.status, 200, runs.text)
    const health = await until(
      'health run',
      async () => {
        const last = (await api('GET', `/api/health/v1/testruns/last/${env}`)).json as { status: string }[]
        return last.length >= sets.length && last.every((r) => r.status !== 'running') ? last : undefined
      },
      300_000,
    )
    lap('health run (every set)', t1)
    const tests = (health as any[]).flatMap((r) => r.tests as { status: string }[])
    t.diagnostic(
      `health: ${tests.filter((x) => x.status === 'success').length} success, ` +
        `${tests.filter((x) => x.status === 'failure' || x.status === 'error').length} failure/error of ${tests.length}`,
    )

    // 3. A wrong XenServer password: the pool profile through the CLI (as an operator would), the setting through
    // the API; the deployment must fail, saying what is wrong without saying the password.
    const usePassword = async (password: string) => {
      const replaced = await xenstack(
        home,
        [
          'pool',
          'add',
          env,
          '--url',
          lab.simulator!.url,
          '--username',
          'root',
          '--replace',
          '--no-check',
          '--password-stdin',
        ],
        password + '\n',
      )
      cli.push(replaced)
      assert.equal(replaced.code, 0, replaced.stderr)
      const put = { changes: { 'xenserver.password.value': password } }
      assert.equal((await api('PUT', `/api/v1/environments/${env}/settings`, put)).status, 200)
    }
    await usePassword(wrongPassword)
    const failed = await deploy('deploy with a wrong XenServer password')
    assert.notEqual(failed.status, 'ready', 'a deploy with a wrong XenServer password must fail')
    const failedText = JSON.stringify(failed)
    const wrongPasswordError = JSON.stringify(failed.tasks.find((x) => x.error)?.error ?? failed).slice(0, 600)
    // the refused login is the reason given, not a missing VM (secrets-wrong-password.test.ts)
    assert.doesNotMatch(failedText, /no VM/, wrongPasswordError)
    assert.match(failedText, /SESSION_AUTHENTICATION_FAILED|authenticat|login|password/i, failedText.slice(0, 3000))
    await usePassword(xsPassword)

    // 4. A lab host's SSH host key changes: the next deployment is refused, naming the host and the new fingerprint.
    const node = 'compute-1'
    const keyFile = join(lab.hostDir(node), 'ssh', 'ssh_host_ed25519_key')
    const oldFp = execFileSync('ssh-keygen', ['-lf', keyFile + '.pub'], { encoding: 'utf8' }).split(' ')[1]
    // written over the same files (the host sees its ssh dir through a mount: keep the inodes)
    const fresh = join(tmp('xenstack-secrets-key-'), 'key')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'regenerated', '-f', fresh])
    writeFileSync(keyFile, readFileSync(fresh))
    writeFileSync(keyFile + '.pub', readFileSync(fresh + '.pub'))
    const newFp = execFileSync('ssh-keygen', ['-lf', keyFile + '.pub'], { encoding: 'utf8' }).split(' ')[1]
    assert.notEqual(newFp, oldFp)
    // sshd re-executes itself on SIGHUP and loads the new key
    await lab.execOk(node, ['sh', '-c', 'kill -HUP "$(cat /run/sshd.pid)"'])
    const adminAddress = lab.host(node).ssh.host
    await until(
      `sshd on ${node} presents the new key`,
      async () => {
        const scan = await new Promise<string>((r) =>
          execFile('ssh-keyscan', ['-t', 'ed25519', '-T', '5', adminAddress], (_e, out) => r(out)),
        )
        return scan.includes(readFileSync(keyFile + '.pub', 'utf8').split(' ')[1]) ? true : undefined
      },
      60_000,
    )
    const refused = await deploy('deploy after a host key change')
    assert.notEqual(refused.status, 'ready', 'a changed host key must stop the deployment')
    const hostKeyErrors = refused.tasks.filter(
      (x) => x.node === node && /HOST KEY CHANGED/.test(JSON.stringify(x.error)),
    )
    assert.ok(hostKeyErrors.length > 0, `no host key error on ${node}: ${JSON.stringify(refused.tasks).slice(0, 3000)}`)
    const keyError = JSON.stringify(hostKeyErrors[0].error)
    assert.ok(keyError.includes(newFp), `the error names the presented fingerprint ${newFp}: ${keyError}`)
    assert.ok(keyError.includes(oldFp), `the error names the pinned fingerprint ${oldFp}: ${keyError}`)
    assert.ok(keyError.includes(adminAddress) || keyError.includes(node), `the error names the host: ${keyError}`)
    const pinned = readFileSync(lab.knownHostsFile, 'utf8')
    assert.ok(!pinned.includes(readFileSync(keyFile + '.pub', 'utf8').split(' ')[1]), 'the new key was never pinned')

    // 5. The CLI's views of all this.
    const tCli = performance.now()
    const views = [
      ['env', 'list'],
      ['env', 'show', env],
      ['env', 'settings', 'get', env],
      ['env', 'nodes', 'list', env],
      ['pool', 'list'],
      ['pool', 'show', env],
      ['deploy', 'history', env],
      ['deploy', 'logs', env],
      ['health', 'show', env],
    ].flatMap((args) => [args, [...args, '--json']])
    views.push(['env', 'export', env])
    // three at a time: each is a Node start plus a store open, seconds on a loaded machine
    for (let i = 0; i < views.length; i += 3) {
      for (const r of await Promise.all(views.slice(i, i + 3).map((args) => xenstack(home, args)))) {
        cli.push(r)
        assert.equal(r.code, 0, `xenstack ${r.args.join(' ')}: ${r.stderr}`)
      }
    }

    lap('CLI views', tCli)
    // 6. Crawl every GET route of the OpenAPI document with every real value of its parameters.
    const tCrawl = performance.now()
    const docs = await api('GET', '/api/docs')
    const values: Record<string, string[]> = {
      env: [env],
      pool: [env],
      name: [] as string[],
      version: [] as string[],
      node: lab.hosts.map((h) => h.name),
      id: [] as string[],
      task: [] as string[],
    }
    const deployments = (await api('GET', `/api/v1/environments/${env}/deployments`)).json as { id: number }[]
    values.id = deployments.map((d) => String(d.id))
    const tasks = new Set<string>()
    for (const d of deployments)
      for (const x of (await api('GET', `/api/v1/deployments/${d.id}`)).json.tasks as { task: string }[])
        tasks.add(x.task)
    values.task = [...tasks]
    const plugins = (await api('GET', '/api/v1/plugins')).json as { name: string; version: string }[]
    const releases = (await api('GET', '/api/v1/releases')).json as { name: string; version?: string }[]
    values.name = [...plugins.map((p) => p.name), ...releases.map((r) => r.name)]
    values.version = plugins.map((p) => p.version)
    const healthRuns = (await api('GET', '/api/health/v1/testruns')).json as { id: string | number }[]
    let crawled = 0
    for (const [path, ops] of Object.entries<Record<string, unknown>>(docs.json.paths)) {
      if (!ops.get) continue
      const params = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])
      let urls = [path]
      for (const p of params) {
        const vs = path.startsWith('/api/health/') && p === 'id' ? healthRuns.map((r) => String(r.id)) : values[p]
        assert.ok(vs?.length, `no values for {${p}} of ${path}`)
        urls = urls.flatMap((u) => vs.map((v) => u.replace(`{${p}}`, encodeURIComponent(v))))
      }
      for (const url of urls) {
        if (/\/events$/.test(path)) {
          // an event stream's snapshot
          const s = recordStream(`${base}${url}?access_token=${encodeURIComponent(token)}`)
          await until(`${url}: snapshot`, async () => (s.text().includes('\n\n') ? true : undefined), 30_000)
          await s.close()
          answers.push({ place: `GET ${url} (stream)`, text: s.text() })
        } else await api('GET', url)
        crawled++
      }
    }
    lap('API crawl', tCrawl)
    t.diagnostic(`crawled ${crawled} GET URLs of ${Object.keys(docs.json.paths).length} documented paths`)
    for (const s of streams) await s.close()
    void envStream
    void healthStream

    // 7. The sweep.
    const tSweep = performance.now()
    const computeConfig = /\/hosts\/compute-\d+\/fs\/etc\/(nova\/nova-compute\.conf|neutron\/[^/]+\.(conf|ini))$/
    const sweep = new Sweep(
      secrets.flatMap(needlesOf),
      // the XenServer password where nova-compute and the neutron agent read it (they log in to XAPI with it)
      (place, n) => n.secret === 'XenServer password' && n.encoding === 'plain' && computeConfig.test(place),
    )
    for (const a of answers) sweep.search('HTTP answer', a.place, a.text)
    for (const s of streams) sweep.search('event stream', s.name, s.text())
    for (const r of cli) {
      sweep.search('CLI stdout', `xenstack ${r.args.join(' ')}`, r.stdout)
      sweep.search('CLI stderr', `xenstack ${r.args.join(' ')}`, r.stderr)
    }
    sweep.search('server/engine output', 'this process (server, engine, health runner)', output.text())
    // the simulated pool's own objects (sessions, hosts, VMs' xenstore data and other_config, tasks, messages)
    const xapiDb = lab.simulator!.sim.db
    for (const cls of Object.keys(xapiDb.refCounts()))
      for (const [ref, row] of xapiDb.table(cls)) sweep.search('XAPI object', `${cls} ${ref}`, xapiDb.json(row))
    // state: the raw files first (the WAL still holds recent pages while the server runs), then every row
    const wal = join(home, 'state.db-wal')
    const walBytes = existsSync(wal) ? statSync(wal).size : 0
    sweep.files('data dir file', home)
    let rows = 0
    const tables = tableRows(server.context.state)
    for (const { table, rows: rs } of tables)
      for (const [i, row] of rs.entries()) {
        rows++
        sweep.search('state row', `${table} #${i + 1}`, JSON.stringify(row))
      }
    const pools = tables.find((x) => x.table === 'pools')!.rows
    assert.ok(
      pools.every((p) => String(p.password).startsWith('enc:v1:')),
      'pool passwords stored encrypted',
    )
    // the lab: logs (sshd, Glance, services) and everything its hosts wrote, then the machine's own
    sweep.files('lab file', lab.dir)
    sweep.files('machine /var/log', '/var/log', { since: started })
    const labs = join(tmpdir(), 'xenstack-labs')
    sweep.files('machine /tmp', tmpdir(), {
      since: started,
      skip: (p) => p === home || p === labs || p.startsWith(lab.dir) || p.startsWith('/tmp/bash_jobs'),
    })
    output.stop()
    await server.close()
    server = undefined
    // after the server closed: the checkpointed database file
    sweep.files('data dir file (after close)', home)

    // where it belongs, it is not for every user of the host to read
    const expectedUses = sweep.allowed.map((f) => {
      const mode = statSync(f.place.replace(/^lab file: /, '')).mode & 0o777
      return { ...f, mode: mode.toString(8) }
    })
    lap('sweep', tSweep)
    const total = Object.values(sweep.places).reduce((a, b) => a + b, 0)
    const report = {
      measuredAt: new Date().toISOString(),
      command: 'npx tsc -b && node scripts/run-tests.mjs reliability/secrets.test',
      secrets: secrets.map((s) => ({ what: s.what, length: s.value.length })),
      encodings: ENCODINGS,
      needles: secrets.flatMap(needlesOf).length,
      placesSearched: {
        total,
        byKind: sweep.places,
        bytesByKind: sweep.bytes,
        stateRows: rows,
        tables: tables.length,
        walBytesWhileServing: walBytes,
      },
      secretsFound: sweep.findings.length,
      findings: sweep.findings,
      expectedUses,
      wrongPasswordDeploy: { status: failed.status, error: wrongPasswordError },
      filesSearched: sweep.filesSearched,
      hostKeyChange: { node, pinned: oldFp, presented: newFp, refused: true, error: keyError.slice(0, 500) },
      timingsMs: timings,
    }
    writeFigures('secrets', report)
    t.diagnostic(
      `secrets: ${secrets.length} secrets x ${report.encodings.length} encodings in ${total} places ` +
        `(${Object.entries(sweep.places)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}; ${rows} rows of ${tables.length} tables); found ${sweep.findings.length}; ` +
        `expected uses ${sweep.allowed.length}; timings ${JSON.stringify(timings)}`,
    )
    assert.deepEqual(sweep.findings, [], 'secrets found')
    for (const u of expectedUses)
      assert.equal(parseInt(u.mode, 8) & 0o007, 0, `${u.place} holds the XenServer password with mode ${u.mode}`)
    // the sweep can see a secret: it is where it must be (nova-compute logs in to XAPI with it)
    assert.ok(
      sweep.allowed.some((f) => /nova-compute\.conf/.test(f.place)),
      'the XenServer password is in nova-compute.conf (else the sweep proves nothing)',
    )
  } finally {
    output.stop()
    for (const s of streams) await s.close().catch(() => {})
    await server?.close().catch(() => {})
    await lab.down()
  }
})
