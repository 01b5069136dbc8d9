import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileKnownHostsStore, fingerprint, keyTypeOf, parseKnownHosts } from '../../src/node/index.js'

/** An ssh-ed25519 public key blob (string "ssh-ed25519" + 32-byte key), from a real key pair. */
function ed25519Blob(): Buffer {
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const type = Buffer.from('ssh-ed25519')
  const len = (n: number): Buffer => {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(n)
    return b
  }
  return Buffer.concat([len(type.length), type, len(raw.length), raw])
}

test('known_hosts: plain, [host]:port, comma lists, wildcards, negation and hashed names', () => {
  const a = ed25519Blob()
  const b = ed25519Blob()
  const salt = Buffer.from('0123456789abcdefghij')
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.7]:2222').digest('base64')}`
  const text = [
    '# comment',
    `10.0.0.5,dom0.example ssh-ed25519 ${a.toString('base64')} a comment`,
    `[10.0.0.5]:2222 ssh-ed25519 ${b.toString('base64')}`,
    `*.lab,!bad.lab ssh-ed25519 ${b.toString('base64')}`,
    `${hashed} ssh-ed25519 ${a.toString('base64')}`,
    `@cert-authority *.example ssh-ed25519 ${b.toString('base64')}`,
  ].join('\n')
  assert.ok(parseKnownHosts(text, '10.0.0.5', 22)[0].blob.equals(a))
  assert.ok(parseKnownHosts(text, 'dom0.example', 22)[0].blob.equals(a))
  assert.ok(parseKnownHosts(text, '10.0.0.5', 2222)[0].blob.equals(b))
  assert.equal(parseKnownHosts(text, 'x.lab', 22).length, 1)
  assert.equal(parseKnownHosts(text, 'bad.lab', 22).length, 0)
  assert.ok(parseKnownHosts(text, '10.0.0.7', 2222)[0].blob.equals(a))
  assert.equal(parseKnownHosts(text, 'host.example', 22).length, 0, '@cert-authority lines are not pins')
  assert.equal(keyTypeOf(a), 'ssh-ed25519')
  assert.match(fingerprint(a), /^SHA256:[A-Za-z0-9+/]{43}$/)
})

test('file known-hosts store pins in OpenSSH format (optionally hashed) and reads them back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-kh-'))
  try {
    const key = { type: 'ssh-ed25519', blob: ed25519Blob() }
    const plain = new FileKnownHostsStore(join(dir, 'plain', 'known_hosts'))
    assert.deepEqual(await plain.lookup('10.1.1.1', 22), [])
    await plain.pin('10.1.1.1', 22, key)
    await plain.pin('10.1.1.1', 2200, key)
    assert.equal(
      readFileSync(join(dir, 'plain', 'known_hosts'), 'utf8'),
      `10.1.1.1 ssh-ed25519 ${key.blob.toString('base64')}\n[10.1.1.1]:2200 ssh-ed25519 ${key.blob.toString('base64')}\n`,
    )
    assert.ok(
      (await new FileKnownHostsStore(join(dir, 'plain', 'known_hosts')).lookup('10.1.1.1', 2200))[0].blob.equals(
        key.blob,
      ),
    )
    const hashed = new FileKnownHostsStore(join(dir, 'hashed'), { hashHostNames: true })
    await hashed.pin('dom0', 22, key)
    assert.ok(!readFileSync(join(dir, 'hashed'), 'utf8').includes('dom0'))
    assert.equal((await hashed.lookup('dom0', 22)).length, 1)
    assert.equal((await hashed.lookup('dom1', 22)).length, 0)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
