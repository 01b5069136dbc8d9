/**
 * Dom0 plugins through the simulator's `host.call_plugin`, which runs real plugin files (written here into the
 * simulator's plugins directory and run by Debian's Python): plain calls, the os-xenapi version check with its
 * pickled arguments, retries with backoff on retryable failures (RetryableError, a plugin killed by a signal), and the
 * errors that must not be retried.
 */
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { SYSTEM_PYTHON, hasExecutable, requirePrerequisite } from '@xenstack/testkit'
import { startSimServer, type SimServer } from '@xenstack/xapi-sim'
import {
  PluginRetriesExceededError,
  PluginVersionMismatchError,
  XenAPIError,
  connect,
  type Xapi,
} from '../src/index.js'

const PASSWORD = 'plugin-Passw0rd'

const ECHO = `#!/usr/bin/env python3
import os, signal
import XenAPIPlugin

STATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'attempts')

class RetryableError(Exception):
    pass

def bump(name):
    path = STATE + '.' + name
    n = int(open(path).read()) if os.path.exists(path) else 0
    open(path, 'w').write(str(n + 1))
    return n + 1

def ping(session, args):
    return 'pong ' + args.get('msg', '')

def flaky(session, args):
    if bump(args['key']) <= int(args['failures']):
        raise RetryableError('try again later')
    return 'ok after retries'

def killed_once(session, args):
    if bump(args['key']) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 'survived'

def broken(session, args):
    raise ValueError('bad input')

if __name__ == '__main__':
    XenAPIPlugin.dispatch({'ping': ping, 'flaky': flaky, 'killed_once': killed_once, 'broken': broken})
`

/** Like os-xenapi's dom0_plugin_version.py: serialized (pickled) arguments and result. */
const versionPlugin = (version: string): string => `#!/usr/bin/env python3
import pickle
import XenAPIPlugin

def get_version(session, arg_dict):
    params = pickle.loads(arg_dict['params'].encode('latin-1'))
    assert params == {'args': [], 'kwargs': {}}, params
    return pickle.dumps('${version}', 0).decode('latin-1')

if __name__ == '__main__':
    XenAPIPlugin.dispatch({'get_version': get_version})
`

let server: SimServer
let xapi: Xapi
let host: string
let pluginsDir: string

before(async () => {
  pluginsDir = mkdtempSync(join(tmpdir(), 'xenapi-plugins-'))
  for (const [name, text] of [
    ['echo.py', ECHO],
    ['dom0_plugin_version.py', versionPlugin('2.1')],
    ['dom0_plugin_version_old.py', versionPlugin('1.9')],
  ] as const) {
    writeFileSync(join(pluginsDir, name), text)
    chmodSync(join(pluginsDir, name), 0o755)
  }
  server = await startSimServer({ hosts: 1, vms: 0, password: PASSWORD, pluginsDir })
  xapi = await connect({ url: server.url, password: PASSWORD, transport: 'xml-rpc' })
  host = (await xapi.host.get_all())[0]!
})
after(async () => {
  await xapi?.close()
  await server?.close()
  rmSync(pluginsDir, { recursive: true, force: true })
})

describe('dom0 plugins', () => {
  test('callPlugin runs the plugin and returns its string; a missing plugin is XENAPI_MISSING_PLUGIN', async (t) => {
    if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
    assert.equal(await xapi.callPlugin(host, 'echo.py', 'ping', { msg: 'hello' }), 'pong hello')
    await assert.rejects(xapi.callPlugin(host, 'nope.py', 'ping'), (e: unknown) => {
      assert.ok(e instanceof XenAPIError)
      assert.equal(e.code, 'XENAPI_MISSING_PLUGIN')
      return true
    })
  })

  test('checkPluginVersion: same major and minor >= required passes, otherwise PluginVersionMismatchError', async (t) => {
    if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
    assert.equal(await xapi.checkPluginVersion(host, '2.1'), '2.1')
    assert.equal(await xapi.checkPluginVersion(host, '2.0'), '2.1')
    await assert.rejects(xapi.checkPluginVersion(host, '2.2'), PluginVersionMismatchError)
    await assert.rejects(xapi.checkPluginVersion(host, '1.0'), PluginVersionMismatchError)
    await assert.rejects(
      xapi.checkPluginVersion(host, '2.1', { plugin: 'dom0_plugin_version_old.py' }),
      (e: unknown) => {
        assert.ok(e instanceof PluginVersionMismatchError)
        assert.equal(e.found, '1.9')
        assert.match(e.message, /1\.9.*2\.1/)
        return true
      },
    )
  })

  test('retryable failures are retried with growing delays until success', async (t) => {
    if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
    const delays: number[] = []
    const attempts: number[] = []
    const out = await xapi.callPluginWithRetry(
      host,
      'echo.py',
      'flaky',
      { key: 'a', failures: '2' },
      {
        retries: 3,
        initialDelay: 20,
        beforeAttempt: (n) => void attempts.push(n),
        onRetry: (e, _n, delay) => {
          assert.ok(e instanceof XenAPIError && e.params[1] === 'RetryableError')
          delays.push(delay)
        },
      },
    )
    assert.equal(out, 'ok after retries')
    assert.deepEqual(attempts, [1, 2, 3])
    assert.deepEqual(delays, [20, 40])

    // a plugin killed by a signal is retried too
    assert.equal(
      await xapi.callPluginWithRetry(host, 'echo.py', 'killed_once', { key: 'b' }, { initialDelay: 10 }),
      'survived',
    )
  })

  test('non-retryable failures are thrown at once; retries run out with PluginRetriesExceededError', async (t) => {
    if (!requirePrerequisite(t, SYSTEM_PYTHON, () => hasExecutable(SYSTEM_PYTHON))) return
    let retried = 0
    await assert.rejects(
      xapi.callPluginWithRetry(host, 'echo.py', 'broken', {}, { initialDelay: 10, onRetry: () => void retried++ }),
      (e: unknown) => {
        assert.ok(e instanceof XenAPIError)
        assert.equal(e.code, 'XENAPI_PLUGIN_FAILURE')
        assert.deepEqual(e.params.slice(0, 2), ['broken', 'ValueError'])
        return true
      },
    )
    assert.equal(retried, 0)
    await assert.rejects(
      xapi.callPluginWithRetry(
        host,
        'echo.py',
        'flaky',
        { key: 'c', failures: '99' },
        { retries: 2, initialDelay: 10 },
      ),
      (e: unknown) => {
        assert.ok(e instanceof PluginRetriesExceededError)
        assert.equal(e.attempts, 3)
        assert.ok(e.cause instanceof XenAPIError)
        return true
      },
    )
  })
})
