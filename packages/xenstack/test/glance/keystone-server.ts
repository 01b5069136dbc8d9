/**
 * A real Keystone (Debian's python3-keystone, Zed) for tests: sqlite database, fernet tokens, `keystone-manage
 * bootstrap` (admin user, admin project, RegionOne, the identity endpoint), served by wsgiref on a kernel-chosen
 * port on 127.0.0.1. The launcher binds the port first so the catalog's identity URL is right, then bootstraps,
 * then serves on the same socket (no race for the port), one request at a time (sqlite). The admin password goes through OS_BOOTSTRAP_PASSWORD,
 * not argv.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { existsSync } from 'node:fs'

export const keystoneInstalled = (): boolean =>
  existsSync('/usr/lib/python3/dist-packages/keystone/server/wsgi.py') &&
  existsSync('/usr/lib/python3/dist-packages/keystonemiddleware/auth_token/__init__.py')

export interface KeystoneServer {
  /** Identity endpoint with its version: http://127.0.0.1:PORT/v3 */
  authUrl: string
  logFile: string
  /** Resolves when Keystone answers (bootstrapped and serving); rejects if it failed. */
  ready: Promise<void>
  stop(): Promise<void>
}

const LAUNCHER = `
import grp, os, pwd, socket, sqlite3, sys
script, conf, db = sys.argv[0], sys.argv[1], sys.argv[2]
if len(sys.argv) == 3:
    # setup: bind the port (the catalog needs the URL), run keystone-manage's commands in this one process, then
    # exec the server with the socket inherited (keystone's provider registry cannot be set up twice per process)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    url = "http://127.0.0.1:%d/v3" % port
    sys.stdout.write("port %d\\n" % port)
    sys.stdout.flush()
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    from keystone.cmd import cli
    import keystone.conf
    for args in (["db_sync"], ["fernet_setup", "--keystone-user", user, "--keystone-group", group],
                 ["credential_setup", "--keystone-user", user, "--keystone-group", group],
                 ["bootstrap", "--bootstrap-admin-url", url, "--bootstrap-public-url", url,
                  "--bootstrap-internal-url", url, "--bootstrap-region-id", "RegionOne"]):
        try:
            cli.main(argv=["keystone-manage", "--config-file", conf] + args)
        except SystemExit as e:
            if e.code:
                raise
        keystone.conf.CONF.reset()
    # WAL: a reader left in a transaction by one request must not make the next write fail "database is locked"
    sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").close()
    os.environ.pop("OS_BOOTSTRAP_PASSWORD", None)
    s.set_inheritable(True)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, script, conf, db, str(s.fileno())])
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
s = socket.socket(fileno=int(sys.argv[3]))
port = s.getsockname()[1]
os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
sys.argv = sys.argv[:1]  # keystone parses argv as its own options
from keystone.server.wsgi import initialize_public_application
app = initialize_public_application()
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
# one request at a time: keystone's sqlite database locks under concurrent writers
srv = WSGIServer(("127.0.0.1", port), Quiet, bind_and_activate=False)
srv.socket.close()
srv.socket = s
srv.server_address = s.getsockname()
srv.server_name, srv.server_port = "127.0.0.1", port
srv.setup_environ()
srv.server_activate()
srv.set_app(app)
sys.stdout.write("ready\\n")
sys.stdout.flush()
srv.serve_forever()
`

export async function startKeystone(dir: string, adminPassword: string, timeoutMs = 240_000): Promise<KeystoneServer> {
  for (const d of ['fernet', 'credential']) mkdirSync(join(dir, d), { recursive: true })
  const conf = join(dir, 'keystone.conf')
  writeFileSync(
    conf,
    `[DEFAULT]\nuse_stderr = true\n[database]\nconnection = sqlite:///${dir}/keystone.sqlite\n` +
      `[token]\nprovider = fernet\n[fernet_tokens]\nkey_repository = ${dir}/fernet\n` +
      `[fernet_receipts]\nkey_repository = ${dir}/fernet\n[credential]\nkey_repository = ${dir}/credential\n`,
  )
  const logFile = join(dir, 'keystone.log')
  const fd = openSync(logFile, 'a')
  const script = join(dir, 'keystone-launcher.py')
  writeFileSync(script, LAUNCHER)
  const child = spawn('/usr/bin/python3', [script, conf, join(dir, 'keystone.sqlite')], {
    stdio: ['ignore', 'pipe', fd],
    env: { ...process.env, OS_BOOTSTRAP_PASSWORD: adminPassword },
  })
  closeSync(fd)
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const t = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(t)
  }
  const tail = () => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-10).join('\n')
    } catch {
      return '(no log)'
    }
  }
  // "port N" as soon as the socket is bound (the caller can configure Glance meanwhile), "ready" when serving
  let buf = ''
  let onPort!: (port: number) => void
  let onReady!: () => void
  let fail!: (e: Error) => void
  const portKnown = new Promise<number>((resolve, reject) => {
    onPort = resolve
    fail = reject
  })
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve
    const prev = fail
    fail = (e) => {
      prev(e)
      reject(e)
    }
  })
  ready.catch(() => undefined)
  const timer = setTimeout(() => fail(new Error(`keystone not up after ${timeoutMs} ms:\n${tail()}`)), timeoutMs)
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString()
    const p = /^port (\d+)\n/m.exec(buf)
    if (p) onPort(Number(p[1]))
    if (/^ready\n/m.test(buf)) {
      clearTimeout(timer)
      onReady()
    }
  })
  child.on('exit', (code) => {
    clearTimeout(timer)
    fail(new Error(`keystone launcher exited (${code}):\n${tail()}`))
  })
  try {
    const port = await portKnown
    return { authUrl: `http://127.0.0.1:${port}/v3`, logFile, ready, stop }
  } catch (e) {
    await stop()
    throw e
  }
}
