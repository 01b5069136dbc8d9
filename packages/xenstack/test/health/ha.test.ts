/**
 * Checks whose break needs a lab of its own shape: the ha set on two controllers — it applies (deployment tag
 * `ha`), passes once the integration's controller task has configured the console token cache on both, fails naming
 * the controller and key when one points elsewhere, and passes again after the task runs again; and the session
 * leak check of cloudvalidation, which passes on a clean run and catches a test that logs in and never logs out.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { xenserverHealthRunner } from '../../src/health/xenserver/index.js'
import { withDeployedLab } from './lab-env.js'

const TOKENS = 'xenstack.health.xenserver.ha.test_console_tokens_shared'

test('ha and cloudvalidation checks on a lab with two controllers', async (t) => {
  await withDeployedLab(t, { controllers: 2, glance: false }, async ({ lab, state, env, runNatives }) => {
    await t.test(
      'console tokens shared by two controllers; one pointing elsewhere fails, the controller task repairs it',
      async () => {
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
      },
    )

    await t.test('a test that logs in to the pool and never logs out is caught as a leaked session', async () => {
      const { HealthRunner, HealthStore } = await import('../../src/health/index.js')
      const { xapiSessionsStable } = await import('../../src/health/xenserver/cloudvalidation.js')
      const { describeEnvironment, openXenServerEnvironment } = await import('../../src/health/xenserver/index.js')
      const { connect } = await import('@xenstack/xenapi')
      const sim = lab.simulator!
      const leaked: { close(): Promise<void> }[] = []
      const leaky = {
        id: 'synthetic.cloudvalidation.leaks_a_session',
        testset: 'cloudvalidation',
        title: 'Logs in and forgets to log out',
        description: 'synthetic',
        steps: ['log in'],
        duration: '1 s',
        run: async () => {
          const x = await connect({ url: sim.url, username: sim.username, password: sim.password })
          leaked.push(x)
        },
      }
      const runner = (catalog: unknown[]) =>
        new HealthRunner({
          store: new HealthStore(state),
          catalog: catalog as never,
          describe: (e) => describeEnvironment(state, e),
          open: (e) => openXenServerEnvironment(state, e),
        })
      const result = async (catalog: unknown[]) => {
        const r = runner(catalog)
        const run = await r.wait(r.start(env, 'cloudvalidation', { tests: [xapiSessionsStable.id] }).id)
        return run.tests.find((x) => x.id === xapiSessionsStable.id)!
      }
      try {
        const clean = await result([xapiSessionsStable])
        assert.equal(clean.status, 'success', clean.message)
        const r = runner([xapiSessionsStable, leaky])
        const run = await r.wait(r.start(env, 'cloudvalidation').id)
        const caught = run.tests.find((x) => x.id === xapiSessionsStable.id)!
        assert.equal(caught.status, 'failure')
        assert.match(
          caught.message,
          /^Step 1 failed: expected the same number of XAPI sessions after the run as before it; found pool \S+ holds (\d+) sessions after the run, \d+ before \(1 leaked\)$/,
        )
      } finally {
        await Promise.all(leaked.map((x) => x.close()))
      }
    })
  })
})
