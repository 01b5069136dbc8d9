/**
 * The ha set on a lab with two controllers: it applies (deployment tag `ha`), passes once the integration's
 * controller task has configured the console token cache on both controllers, fails naming the controller and key
 * when one of them points elsewhere, and passes again after the task runs again.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { xenserverHealthRunner } from '../../src/health/xenserver/index.js'
import { withDeployedLab } from './lab-env.js'

const TOKENS = 'xenstack.health.xenserver.ha.test_console_tokens_shared'

test('ha: console tokens shared by two controllers; one pointing elsewhere fails, the controller task repairs it', async (t) => {
  await withDeployedLab(t, { controllers: 2, glance: false }, async ({ lab, state, env, runNatives }) => {
    const servers = ['controller-1', 'controller-2']
      .map((c) => `${lab.host(c).addresses.management!.split('/')[0]}:11211`)
      .join(',')
    // What a Fuel controller's nova.conf has before the XenServer step: keystone's memcached servers.
    for (const c of ['controller-1', 'controller-2']) {
      await lab.execOk(c, ['mkdir', '-p', '/etc/nova'])
      await lab.execOk(c, ['sh', '-c', 'cat > /etc/nova/nova.conf'], {
        stdin: `[DEFAULT]\ndebug = False\n\n[keystone_authtoken]\nmemcached_servers = ${servers}\n`,
      })
      await runNatives(c, ['xenserver.controller-vnc-cache'])
    }
    const runner = xenserverHealthRunner(state)
    const runHa = async () => (await runner.wait(runner.start(env, 'ha').id)).tests.find((x) => x.id === TOKENS)!

    const ok = await runHa()
    assert.equal(ok.status, 'success', ok.message)

    await lab.execOk('controller-2', [
      'sed',
      '-i',
      's/^memcache_servers *=.*/memcache_servers = 127.0.0.1:11211/',
      '/etc/nova/nova.conf',
    ])
    const broken = await runHa()
    assert.equal(broken.status, 'failure')
    assert.equal(
      broken.message,
      `Step 2 failed: expected the console token cache keys of OpenStack mitaka in /etc/nova/nova.conf; found ` +
        `controller-2: [cache] memcache_servers = 127.0.0.1:11211, expected ${servers}`,
    )

    await runNatives('controller-2', ['xenserver.controller-vnc-cache'])
    const repaired = await runHa()
    assert.equal(repaired.status, 'success', repaired.message)
  })
})
