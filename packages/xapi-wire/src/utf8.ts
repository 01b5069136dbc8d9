/** Strict UTF-8 decoding of request and response bodies: XAPI rejects invalid UTF-8 (INVALID_VALUE, §2). */
import { isUtf8 } from 'node:buffer'

/** A body that is not valid UTF-8; `byteOffset` is where the first invalid sequence starts. */
export class InvalidUtf8Error extends Error {
  override name = 'InvalidUtf8Error'
  constructor(
    readonly byteOffset: number,
    what: string,
  ) {
    super(`${what}: invalid UTF-8 at byte offset ${byteOffset}`)
  }
}

/** Decodes a body as UTF-8, throwing InvalidUtf8Error (never replacing bad bytes with U+FFFD). */
export function decodeUtf8(body: string | Buffer, what: string): string {
  if (typeof body === 'string') return body
  if (isUtf8(body)) return body.toString('utf8')
  throw new InvalidUtf8Error(firstInvalidUtf8(body), what)
}

function firstInvalidUtf8(b: Buffer): number {
  let i = 0
  while (i < b.length) {
    const c = b[i]!
    let n: number
    let min: number
    if (c < 0x80) {
      i++
      continue
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1
      min = 0x80
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2
      min = 0x800
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3
      min = 0x10000
    } else return i
    let cp = c & (0x3f >> n)
    for (let k = 1; k <= n; k++) {
      const d = b[i + k]
      if (d === undefined || (d & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (d & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += n + 1
  }
  return b.length
}
