/** host.call_plugin's runner against real plugin processes (Python with our XenAPIPlugin, and a shell script). */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync } from 'node:fs'
import { requirePrerequisite, hasPythonModule } from '@xenstack/testkit'
import { runPlugin, PluginError } from '../src/plugins.js'
import { fixtures, withTempDir } from './helpers.js'

const call = (dir: string, plugin: string, fn: string, args: Record<string, string> = {}) =>
  runPlugin({ pluginsDir: dir, plugin, fn, args, sessionRef: 'OpaqueRef:s1' })

async function failsWith(p: Promise<unknown>, code: string, params?: (string | RegExp)[]) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof PluginError, `expected a PluginError, got ${String(e)}`)
    assert.equal(e.code, code)
    if (params) {
      assert.equal(e.params.length, params.length, JSON.stringify(e.params))
      params.forEach((x, i) => (typeof x === 'string' ? assert.equal(e.params[i], x) : assert.match(e.params[i], x)))
    }
    return true
  })
}

test('a Python plugin gets (fn, [session, args]) and its string result comes back', async (t) => {
  if (!requirePrerequisite(t, '/usr/bin/python3', () => hasPythonModule('xmlrpc.client'))) return
  await withTempDir('xsim-plugins-', async (dir) => {
    cpSync(fixtures('plugins'), dir, { recursive: true })
    assert.equal(await call(dir, 'echo.py', 'echo', { b: '2', a: 'x<&>y' }), 'a=x<&>y,b=2')
    // The plugin sees the caller's session ref (bound to a XenAPI session object when os-xenapi is installed).
    assert.equal(await call(dir, 'echo.py', 'session_ref'), 'OpaqueRef:s1')
    await failsWith(call(dir, 'echo.py', 'fail'), 'VM_BAD_POWER_STATE', ['OpaqueRef:x', 'running', 'halted'])
    await failsWith(call(dir, 'echo.py', 'crash', { what: 'disk' }), 'XENAPI_PLUGIN_FAILURE', [
      'crash',
      'ValueError',
      'no disk here',
    ])
    await failsWith(call(dir, 'echo.py', 'nope'), 'UNKNOWN_XENAPI_PLUGIN_FUNCTION', ['nope'])
    await failsWith(call(dir, 'echo.py', 'not_a_string'), 'XENAPI_PLUGIN_FAILURE', [
      'failed to parse plugin output',
      /<methodResponse>/,
      /expected the plugin to return a string, got a number/,
    ])
  })
})

test('failures of the plugin process map as XAPI maps them', async () => {
  await withTempDir('xsim-plugins-', async (dir) => {
    cpSync(fixtures('plugins'), dir, { recursive: true })
    assert.equal(await call(dir, 'shell.sh', 'ok'), 'from shell')
    await failsWith(call(dir, 'missing.py', 'x'), 'XENAPI_MISSING_PLUGIN', ['missing.py'])
    await failsWith(call(dir, '../plugins', 'x'), 'XENAPI_MISSING_PLUGIN', ['../plugins'])
    await failsWith(call(dir, 'shell.sh', 'exit3'), 'XENAPI_PLUGIN_FAILURE', [
      'non-zero exit',
      'partial output\n',
      'something broke\n',
    ])
    await failsWith(call(dir, 'shell.sh', 'killed'), 'XENAPI_PLUGIN_FAILURE', ['signal: SIGTERM', '', ''])
    await failsWith(call(dir, 'shell.sh', 'fault'), 'XENAPI_PLUGIN_FAILURE', ['fault', '7', 'bad thing'])
    await failsWith(call(dir, 'shell.sh', 'garbage'), 'XENAPI_PLUGIN_FAILURE', [
      'failed to parse plugin output',
      'this is not XML-RPC\n',
      /./,
    ])
  })
})
