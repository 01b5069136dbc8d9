import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { withLab } from '../../src/lab/index.js'
import {
  AuthorizedKey,
  CommandError,
  CommandTimeoutError,
  FileKnownHostsStore,
  HostKeyMismatchError,
  LocalExecutor,
  MemoryKnownHostsStore,
  Secret,
  SshExecutor,
  UnknownHostKeyError,
  apply,
  fingerprint,
  parseKnownHosts,
  type Executor,
} from '../../src/node/index.js'
import { labPrerequisite, onHost, sshTo } from './helpers.js'

/** The executor contract, run against any executor whose host has a writable /root. */
async function contract(exec: Executor, dir: string): Promise<void> {
  // argv with awkward characters is passed through untouched
  const odd = `a b'c"d$e\\f`
  assert.equal((await exec.run(['printf', '%s', odd])).stdout, odd)
  // shell string, stdin, env and cwd
  assert.equal((await exec.run('cat | tr a-z A-Z', { stdin: 'hello' })).stdout, 'HELLO')
  assert.equal((await exec.run('echo "$FOO $BAR"', { env: { FOO: 'x y', BAR: 'z' } })).stdout, 'x y z\n')
  assert.equal((await exec.run(['pwd'], { cwd: '/tmp' })).stdout, '/tmp\n')
  // exit codes
  const r = await exec.run('echo out; echo err >&2; exit 3', { allowedExitCodes: [3] })
  assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: 'err\n' })
  await assert.rejects(
    exec.run(['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i >&2; done; exit 4']),
    (e: unknown) => {
      assert.ok(e instanceof CommandError)
      assert.equal(e.code, 4)
      assert.equal(e.host, exec.host)
      assert.match(e.message, new RegExp(`^${exec.host}: command failed with exit code 4: sh -c`))
      assert.match(e.stderrTail, /line12$/)
      assert.doesNotMatch(e.stderrTail, /line1\n/, 'only the last lines of stderr')
      return true
    },
  )
  // secrets on the command line and echoed back are redacted in the error, but the command got the real value
  const pw = new Secret(`pw-${randomBytes(6).toString('hex')}`)
  assert.equal((await exec.run(['printf', '%s', pw])).stdout, pw.reveal())
  await assert.rejects(exec.run(['sh', '-c', 'echo "bad password $0" >&2; exit 1', pw]), (e: unknown) => {
    assert.ok(e instanceof CommandError)
    assert.ok(!e.message.includes(pw.reveal()), e.message)
    assert.match(e.message, /\*\*\*/)
    return true
  })
  // timeouts kill the command
  await assert.rejects(exec.run(['sleep', '30'], { timeoutMs: 300 }), CommandTimeoutError)
  // put/get: binary data, modes, streams, atomic replace
  const bin = randomBytes(200_000)
  await exec.put(`${dir}/bin`, bin, { mode: 0o600 })
  assert.ok((await exec.get(`${dir}/bin`)).equals(bin))
  assert.equal((await exec.run(['stat', '-c', '%a', `${dir}/bin`])).stdout.trim(), '600')
  await exec.put(`${dir}/bin`, Readable.from([Buffer.from('streamed '), Buffer.from('data')]))
  assert.equal((await exec.get(`${dir}/bin`)).toString(), 'streamed data')
  assert.equal((await exec.run(['stat', '-c', '%a', `${dir}/bin`])).stdout.trim(), '644')
  assert.equal(
    (await exec.run(`ls -a ${dir} | grep -c xenstack || true`)).stdout.trim(),
    '0',
    'no temporary files left',
  )
  await assert.rejects(
    exec.get(`${dir}/missing`),
    (e: unknown) => e instanceof CommandError && /No such file/.test(e.stderrTail),
  )
}

test('local executor fulfils the executor contract', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-node-'))
  try {
    await contract(new LocalExecutor(), dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('ssh executor: contract on a real sshd, one reused connection, host keys pinned and verified', async (t) => {
  if (!(await labPrerequisite(t))) return
  await withLab({ hosts: 1, controllers: 0, storageNode: false, httpProbePort: false }, async (lab) => {
    const exec = sshTo(lab, 'compute-1')
    try {
      await onHost(lab, 'compute-1', 'mkdir -p /root/xenstack-exec')
      await contract(exec, '/root/xenstack-exec')
      // a session shell killed outright leaves its temp dir; the next session removes it
      const shellPid = (await exec.run('echo $PPID')).stdout.trim()
      const dirOf = `ls -d /tmp/.xenstack-sh-${shellPid}-* 2>/dev/null || true`
      assert.match(await onHost(lab, 'compute-1', dirOf), /xenstack-sh-/)
      await onHost(lab, 'compute-1', `kill -KILL ${shellPid}`)
      // wait until the killed shell is gone or a zombie (sshd reaps it on its own schedule)
      await onHost(
        lab,
        'compute-1',
        `i=0; while kill -0 ${shellPid} 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' /proc/${shellPid}/status; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.05; done`,
      )
      const next = sshTo(lab, 'compute-1')
      await next.run(['true'])
      await next.close()
      assert.equal(await onHost(lab, 'compute-1', dirOf), '')
      // a secret passed on stdin reaches the command and is left nowhere in the shell sessions' temp dirs
      const token = new Secret(`stdin-secret-${randomBytes(6).toString('hex')}`)
      assert.equal((await exec.run(['cat'], { stdin: token })).stdout, token.reveal())
      const left = await lab.exec('compute-1', [
        'sh',
        '-c',
        `grep -rl ${token.reveal()} /tmp/.xenstack-sh-* 2>/dev/null; true`,
      ])
      assert.equal(left.stdout, '')
      // the same contract with one exec channel per command (no persistent shell)
      const plain = sshTo(lab, 'compute-1', { persistentShell: false })
      try {
        await contract(plain, '/root/xenstack-exec')
      } finally {
        await plain.close()
      }
      // the file landed in compute-1's own /root (its overlay), not on the machine
      await exec.put('/root/xenstack-exec/where', 'here')
      assert.equal(readFileSync(lab.backingPath('compute-1', '/root/xenstack-exec/where'), 'utf8'), 'here')

      // 24 concurrent commands share one SSH connection
      const outs = await Promise.all(Array.from({ length: 24 }, (_, i) => exec.run(['echo', String(i)])))
      assert.deepEqual(
        outs.map((o) => o.stdout.trim()),
        Array.from({ length: 24 }, (_, i) => String(i)),
      )
      const conns = await onHost(lab, 'compute-1', "ss -Htn state established '( sport = :22 )' | wc -l")
      assert.equal(conns.trim(), '1', 'one TCP connection to sshd')

      // the connection is cut (its sshd processes killed): the next command reconnects
      await onHost(
        lab,
        'compute-1',
        "L=$(ss -Htlnp 'sport = :22' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); pkill -KILL -P $L; sleep 0.3",
      )
      let after = ''
      for (let i = 0; i < 3 && after === ''; i++) {
        after = await exec.run(['echo', 'again']).then(
          (r) => r.stdout,
          () => '', // a command caught by the cut may fail once; it must not hang
        )
      }
      assert.equal(after, 'again\n')
    } finally {
      await exec.close()
    }

    // password authentication against a real sshd (dom0-1 configured for it here; the password is only in its
    // own /etc/shadow overlay); a wrong password fails without showing either password
    {
      const d = lab.host('dom0-1')
      const password = new Secret(`Dom0-pw-${randomBytes(6).toString('hex')}`)
      const wrong = new Secret(`Wrong-pw-${randomBytes(6).toString('hex')}`)
      const cfg = join(lab.hostDir('dom0-1'), 'ssh', 'sshd_config')
      writeFileSync(
        cfg,
        readFileSync(cfg, 'utf8')
          .replace('PermitRootLogin prohibit-password', 'PermitRootLogin yes')
          .replace('PasswordAuthentication no', 'PasswordAuthentication yes'),
      )
      await lab.execOk('dom0-1', ['chpasswd'], { stdin: `root:${password.reveal()}\n` })
      await onHost(lab, 'dom0-1', "kill -HUP $(ss -Htlnp 'sport = :22' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)")
      const byPassword = (pw: Secret): SshExecutor =>
        new SshExecutor({
          host: d.ssh.host,
          port: d.ssh.port,
          password: pw,
          knownHosts: new FileKnownHostsStore(d.ssh.knownHostsFile),
          name: 'dom0-1',
        })
      // sshd rereads its configuration after the HUP: retry until then (a deadline, not a count: slow under load)
      let out = ''
      const deadline = Date.now() + 60_000
      while (out === '') {
        const e = byPassword(password)
        try {
          out = (await e.run(['hostname'])).stdout
        } catch (err) {
          if (!/ECONNREFUSED|ECONNRESET|authentication/i.test((err as Error).message)) throw err
          if (Date.now() > deadline) throw new Error(`dom0-1: password login still refused after 60 s: ${err}`)
          await new Promise((r) => setTimeout(r, 100))
        } finally {
          await e.close()
        }
      }
      assert.equal(out, 'dom0-1\n')
      await assert.rejects(byPassword(wrong).run(['true']), (e: unknown) => {
        const m = (e as Error).message
        assert.match(m, /^dom0-1: cannot connect: All configured authentication methods failed/)
        assert.ok(!m.includes(wrong.reveal()) && !m.includes(password.reveal()))
        return true
      })
    }

    // an encrypted private key with its passphrase (installed with the AuthorizedKey resource); a wrong
    // passphrase is a clear error that shows neither passphrase
    {
      const c = lab.host('compute-1')
      const dir = mkdtempSync(join(tmpdir(), 'xenstack-key-'))
      try {
        const passphrase = new Secret(`key-pass-${randomBytes(6).toString('hex')}`)
        await new LocalExecutor().run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', passphrase, '-f', join(dir, 'id')])
        const pub = readFileSync(join(dir, 'id.pub'), 'utf8')
        const admin = sshTo(lab, 'compute-1')
        const added = await apply(admin, [new AuthorizedKey({ key: pub })])
        await admin.close()
        assert.equal(added.entries[0].status, 'changed')
        const withKey = (p: Secret): SshExecutor =>
          new SshExecutor({
            host: c.ssh.host,
            port: c.ssh.port,
            privateKey: readFileSync(join(dir, 'id')),
            passphrase: p,
            knownHosts: new FileKnownHostsStore(c.ssh.knownHostsFile),
            name: 'compute-1',
          })
        const e = withKey(passphrase)
        assert.equal((await e.run(['hostname'])).stdout, 'compute-1\n')
        await e.close()
        const bad = new Secret(`bad-pass-${randomBytes(6).toString('hex')}`)
        await assert.rejects(withKey(bad).run(['true']), (err: unknown) => {
          const m = (err as Error).message
          assert.match(m, /^compute-1: cannot connect: /)
          assert.ok(!m.includes(bad.reveal()) && !m.includes(passphrase.reveal()), m)
          return true
        })
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }

    const h = lab.host('compute-1')
    const realKey = parseKnownHosts(readFileSync(h.ssh.knownHostsFile, 'utf8'), h.ssh.host, h.ssh.port)[0]
    assert.ok(realKey, 'the lab pinned compute-1 key')

    // unknown host: refused unless trust on first use is asked for explicitly
    const empty = new MemoryKnownHostsStore()
    await assert.rejects(sshTo(lab, 'compute-1', { knownHosts: empty }).run(['true']), (e: unknown) => {
      assert.ok(e instanceof UnknownHostKeyError)
      assert.match(e.message, new RegExp(fingerprint(realKey.blob).replace(/[+/]/g, '\\$&')))
      return true
    })
    assert.equal((await empty.lookup(h.ssh.host, h.ssh.port)).length, 0, 'nothing pinned on refusal')
    const warnings: string[] = []
    const tofu = sshTo(lab, 'compute-1', { knownHosts: empty, trustOnFirstUse: true, log: (m) => warnings.push(m) })
    await tofu.run(['true'])
    await tofu.close()
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /trusting on first use/)
    const pinned = await empty.lookup(h.ssh.host, h.ssh.port)
    assert.equal(pinned.length, 1)
    assert.ok(pinned[0].blob.equals(realKey.blob), 'the key pinned is the host key')

    // a file store: pinned on first use in known_hosts format, read back by a new store
    const dir = mkdtempSync(join(tmpdir(), 'xenstack-kh-'))
    try {
      const file = join(dir, 'known_hosts')
      const first = sshTo(lab, 'compute-1', { knownHosts: new FileKnownHostsStore(file), trustOnFirstUse: true })
      await first.run(['true'])
      await first.close()
      assert.match(readFileSync(file, 'utf8'), new RegExp(`^${h.ssh.host.replace(/\./g, '\\.')} ssh-ed25519 `))

      // a changed host key is refused, naming the host and both fingerprints, even with trust on first use
      const dom0Key = parseKnownHosts(readFileSync(h.ssh.knownHostsFile, 'utf8'), lab.host('dom0-1').ssh.host, 22)[0]
      writeFileSync(file, `${h.ssh.host} ${dom0Key.type} ${dom0Key.blob.toString('base64')}\n`)
      const changed = sshTo(lab, 'compute-1', { knownHosts: new FileKnownHostsStore(file), trustOnFirstUse: true })
      await assert.rejects(changed.run(['true']), (e: unknown) => {
        assert.ok(e instanceof HostKeyMismatchError)
        assert.match(e.message, /compute-1: HOST KEY CHANGED/)
        assert.ok(e.message.includes(fingerprint(dom0Key.blob)), 'names the pinned fingerprint')
        assert.ok(e.message.includes(fingerprint(realKey.blob)), 'names the presented fingerprint')
        return true
      })
      assert.equal(readFileSync(file, 'utf8').split('\n').filter(Boolean).length, 1, 'the pin was not replaced')

      // the host really changes its key (new key, sshd reloaded): the lab's pin now refuses it
      const keyFile = join(lab.hostDir('compute-1'), 'ssh', 'ssh_host_ed25519_key')
      await onHost(lab, 'compute-1', `rm -f ${keyFile} ${keyFile}.pub && ssh-keygen -q -t ed25519 -N '' -f ${keyFile}`)
      const newPub = readFileSync(`${keyFile}.pub`, 'utf8').split(' ')[1]
      // only this host's sshd: the one listening on port 22 in its network namespace
      await onHost(
        lab,
        'compute-1',
        "kill -HUP $(ss -Htlnp 'sport = :22' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)",
      )
      const local = new LocalExecutor()
      const keyDeadline = Date.now() + 60_000
      for (;;) {
        assert.ok(Date.now() < keyDeadline, 'compute-1: sshd did not offer its new host key within 60 s')
        const scan = await local.run(
          ['ssh-keyscan', '-T', '2', '-t', 'ed25519', '-p', String(h.ssh.port), h.ssh.host],
          {
            allowedExitCodes: [0, 1],
          },
        )
        if (scan.stdout.includes(newPub)) break
        await new Promise((r) => setTimeout(r, 100))
      }
      await assert.rejects(sshTo(lab, 'compute-1').run(['true']), HostKeyMismatchError)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
