import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { hasExecutable, requirePrerequisite, scratchDirs } from '@xenstack/testkit'
import {
  GlanceClient,
  authenticate,
  glanceInstalled,
  startStandaloneGlance,
  type StandaloneGlance,
} from '../../src/glance/index.js'
import { Secret } from '../../src/node/secret.js'
import { natives } from '../../src/integration/image/index.js'
import { LocalExecutor } from '../../src/node/index.js'
import { keystoneInstalled, startKeystone, type KeystoneServer } from './keystone-server.js'
import { handlerContext } from '../integration/task-context.js'

// A real Keystone v3 and a Glance that validates tokens with it (keystonemiddleware authtoken); the image service
// is registered in Keystone's catalog, so clients find Glance from the auth URL alone.
const ADMIN_PASSWORD = 'ks-Adm1n-pw-7731'
const tmp = scratchDirs()
let keystone: KeystoneServer | undefined
let glance: StandaloneGlance | undefined
const installed = () => keystoneInstalled() && glanceInstalled()

before(async () => {
  if (!installed()) return
  process.env.XENSTACK_HOME = tmp('xs-home-ks-')
  keystone = await startKeystone(tmp('xs-keystone-'), ADMIN_PASSWORD)
  // Glance starts while Keystone bootstraps (it needs only the URL until the first request)
  const [g] = await Promise.all([
    startStandaloneGlance(tmp('xs-glance-ks-'), {
      keystone: { authUrl: keystone.authUrl, username: 'admin', password: ADMIN_PASSWORD, projectName: 'admin' },
    }),
    keystone.ready,
  ])
  glance = g
  // the catalog entry for Glance, made through Keystone's own API with the admin's token
  const token = await authenticate(creds())
  const call = async (path: string, body: unknown) => {
    const res = await fetch(`${keystone!.authUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-token': token.value.reveal() },
      body: JSON.stringify(body),
    })
    assert.equal(res.status, 201, await res.clone().text())
    return (await res.json()) as Record<string, { id: string }>
  }
  const svc = await call('/services', { service: { type: 'image', name: 'glance' } })
  for (const iface of ['public', 'internal'])
    await call('/endpoints', {
      endpoint: { service_id: svc.service.id, interface: iface, region_id: 'RegionOne', url: g.url },
    })
})
after(async () => {
  await glance?.stop()
  await keystone?.stop()
})

const creds = (password = ADMIN_PASSWORD) => ({
  authUrl: keystone!.authUrl,
  username: 'admin',
  password: new Secret(password),
  projectName: 'admin',
})

function ready(t: import('node:test').TestContext): boolean {
  return requirePrerequisite(t, 'python3-keystone and python3-glance', installed)
}

function status(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
      .on('error', reject)
      .end()
  })
}

test('Keystone v3: the client finds Glance in the catalog and its token is accepted; Glance refuses requests without one', async (t) => {
  if (!ready(t)) return
  assert.equal(await status(`${glance!.url}/v2/images`), 401, 'Glance really checks tokens')
  const c = new GlanceClient({ keystone: creds() })
  assert.equal(await c.endpoint(), glance!.url)
  const internal = new GlanceClient({ keystone: creds(), interface: 'internal', region: 'RegionOne' })
  assert.equal(await internal.endpoint(), glance!.url)
  const img = await c.createImage({ name: 'ks-probe', disk_format: 'raw', container_format: 'bare' })
  const up = await c.uploadImage(img.id, Buffer.from('behind keystone'))
  assert.equal(up.image.status, 'active')
  assert.match(
    String(up.image.owner),
    /^[0-9a-f]{32}$/,
    "owned by the admin project (a real context, not Glance's anonymous one)",
  )
  await c.deleteImage(img.id)
})

test("Keystone v3: a wrong password fails with the URL and Keystone's message, never the password", async (t) => {
  if (!ready(t)) return
  const wrong = 'not-the-Adm1n-pw'
  const c = new GlanceClient({ keystone: creds(wrong) })
  await assert.rejects(c.listImages(), (e: Error) => {
    assert.match(
      e.message,
      /^Keystone authentication of user admin at http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens failed: POST http:\/\/127\.0\.0\.1:\d+\/v3\/auth\/tokens answered HTTP 401: The request you have made requires authentication\.$/,
    )
    assert.ok(!e.message.includes(wrong) && !(e.stack ?? '').includes(wrong))
    return true
  })
})

test('xenserver.test-image through Keystone (data.glance.authUrl + the access settings): TestVM public and owned; second run unchanged; no password or token in the task log', async (t) => {
  if (!ready(t)) return
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  const lines: string[] = []
  const ctx = handlerContext(
    'controller-1',
    'xenserver-test-image',
    {
      exec: new LocalExecutor({ name: 'controller-1' }),
      settings: {
        access: { user: { value: 'admin' }, password: { value: ADMIN_PASSWORD }, tenant: { value: 'admin' } },
      },
      nodeData: { glance: { authUrl: keystone!.authUrl } },
    },
    lines,
  )
  const first = await natives['xenserver.test-image'].run!(ctx)
  assert.equal(first?.[0].result, 'changed')
  const second = await natives['xenserver.test-image'].run!(ctx)
  assert.deepEqual(second, [{ resource: 'glance image TestVM', result: 'unchanged' }])
  const [tvm, ...more] = await new GlanceClient({ keystone: creds() }).listImages({ name: 'TestVM' })
  assert.equal(more.length, 0)
  assert.equal(tvm.visibility, 'public')
  assert.equal(tvm.vm_mode, 'xen')
  const log = lines.join('\n')
  assert.match(
    log,
    /Glance from node controller-1's data\.glance \(Keystone, access settings\): http:\/\/127\.0\.0\.1:\d+/,
  )
  assert.ok(!log.includes(ADMIN_PASSWORD))
  assert.doesNotMatch(log, /gAAAAA/, 'no fernet token in the log')
})
