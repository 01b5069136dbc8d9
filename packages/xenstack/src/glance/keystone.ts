/**
 * Keystone v3 password authentication (what keystoneauth1's `password` loader does for the original plugin):
 * POST <auth_url>/auth/tokens with a project-scoped password identity, the token from the X-Subject-Token header,
 * and an endpoint looked up in the token's service catalog by service type, interface and region.
 *
 * The token is held as a `Secret` (prints as ***) and is renewed a minute before it expires; the password never
 * leaves the request body.
 */
import { Secret } from '../node/secret.js'
import { httpCall, parseJson, type TlsOptions } from './http.js'

export interface KeystoneCredentials {
  /** Identity endpoint, e.g. http://192.168.0.2:5000/v3 (a URL without /v3 gets it appended). */
  authUrl: string
  username: string
  password: Secret
  projectName: string
  userDomainName?: string
  projectDomainName?: string
}

export interface CatalogEndpoint {
  id?: string
  interface: string
  region?: string
  region_id?: string
  url: string
}

export interface CatalogEntry {
  type: string
  name?: string
  endpoints: CatalogEndpoint[]
}

export interface KeystoneToken {
  value: Secret
  expiresAt?: Date
  catalog: CatalogEntry[]
}

export type EndpointInterface = 'public' | 'internal' | 'admin'

/** The v3 tokens URL of an auth URL given with or without its version. */
export function tokensUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, '')
  if (/\/v3$/.test(base)) return `${base}/auth/tokens`
  if (/\/v2\.0$/.test(base))
    throw new Error(`auth URL ${authUrl} is Keystone v2.0; xenstack speaks Keystone v3 (use the /v3 URL)`)
  return `${base}/v3/auth/tokens`
}

export async function authenticate(
  creds: KeystoneCredentials,
  tls: TlsOptions = {},
  timeoutMs = 30_000,
): Promise<KeystoneToken> {
  const url = tokensUrl(creds.authUrl)
  const res = await httpCall(
    {
      method: 'POST',
      url,
      timeoutMs,
      json: {
        auth: {
          identity: {
            methods: ['password'],
            password: {
              user: {
                name: creds.username,
                domain: { name: creds.userDomainName ?? 'Default' },
                password: creds.password.reveal(),
              },
            },
          },
          scope: { project: { name: creds.projectName, domain: { name: creds.projectDomainName ?? 'Default' } } },
        },
      },
    },
    tls,
  ).catch((e: Error) => {
    // the request body holds the password: make sure no layer echoed it back
    throw new Error(
      `Keystone authentication of user ${creds.username} at ${url} failed: ${e.message.split(creds.password.reveal()).join('***')}`,
    )
  })
  const raw = res.headers['x-subject-token']
  const token = Array.isArray(raw) ? raw[0] : raw
  if (!token) throw new Error(`Keystone at ${url} answered ${res.status} without an X-Subject-Token header`)
  const body = parseJson<{ token?: { expires_at?: string; catalog?: CatalogEntry[] } }>(res, `POST ${url}`)
  return {
    value: new Secret(token),
    expiresAt: body.token?.expires_at ? new Date(body.token.expires_at) : undefined,
    catalog: body.token?.catalog ?? [],
  }
}

/** The URL of a service in the catalog; the error lists what the catalog has instead. */
export function endpointFromCatalog(
  catalog: CatalogEntry[],
  type: string,
  iface: EndpointInterface = 'public',
  region?: string,
): string {
  const services = catalog.filter((s) => s.type === type)
  const endpoints = services.flatMap((s) => s.endpoints)
  const found = endpoints.find(
    (e) => e.interface === iface && (region === undefined || e.region_id === region || e.region === region),
  )
  if (found) return found.url
  const have = catalog.map(
    (s) => `${s.type}(${s.endpoints.map((e) => `${e.interface}@${e.region_id ?? e.region ?? '-'}`).join(',')})`,
  )
  throw new Error(
    `the Keystone catalog has no ${iface} "${type}" endpoint${region ? ` in region ${region}` : ''} (catalog: ${have.join(' ') || 'empty'})`,
  )
}

/** A token that renews itself a minute before it expires (or after a 401, through `invalidate`). */
export class KeystoneSession {
  #token?: Promise<KeystoneToken>

  constructor(
    readonly creds: KeystoneCredentials,
    readonly tls: TlsOptions = {},
  ) {}

  async token(): Promise<KeystoneToken> {
    if (this.#token) {
      const t = await this.#token.catch(() => undefined)
      if (t && (!t.expiresAt || t.expiresAt.getTime() - Date.now() > 60_000)) return t
    }
    const p = authenticate(this.creds, this.tls)
    this.#token = p
    p.catch(() => {
      if (this.#token === p) this.#token = undefined
    })
    return p
  }

  invalidate(): void {
    this.#token = undefined
  }
}
