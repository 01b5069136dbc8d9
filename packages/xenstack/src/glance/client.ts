/**
 * A Glance v2 images API client: list (filters, pagination through `next`), get, create, upload (streamed, with
 * the md5 `checksum` and the `os_hash_value` computed while sending, the way Glance computes them, and compared
 * with Glance's own afterwards), download, update (JSON patch), delete.
 *
 * Endpoint: given directly (`endpoint`, e.g. http://192.168.0.2:9292), or found in the Keystone v3 catalog
 * (service type `image`) when `keystone` credentials are given; then every request carries the token
 * (X-Auth-Token) and a 401 re-authenticates once. TLS is verified unless `tls.insecure`.
 */
import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Readable, Transform, type TransformCallback } from 'node:stream'
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { httpCall, httpStream, OpenStackHttpError, parseJson, type HttpRequest, type TlsOptions } from './http.js'
import { endpointFromCatalog, KeystoneSession, type EndpointInterface, type KeystoneCredentials } from './keystone.js'

/** Glance's image record (core attributes; custom properties such as vm_mode are extra string keys). */
export interface GlanceImage {
  id: string
  name: string | null
  status: string
  visibility: string
  container_format: string | null
  disk_format: string | null
  size: number | null
  virtual_size?: number | null
  checksum: string | null
  os_hash_algo: string | null
  os_hash_value: string | null
  protected?: boolean
  owner?: string | null
  tags?: string[]
  created_at?: string
  updated_at?: string
  [property: string]: unknown
}

/** Attributes and custom properties of a new image. */
export interface CreateImage {
  name: string
  container_format?: string
  disk_format?: string
  visibility?: 'public' | 'private' | 'shared' | 'community'
  id?: string
  min_disk?: number
  min_ram?: number
  protected?: boolean
  tags?: string[]
  /** Custom properties (Glance stores them as strings). */
  [property: string]: unknown
}

export interface ListFilters {
  name?: string
  status?: string
  visibility?: string
  owner?: string
  container_format?: string
  disk_format?: string
  /** Any other filter Glance accepts (a property such as vm_mode, `tag`, `sort`). */
  [filter: string]: string | undefined
}

export interface UploadResult {
  size: number
  checksum: string
  osHashAlgo: string
  osHashValue: string
  image: GlanceImage
}

export interface GlanceClientOptions {
  /** Direct endpoint (no Keystone). */
  endpoint?: string
  /** Keystone v3 password credentials: the endpoint comes from the catalog. */
  keystone?: KeystoneCredentials
  /** Catalog interface (default public) and region. */
  interface?: EndpointInterface
  region?: string
  tls?: TlsOptions
  /** Per-request timeout for API calls (default 60 s); uploads and downloads have none. */
  timeoutMs?: number
}

/** Glance's default hashing algorithm (os_hash_algo), and the only one this client computes. */
export const GLANCE_HASH_ALGO = 'sha512'

/** Passes bytes through while hashing them with md5 (Glance's `checksum`) and sha512 (its `os_hash_value`). */
export class ImageHasher extends Transform {
  readonly #md5: Hash = createHash('md5')
  readonly #sha: Hash = createHash(GLANCE_HASH_ALGO)
  bytes = 0
  constructor(private readonly onProgress?: (bytes: number) => void) {
    super()
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#md5.update(chunk)
    this.#sha.update(chunk)
    this.bytes += chunk.length
    this.onProgress?.(this.bytes)
    cb(null, chunk)
  }
  digests(): { checksum: string; osHashValue: string } {
    return { checksum: this.#md5.copy().digest('hex'), osHashValue: this.#sha.copy().digest('hex') }
  }
}

/** md5 and sha512 of a file, as Glance would compute them on upload. */
export async function imageDigests(path: string): Promise<{ size: number; checksum: string; osHashValue: string }> {
  const h = new ImageHasher()
  for await (const _ of createReadStream(path).pipe(h)) void _
  return { size: h.bytes, ...h.digests() }
}

export class GlanceClient {
  readonly #opts: GlanceClientOptions
  readonly #session?: KeystoneSession
  #endpoint?: string

  constructor(opts: GlanceClientOptions) {
    if (!opts.endpoint && !opts.keystone)
      throw new Error('Glance client: give an endpoint URL or Keystone credentials (auth URL, user, password, project)')
    this.#opts = opts
    if (opts.keystone) this.#session = new KeystoneSession(opts.keystone, opts.tls)
    if (opts.endpoint) this.#endpoint = opts.endpoint.replace(/\/+$/, '')
  }

  /** The image API's base URL (without /v2): the direct one, or the catalog's. */
  async endpoint(): Promise<string> {
    if (this.#endpoint) return this.#endpoint
    const token = await this.#session!.token()
    const url = endpointFromCatalog(token.catalog, 'image', this.#opts.interface ?? 'public', this.#opts.region)
    // a catalog entry may carry the version (…/v2): the client adds it itself
    this.#endpoint = url.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '')
    return this.#endpoint
  }

  async #headers(extra: OutgoingHttpHeaders = {}): Promise<OutgoingHttpHeaders> {
    if (!this.#session) return extra
    const token = await this.#session.token()
    return { ...extra, 'x-auth-token': token.value.reveal() }
  }

  /** An API call with the token; one retry with a fresh token after a 401 (expired or revoked). */
  async #call(
    req: Omit<HttpRequest, 'url'> & { path: string },
  ): Promise<{ status: number; text: string; headers: IncomingMessage['headers'] }> {
    const base = await this.endpoint()
    for (let attempt = 0; ; attempt++) {
      try {
        return await httpCall(
          {
            ...req,
            url: base + req.path,
            timeoutMs: req.timeoutMs ?? this.#opts.timeoutMs,
            headers: await this.#headers(req.headers),
          },
          this.#opts.tls,
        )
      } catch (e) {
        if (e instanceof OpenStackHttpError && e.status === 401 && this.#session && attempt === 0) {
          this.#session.invalidate()
          continue
        }
        throw e
      }
    }
  }

  /** One page of images. `next` is the path of the following page, when there is one. */
  async listPage(
    filters: ListFilters = {},
    page: { limit?: number; marker?: string } = {},
  ): Promise<{ images: GlanceImage[]; next?: string }> {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries(filters)) if (v !== undefined) q.set(k, v)
    if (page.limit !== undefined) q.set('limit', String(page.limit))
    if (page.marker) q.set('marker', page.marker)
    const qs = q.toString()
    return this.#page(`/v2/images${qs ? `?${qs}` : ''}`)
  }

  async #page(path: string): Promise<{ images: GlanceImage[]; next?: string }> {
    const res = await this.#call({ method: 'GET', path })
    const body = parseJson<{ images: GlanceImage[]; next?: string }>(res, `GET ${path}`)
    return { images: body.images ?? [], next: body.next }
  }

  /** Every image matching the filters, following Glance's `next` links (`pageSize` per request). */
  async *images(filters: ListFilters = {}, pageSize = 100): AsyncGenerator<GlanceImage> {
    let page = await this.listPage(filters, { limit: pageSize })
    for (;;) {
      yield* page.images
      if (!page.next || page.images.length === 0) return
      page = await this.#page(page.next)
    }
  }

  async listImages(filters: ListFilters = {}, pageSize = 100): Promise<GlanceImage[]> {
    const out: GlanceImage[] = []
    for await (const i of this.images(filters, pageSize)) out.push(i)
    return out
  }

  async getImage(id: string): Promise<GlanceImage> {
    const res = await this.#call({ method: 'GET', path: `/v2/images/${encodeURIComponent(id)}` })
    return parseJson<GlanceImage>(res, `GET /v2/images/${id}`)
  }

  /** The image, or undefined when Glance answers 404. */
  async findImage(id: string): Promise<GlanceImage | undefined> {
    try {
      return await this.getImage(id)
    } catch (e) {
      if (e instanceof OpenStackHttpError && e.status === 404) return undefined
      throw e
    }
  }

  async createImage(image: CreateImage): Promise<GlanceImage> {
    const res = await this.#call({ method: 'POST', path: '/v2/images', json: image })
    return parseJson<GlanceImage>(res, 'POST /v2/images')
  }

  /**
   * Uploads the image's data (PUT /v2/images/{id}/file), streamed, and checks that Glance stored what was sent:
   * its size, `checksum` (md5) and `os_hash_value` (sha512) must equal the ones computed while sending.
   */
  async uploadImage(
    id: string,
    data: string | Buffer | Readable,
    opts: { size?: number; onProgress?: (bytes: number, total?: number) => void; signal?: AbortSignal } = {},
  ): Promise<UploadResult> {
    let size = opts.size
    let source: Readable
    if (typeof data === 'string') {
      size ??= (await stat(data)).size
      source = createReadStream(data)
    } else if (Buffer.isBuffer(data)) {
      size ??= data.length
      source = Readable.from([data])
    } else source = data
    const hasher = new ImageHasher((n) => opts.onProgress?.(n, size))
    source.on('error', (e) => hasher.destroy(e))
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' }
    if (size !== undefined) headers['content-length'] = String(size)
    else headers['transfer-encoding'] = 'chunked'
    const path = `/v2/images/${encodeURIComponent(id)}/file`
    // no retry here: a stream cannot be replayed (the token is fresh from #headers)
    const base = await this.endpoint()
    await httpCall(
      {
        method: 'PUT',
        url: base + path,
        headers: await this.#headers(headers),
        body: source.pipe(hasher),
        timeoutMs: 0,
        signal: opts.signal,
      },
      this.#opts.tls,
    )
    const { checksum, osHashValue } = hasher.digests()
    const image = await this.getImage(id)
    const problems: string[] = []
    if (image.size !== hasher.bytes) problems.push(`size ${image.size} (sent ${hasher.bytes})`)
    if (image.checksum !== checksum) problems.push(`checksum ${image.checksum} (sent md5 ${checksum})`)
    if (image.os_hash_algo === GLANCE_HASH_ALGO && image.os_hash_value !== osHashValue)
      problems.push(`os_hash_value ${image.os_hash_value?.slice(0, 16)}… (sent sha512 ${osHashValue.slice(0, 16)}…)`)
    if (problems.length)
      throw new Error(`Glance at ${base} stored image ${id} with ${problems.join(', ')}: the upload was corrupted`)
    return { size: hasher.bytes, checksum, osHashAlgo: image.os_hash_algo ?? GLANCE_HASH_ALGO, osHashValue, image }
  }

  /** The image's data as a stream (GET /v2/images/{id}/file). */
  async downloadImage(id: string): Promise<IncomingMessage> {
    const base = await this.endpoint()
    return httpStream(
      {
        method: 'GET',
        url: `${base}/v2/images/${encodeURIComponent(id)}/file`,
        headers: await this.#headers({ accept: 'application/octet-stream' }),
        timeoutMs: 0,
      },
      this.#opts.tls,
    )
  }

  /**
   * Sets (`set`) and removes (`remove`) attributes/properties with a JSON patch. A property that exists is
   * replaced, a new one added (Glance refuses `replace` of an absent property and `add` is an upsert only for
   * properties, so the op is chosen from the current record).
   */
  async updateImage(id: string, change: { set?: Record<string, unknown>; remove?: string[] }): Promise<GlanceImage> {
    const current = await this.getImage(id)
    const ops: { op: string; path: string; value?: unknown }[] = []
    for (const [k, v] of Object.entries(change.set ?? {}))
      ops.push({ op: k in current ? 'replace' : 'add', path: `/${k}`, value: v })
    for (const k of change.remove ?? []) if (k in current) ops.push({ op: 'remove', path: `/${k}` })
    if (ops.length === 0) return current
    const res = await this.#call({
      method: 'PATCH',
      path: `/v2/images/${encodeURIComponent(id)}`,
      headers: { 'content-type': 'application/openstack-images-v2.1-json-patch' },
      body: Buffer.from(JSON.stringify(ops)),
    })
    return parseJson<GlanceImage>(res, `PATCH /v2/images/${id}`)
  }

  async deleteImage(id: string): Promise<void> {
    await this.#call({ method: 'DELETE', path: `/v2/images/${encodeURIComponent(id)}` })
  }
}
