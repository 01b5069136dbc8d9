/**
 * The simulator server's I/O side seen from the wire: disk handler edge cases, fault injection through the admin
 * endpoint, scenarios built into pools, and state surviving a restart.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { requirePrerequisite, hasExecutable } from '@xenstack/testkit'
import { parseScenario } from '../src/scenario.js'
import { startSimServer, type SimServer } from '../src/server.js'
import { withTempDir } from './helpers.js'

const MiB = 1024 * 1024

async function rpc(url: string, method: string, params: unknown[]): Promise<any> {
  const r = await fetch(`${url}/jsonrpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return r.json()
}
async function call(url: string, method: string, ...params: unknown[]): Promise<any> {
  const j = await rpc(url, method, params)
  if (j.error)
    throw Object.assign(new Error(`${j.error.message} ${JSON.stringify(j.error.data)}`), {
      ed: [j.error.message, ...j.error.data],
    })
  return j.result
}
async function login(s: SimServer, password: string): Promise<string> {
  return call(s.url, 'session.login_with_password', 'root', password)
}
async function newVdi(s: SimServer, sess: string, size: number): Promise<string> {
  const srs = await call(s.url, 'SR.get_all_records', sess)
  const sr = Object.entries(srs as Record<string, any>).find(([, r]) => r.type === 'ext')![0]
  return call(s.url, 'VDI.create', sess, {
    name_label: 'test',
    name_description: '',
    SR: sr,
    virtual_size: size,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
  })
}

test('disk handlers: Task-Id, task results and errors, probe PUT, auth by cookie and basic, format checks', async () => {
  const pw = randomBytes(6).toString('hex')
  const s = await startSimServer({ password: pw })
  try {
    const sess = await login(s, pw)
    const vdi = await newVdi(s, sess, 2 * MiB)
    const task = await call(s.url, 'task.create', sess, 'upload', '')
    const data = randomBytes(2 * MiB)
    let r = await fetch(`${s.url}/import_raw_vdi?session_id=${sess}&task_id=${task}&vdi=${vdi}&format=raw`, {
      method: 'PUT',
      body: data,
    })
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('task-id'), task)
    await r.arrayBuffer()
    assert.equal(await call(s.url, 'task.get_status', sess, task), 'success')
    assert.equal(await call(s.url, 'task.get_result', sess, task), `<value>${vdi}</value>`)
    // The probe: an empty PUT without a task changes nothing.
    r = await fetch(`${s.url}/import_raw_vdi?session_id=${sess}&vdi=${vdi}&format=raw`, { method: 'PUT', body: '' })
    assert.equal(r.status, 200)
    // Export by cookie, and by HTTP Basic credentials; VDI by uuid.
    const uuid = await call(s.url, 'VDI.get_uuid', sess, vdi)
    r = await fetch(`${s.url}/export_raw_vdi?vdi=${uuid}&format=raw`, { headers: { cookie: `session_id=${sess}` } })
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('content-type'), 'application/octet-stream')
    assert.ok(
      Buffer.from(await r.arrayBuffer()).equals(data),
      'export equals what was imported (the probe changed nothing)',
    )
    const basic = 'Basic ' + Buffer.from(`root:${pw}`).toString('base64')
    r = await fetch(`${s.url}/export_raw_vdi?vdi=${vdi}&format=RAW`, { headers: { authorization: basic } })
    assert.equal(r.status, 200)
    assert.equal((await r.arrayBuffer()).byteLength, 2 * MiB)
    // Wrong credentials, unknown format (with the task failed as XAPI fails it), chunked VHD, too much data.
    r = await fetch(`${s.url}/export_raw_vdi?vdi=${vdi}&format=raw`, {
      headers: { authorization: 'Basic ' + Buffer.from('root:nope').toString('base64') },
    })
    assert.equal(r.status, 401)
    await r.arrayBuffer()
    const t2 = await call(s.url, 'task.create', sess, 'bad format', '')
    r = await fetch(`${s.url}/export_raw_vdi?session_id=${sess}&task_id=${t2}&vdi=${vdi}&format=vmdk`)
    assert.equal(r.status, 404)
    await r.arrayBuffer()
    assert.equal(await call(s.url, 'task.get_status', sess, t2), 'failure')
    assert.deepEqual(await call(s.url, 'task.get_error_info', sess, t2), ['INTERNAL_ERROR', 'Unknown format vmdk'])
    const chunked = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${s.url}/import_raw_vdi?session_id=${sess}&vdi=${vdi}&format=vhd`)
      const req = request(u, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.end(Buffer.alloc(1024))
    })
    assert.equal(chunked, 400)
    const t3 = await call(s.url, 'task.create', sess, 'too big', '')
    r = await fetch(`${s.url}/import_raw_vdi?session_id=${sess}&task_id=${t3}&vdi=${vdi}&format=raw`, {
      method: 'PUT',
      body: Buffer.alloc(3 * MiB, 1),
    }).catch(() => undefined as unknown as Response)
    await r?.arrayBuffer().catch(() => undefined)
    // the import ends the task asynchronously: poll with a deadline (a count of 20 ms turns is too short under load)
    for (const deadline = Date.now() + 30_000; (await call(s.url, 'task.get_status', sess, t3)) === 'pending';) {
      assert.ok(Date.now() < deadline, `task ${t3} still pending 30 s after the oversized import`)
      await new Promise((res) => setTimeout(res, 20))
    }
    assert.equal((await call(s.url, 'task.get_error_info', sess, t3))[0], 'VDI_IO_ERROR')
    // No vdi but an sr_id: XAPI creates "Imported VDI" of the body's size; the task result names it.
    const srs = (await call(s.url, 'SR.get_all_records', sess)) as Record<string, any>
    const sr = Object.entries(srs).find(([, x]) => x.type === 'ext')![0]
    const t4 = await call(s.url, 'task.create', sess, 'new vdi', '')
    r = await fetch(`${s.url}/import_raw_vdi?session_id=${sess}&task_id=${t4}&sr_id=${sr}&format=raw`, {
      method: 'PUT',
      body: Buffer.alloc(MiB, 9),
    })
    await r.arrayBuffer()
    const created = /^<value>(OpaqueRef:[^<]+)<\/value>$/.exec(await call(s.url, 'task.get_result', sess, t4))![1]
    assert.equal(await call(s.url, 'VDI.get_name_label', sess, created), 'Imported VDI')
    assert.equal(await call(s.url, 'VDI.get_virtual_size', sess, created), MiB)
    // Destroying the VDI removes its contents file.
    const file = join(s.stateDir, 'vdis', `${uuid}.raw`)
    assert.ok(existsSync(file))
    await call(s.url, 'VDI.destroy', sess, vdi)
    for (let i = 0; i < 50 && existsSync(file); i++) await new Promise((res) => setTimeout(res, 10))
    assert.equal(existsSync(file), false)
  } finally {
    await s.close()
  }
  assert.equal(existsSync(s.stateDir), false, 'the temporary state directory is removed on close')
})

test("disk handlers: an upload of unknown length (xen-api's 1 PiB content-length, then close) keeps its data", async (t) => {
  if (!requirePrerequisite(t, 'qemu-img (qemu-utils)', () => hasExecutable('qemu-img'))) return
  await withTempDir('xsim-hack-', async (dir) => {
    const pw = randomBytes(6).toString('hex')
    const s = await startSimServer({ password: pw })
    try {
      const sess = await login(s, pw)
      const vdi = await newVdi(s, sess, 4 * MiB)
      const raw = join(dir, 'disk.raw')
      const data = Buffer.alloc(4 * MiB)
      randomBytes(100_000).copy(data, 1000)
      writeFileSync(raw, data)
      const vhd = join(dir, 'disk.vhd')
      execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'force_size=on', raw, vhd])
      const task = await call(s.url, 'task.create', sess, 'unknown length', '')
      const u = new URL(`${s.url}/import_raw_vdi?session_id=${sess}&task_id=${task}&vdi=${vdi}&format=vhd`)
      await new Promise<void>((resolve) => {
        const req = request(u, { method: 'PUT', headers: { 'content-length': '1125899906842624' } })
        req.on('error', () => resolve())
        req.write(readFileSync(vhd), () => setTimeout(() => (req.destroy(), resolve()), 100))
      })
      let status = 'pending'
      for (const deadline = Date.now() + 30_000; status === 'pending';) {
        assert.ok(Date.now() < deadline, `task ${task} still pending 30 s after the connection was cut`)
        await new Promise((r) => setTimeout(r, 20))
        status = await call(s.url, 'task.get_status', sess, task)
      }
      assert.equal(status, 'failure')
      assert.deepEqual(await call(s.url, 'task.get_error_info', sess, task), ['VDI_IO_ERROR', 'Device I/O errors'])
      const back = await fetch(`${s.url}/export_raw_vdi?session_id=${sess}&vdi=${vdi}&format=raw`)
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(data), 'the data that came is imported')
    } finally {
      await s.close()
    }
  })
})

test('faults: rules set at run time through /_sim/faults reach clients with XAPI error vectors, and are counted', async () => {
  const pw = randomBytes(6).toString('hex')
  const s = await startSimServer({
    password: pw,
    faults: [{ kind: 'HOST_IS_SLAVE', method: 'host.get_all', count: 1 }],
  })
  try {
    const sess = await login(s, pw)
    // Set at start: the first host.get_all answers HOST_IS_SLAVE with the master's address, the next succeeds.
    assert.deepEqual((await rpc(s.url, 'host.get_all', [sess])).error.data, ['127.0.0.1'])
    assert.equal((await call(s.url, 'host.get_all', sess)).length, 2)
    const add = await fetch(`${s.url}/_sim/faults`, {
      method: 'POST',
      body: JSON.stringify([
        { id: 'si', kind: 'SESSION_INVALID', method: 'VM.get_all', every: 2 },
        { id: 'boom', kind: 'http500', method: 'pool.get_all', count: 1 },
        { id: 'rst', kind: 'reset', method: 'SR.get_all', count: 1 },
        { id: 'disk', kind: 'http500', path: '/export_raw_vdi', count: 1 },
      ]),
    })
    assert.deepEqual(await add.json(), { ids: ['si', 'boom', 'rst', 'disk'] })
    assert.ok(Array.isArray(await call(s.url, 'VM.get_all', sess)))
    const j = await rpc(s.url, 'VM.get_all', [sess])
    assert.equal(j.error.message, 'SESSION_INVALID')
    assert.deepEqual(j.error.data, [sess])
    const r500 = await fetch(`${s.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pool.get_all', params: [sess] }),
    })
    assert.equal(r500.status, 500)
    await r500.arrayBuffer()
    await assert.rejects(rpc(s.url, 'SR.get_all', [sess]), /fetch failed/)
    assert.ok(Array.isArray(await call(s.url, 'SR.get_all', sess)), 'count: 1 — the next call goes through')
    const d = await fetch(`${s.url}/export_raw_vdi?session_id=${sess}&vdi=x&format=raw`)
    assert.equal(d.status, 500)
    await d.arrayBuffer()
    // XML-RPC sees the same faults (the transport rules read the method from the body).
    const xml = await fetch(`${s.url}/`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: `<?xml version="1.0"?><methodCall><methodName>VM.get_all</methodName><params><param><value>${sess}</value></param></params></methodCall>`,
    })
    assert.match(await xml.text(), /<value>Success<\/value>/) // 3rd VM.get_all: every 2 → not this one
    const state = (await (await fetch(`${s.url}/_sim/faults`)).json()) as any
    assert.equal(state.totals.SESSION_INVALID, 1)
    assert.equal(state.totals.http500, 2)
    assert.equal(state.totals.reset, 1)
    assert.equal(state.totals.HOST_IS_SLAVE, 1)
    assert.deepEqual(
      state.rules.find((r: any) => r.id === 'si'),
      { id: 'si', kind: 'SESSION_INVALID', method: 'VM.get_all', every: 2, matched: 3, injected: 1 },
    )
    // Bad rules are refused with the field named; rules can be removed.
    const bad = await fetch(`${s.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ kind: 'meteor' }) })
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as any).error, /rule\.kind: expected one of SESSION_INVALID/)
    assert.equal((await fetch(`${s.url}/_sim/faults`, { method: 'DELETE' })).status, 200)
    assert.ok(Array.isArray(await call(s.url, 'VM.get_all', sess)))
    // A global SESSION_INVALID rule never hits logins (they take no session).
    await fetch(`${s.url}/_sim/faults`, { method: 'POST', body: JSON.stringify({ kind: 'SESSION_INVALID' }) })
    assert.match(await login(s, pw), /^OpaqueRef:/)
    assert.equal((await rpc(s.url, 'VM.get_all', [sess])).error.message, 'SESSION_INVALID')
    await fetch(`${s.url}/_sim/faults`, { method: 'DELETE' })
    // Test hook: expire a session.
    const ex = await fetch(`${s.url}/_sim/sessions/expire`, { method: 'POST', body: JSON.stringify({ session: sess }) })
    assert.deepEqual(await ex.json(), { expired: 1 })
    assert.equal((await rpc(s.url, 'VM.get_all', [sess])).error.message, 'SESSION_INVALID')
  } finally {
    await s.close()
  }
})

test('a scenario builds its pool: versions, hosts on their addresses, VMs, patches and plugins', async () => {
  await withTempDir('xsim-scn-', async (dir) => {
    const scenario = parseScenario(
      `
name: old-pool
seed: 7
pools:
  - name: xs65
    version: 6.5.0
    hosts:
      - { name: dom0-a, address: 127.0.0.1 }
      - { name: dom0-b, address: 127.0.0.2 }
    vms:
      - { name: web, host: dom0-b, power_state: Running, memory: 2GiB, disks: [8GiB] }
    patches:
      - { name: XS65ESP1013, applied: [dom0-a] }
    plugins:
      - name: hello.sh
        source: |
          #!/bin/sh
          printf '<?xml version="1.0"?><methodResponse><params><param><value>hello</value></param></params></methodResponse>'
`,
      'old-pool.yaml',
    )
    const pw = 'scenario-pw'
    const s = await startSimServer({ scenario, password: pw, state: dir })
    try {
      const sess = await login(s, pw)
      const hosts = (await call(s.url, 'host.get_all_records', sess)) as Record<string, any>
      const byName = Object.fromEntries(Object.entries(hosts).map(([ref, h]) => [h.name_label, { ref, ...h }]))
      assert.deepEqual(Object.keys(byName).sort(), ['dom0-a', 'dom0-b'])
      assert.equal(byName['dom0-b'].address, '127.0.0.2')
      assert.equal(byName['dom0-a'].software_version.product_version, '6.5.0')
      assert.equal(byName['dom0-a'].software_version.platform_version, '1.9.0')
      const vms = Object.values((await call(s.url, 'VM.get_all_records', sess)) as Record<string, any>)
      const web = vms.find((v) => v.name_label === 'web')
      assert.equal(web.power_state, 'Running')
      assert.equal(web.resident_on, byName['dom0-b'].ref)
      for (const h of ['dom0-a', 'dom0-b'])
        assert.equal(vms.find((v) => v.name_label === `compute-${h}`)?.resident_on, byName[h].ref, `compute VM on ${h}`)
      const patches = Object.values((await call(s.url, 'pool_patch.get_all_records', sess)) as Record<string, any>)
      assert.ok(patches.some((p) => p.name_label === 'XS65ESP1013'))
      // The scenario's plugin is installed in each host's default plugins directory and runs.
      const pdir = join(dir, 'hosts', 'dom0-b', 'etc', 'xapi.d', 'plugins')
      assert.ok(statSync(join(pdir, 'hello.sh')).mode & 0o100)
      assert.equal(await call(s.url, 'host.call_plugin', sess, byName['dom0-b'].ref, 'hello.sh', 'any', {}), 'hello')
      // VM.call_plugin: runs on the VM's host while it is Running; refused on a halted VM.
      const webRef = Object.entries((await call(s.url, 'VM.get_all_records', sess)) as Record<string, any>).find(
        ([, v]) => v.name_label === 'web',
      )![0]
      assert.equal(await call(s.url, 'VM.call_plugin', sess, webRef, 'hello.sh', 'any', {}), 'hello')
      await call(s.url, 'VM.hard_shutdown', sess, webRef)
      const halted = await rpc(s.url, 'VM.call_plugin', [sess, webRef, 'hello.sh', 'any', {}])
      assert.equal(halted.error.message, 'VM_BAD_POWER_STATE')
      // The lab re-points a host at its dom0's own plugins directory at run time.
      s.pools[0].setPluginsDir('dom0-b', join(dir, 'elsewhere'))
      const moved = await rpc(s.url, 'host.call_plugin', [sess, byName['dom0-b'].ref, 'hello.sh', 'any', {}])
      assert.deepEqual([moved.error.message, ...moved.error.data], ['XENAPI_MISSING_PLUGIN', 'hello.sh'])
    } finally {
      await s.close()
    }
  })
})

test('state: the pool survives a restart; the password is stored only as a hash', async () => {
  await withTempDir('xsim-state-', async (dir) => {
    const pw = 'first-' + randomBytes(4).toString('hex')
    let s = await startSimServer({ state: dir, password: pw, hosts: 2, vms: 3 })
    const sess = await login(s, pw)
    const net = await call(s.url, 'network.create', sess, {
      name_label: 'kept',
      name_description: '',
      MTU: 9000,
      other_config: {},
    })
    const vdi = await newVdi(s, sess, MiB)
    const data = randomBytes(MiB)
    const r = await fetch(`${s.url}/import_raw_vdi?session_id=${sess}&vdi=${vdi}&format=raw`, {
      method: 'PUT',
      body: data,
    })
    await r.arrayBuffer()
    const vmCount = (await call(s.url, 'VM.get_all', sess)).length
    await s.close()
    const text = readFileSync(join(dir, 'state.json'), 'utf8')
    assert.equal(text.includes(pw), false, 'no plain-text password in the state file')
    assert.equal((statSync(join(dir, 'state.json')).mode & 0o777).toString(8), '600')

    // Restart without --password: the old one still works (checked against the stored hash), all else is kept.
    s = await startSimServer({ state: dir })
    try {
      assert.equal(s.password, undefined)
      const sess2 = await login(s, pw)
      assert.equal(await call(s.url, 'network.get_MTU', sess2, net), 9000)
      assert.equal((await call(s.url, 'VM.get_all', sess2)).length, vmCount)
      const back = await fetch(`${s.url}/export_raw_vdi?session_id=${sess2}&vdi=${vdi}&format=raw`)
      assert.ok(Buffer.from(await back.arrayBuffer()).equals(data))
      const bad = await rpc(s.url, 'session.login_with_password', ['root', 'wrong'])
      assert.equal(bad.error.message, 'SESSION_AUTHENTICATION_FAILED')
      // Sessions do not survive a restart, as on a toolstack restart.
      assert.equal((await rpc(s.url, 'VM.get_all', [sess])).error.message, 'SESSION_INVALID')
    } finally {
      await s.close()
    }
  })
})
