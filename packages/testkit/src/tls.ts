/**
 * TLS for tests: a self-signed certificate made with the openssl CLI (as a XenServer host has one out of the box), and
 * a TLS terminator that puts it in front of a plain TCP server (stunnel-like: XAPI's own port 443 is TLS the same
 * way), so a client's verification, pinning and `insecure` paths run against real TLS.
 *
 * A test that uses them asks for openssl first: `requirePrerequisite(t, 'openssl', () => hasExecutable('openssl'))`.
 */
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createTlsServer } from 'node:tls'

export interface SelfSignedCert {
  /** PEM text. */
  key: string
  cert: string
  /** The PEM files (in a directory of their own), for what takes a path (`--ca FILE`). */
  keyFile: string
  certFile: string
  /** SHA-256 fingerprint as `AA:BB:…`. */
  fingerprint: string
  /** Removes the files. */
  dispose(): void
}

/** A self-signed EC certificate for the IP address `ip` (its CN and subjectAltName), valid two days. */
export function makeSelfSignedCert(ip = '127.0.0.1'): SelfSignedCert {
  const dir = mkdtempSync(join(tmpdir(), 'xenstack-tls-'))
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'].concat([
        '-subj',
        `/CN=${ip}`,
        '-addext',
        `subjectAltName=IP:${ip}`,
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ]),
      { stdio: 'ignore' },
    )
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    throw e
  }
  const cert = readFileSync(certFile, 'utf8')
  return {
    key: readFileSync(keyFile, 'utf8'),
    cert,
    keyFile,
    certFile,
    fingerprint: new X509Certificate(cert).fingerprint256,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export interface TlsTerminator {
  /** `https://127.0.0.1:<port>`. */
  url: string
  port: number
  /** Stops listening; resolves once the server is closed. */
  close(): Promise<void>
}

/**
 * TLS with `cert` on an ephemeral port of 127.0.0.1; each connection is piped as plain TCP to 127.0.0.1:`upstreamPort`.
 */
export async function startTlsTerminator(
  cert: { key: string; cert: string },
  upstreamPort: number,
): Promise<TlsTerminator> {
  const server = createTlsServer({ key: cert.key, cert: cert.cert }, (client) => {
    const upstream = netConnect(upstreamPort, '127.0.0.1')
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
