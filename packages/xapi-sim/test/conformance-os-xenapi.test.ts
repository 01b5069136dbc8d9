/**
 * Conformance: os-xenapi's Python client (Debian python3-os-xenapi 0.3.4, under /usr/bin/python3) against the
 * simulator — XenAPI.Session login, calls and Failure details; XenAPISession against a pool member (HOST_IS_SLAVE
 * redirect), its session pool, and call_plugin_serialized of dom0_plugin_version.py installed in the simulator's
 * plugins directory. The Python driver is test/fixtures/os_xenapi_client.py (see its header for its one shim).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, cpSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { requirePrerequisite, hasExecutable, hasPythonModule, inCI, isRoot, SYSTEM_PYTHON } from '@xenstack/testkit'
import { validateScenario } from '../src/scenario.js'
import { startSimServer, type SimServer } from '../src/server.js'
import { fixtures, withTempDir } from './helpers.js'

const run = promisify(execFile)
const IMAGE_SIZE = 256 * 1024 * 1024
const PASSWORD = 'osx-' + randomBytes(4).toString('hex')
let server: SimServer | undefined

after(async () => {
  await server?.close()
})

test('os-xenapi: XenAPI.Session and XenAPISession against a pool member, with the plugin version check', async (t) => {
  if (
    !requirePrerequisite(t, 'python3-os-xenapi (/usr/bin/python3)', () => hasPythonModule('os_xenapi.client.session'))
  )
    return
  // os-xenapi resolves the URL's whole netloc with gethostbyname, so its URLs cannot carry a port: the pool listens
  // on port 80, as XAPI does, on loopback addresses of its own (127.A.B.1 master, .2 member) so parallel tests and
  // other simulators are not in the way. Binding port 80 needs root.
  if (!requirePrerequisite(t, 'root (to listen on port 80)', isRoot)) return
  const [a, b] = [100 + (randomBytes(1)[0] % 150), randomBytes(1)[0] % 250]
  const master = `127.${a}.${b}.1`
  const memberAddress = `127.${a}.${b}.2`
  const scenario = validateScenario(
    {
      name: 'os-xenapi',
      pools: [
        {
          name: 'xs71',
          version: '7.1.0',
          hosts: [
            { name: 'xs1', address: master },
            { name: 'xs2', address: memberAddress },
          ],
        },
      ],
    },
    'conformance-os-xenapi',
  )
  await withTempDir('xsim-osx-', async (plugins) =>
    withTempDir('xsim-osx-img-', async (images) => {
      cpSync(fixtures('plugins'), plugins, { recursive: true })
      server = await startSimServer({ scenario, listen: `${master}:80`, password: PASSWORD, pluginsDir: plugins })
      const sim = server.pools[0].sim
      assert.equal(server.url, `http://${master}:80`)
      const masterUrl = `http://${master}`
      const member = [...server.pools[0].addresses].find(([, addr]) => addr === memberAddress)!
      const memberUrl = `http://${memberAddress}`
      // The image path (nova's stream_to_vdis / stream_from_vdis) needs a VHD: qemu-img writes one from a raw disk.
      const withImage = hasExecutable('qemu-img')
      const raw = join(images, 'disk.raw')
      const imageVhd = join(images, 'image.vhd')
      const exportVhd = join(images, 'export.vhd')
      const extra: string[] = []
      // 256 MiB: os-xenapi's vhd_utils sizes an exported VHD with `(offset / 512 + 1) * 512`, a float division under
      // Python 3 that is wrong unless the BAT fills whole sectors (a multiple of 128 blocks of 2 MiB). Disks in
      // 256 MiB multiples, as real images are, avoid that client bug; the file stays sparse.
      if (withImage) {
        writeFileSync(raw, '')
        truncateSync(raw, IMAGE_SIZE)
        const fd = openSync(raw, 'r+')
        writeSync(fd, randomBytes(300_000), 0, 300_000, 100_000)
        writeSync(fd, randomBytes(4096), 0, 4096, 130 * 1024 * 1024 + 512)
        writeSync(fd, randomBytes(512), 0, 512, IMAGE_SIZE - 512)
        closeSync(fd)
        execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'force_size=on', raw, imageVhd])
        extra.push(imageVhd, exportVhd)
      }
      const { stdout } = await run(
        SYSTEM_PYTHON,
        [fixtures('os_xenapi_client.py'), masterUrl, memberUrl, PASSWORD, ...extra],
        {
          timeout: 120_000,
        },
      )
      const out = JSON.parse(stdout.trim().split('\n').pop()!)

      // XenAPI.Session
      assert.equal(
        out.sdk_api_version,
        '2.6',
        'API version of XenServer 7.1 read through pool.get_master/host.get_API_version_*',
      )
      assert.equal(out.sdk_master, sim.master)
      assert.equal(out.sdk_vm_count, sim.db.count('VM'))
      assert.deepEqual(out.sdk_handle_invalid, [
        'HANDLE_INVALID',
        'VM',
        'OpaqueRef:00000000-0000-0000-0000-000000000000',
      ])
      assert.deepEqual(out.sdk_count_mismatch, ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.start', '3', '1'])
      assert.equal(out.sdk_auth_failed, 'SESSION_AUTHENTICATION_FAILED')
      assert.deepEqual(out.sdk_member_login, ['HOST_IS_SLAVE', master])

      // XenAPISession: redirected to the master, host found by its management PIF's IP on the member.
      const memberRef = [...sim.db.all('host')].find(([, h]) => h.address === member[1])![0]
      assert.equal(out.is_slave, true)
      assert.equal(out.master_url, masterUrl)
      assert.equal(out.host_ref, memberRef)
      assert.equal(out.host_uuid, sim.db.get(memberRef)!.uuid)
      assert.deepEqual(out.product_version, [7, 1, 0])
      assert.deepEqual(out.platform_version, [2, 2, 0])
      assert.equal(out.product_brand, 'XenServer')
      assert.equal(out.plugin_version, '2.1')
      // Session pool: 5 sessions, all used, and they stay behind on the server (os-xenapi never logs out).
      assert.equal(out.pool_size, 5)
      assert.deepEqual(out.pool_errors, [])
      assert.equal(out.distinct_sessions_used, 5)
      assert.equal(out.session_shared_by_two_calls, 0, 'a pooled session serves one call at a time')
      const osx = [...sim.db.all('session')].filter(([, s]) => s.originator === 'os-xenapi-conformance')
      assert.equal(osx.length, 5)
      // Plugins: host_uuid added by the client, Failure re-raised unchanged, missing plugin named with .py.
      assert.equal(out.echo, `a=1,host_uuid=${out.host_uuid}`)
      assert.deepEqual(out.plugin_failure, ['VM_BAD_POWER_STATE', 'OpaqueRef:x', 'running', 'halted'])
      assert.deepEqual(out.plugin_missing, ['XENAPI_MISSING_PLUGIN', 'missing.py'])
      assert.equal(out.get_rec_missing, null)
      assert.equal(out.software_version.product_version, '7.1.0')
      assert.equal(out.task_label, 'os-xenapi-conformance-conformance')
      assert.equal(out.task_destroyed, true)
      // The image path: one VDI of the VHD's virtual size, an export that os-xenapi's own dynamic-VHD parser sizes from
      // our BAT, and a VHD that qemu-img reads as the original disk.
      if (withImage) {
        assert.match(out.imported_vdi.root.uuid, /^[0-9a-f-]{36}$/)
        assert.equal(out.imported_virtual_size, IMAGE_SIZE)
        assert.equal(out.export_status, 200)
        assert.equal(out.export_size_from_bat, out.export_size, "os-xenapi's VHD parser sizes our export right")
        assert.deepEqual(out.leftover_tasks, [], 'the client destroys its VDI_IMPORT/VDI_EXPORT tasks')
        execFileSync('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', exportVhd, raw])
      } else if (inCI()) assert.fail('qemu-img (qemu-utils) is needed for the image path in CI')
      // A plugin that calls back into XAPI with the caller's session (XenAPI.xapi_local() reaches the simulator).
      const sess = await sim.callOrThrow('session.login_with_password', 'root', PASSWORD)
      const names = await sim.callOrThrow('host.call_plugin', sess, memberRef, 'callback.py', 'host_names', {})
      assert.equal(names, 'xs1,xs2')
    }),
  )
})
