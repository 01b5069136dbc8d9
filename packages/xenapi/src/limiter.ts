/**
 * A bounded number of calls in flight with a FIFO queue behind it. XAPI serialises much of its work per host, and
 * os-xenapi's fixed session pool blocked forever when exhausted; here a waiting call only waits for a slot, and
 * leaves the queue when its signal aborts.
 */
export class Limiter {
  private active = 0
  private readonly waiting: { resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal }[] = []
  /** The highest number of calls seen in flight at once (for diagnostics and tests). */
  peak = 0

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`maxConcurrentCalls: expected an integer >= 1, got ${max}`)
  }

  get inFlight(): number {
    return this.active
  }
  get queued(): number {
    return this.waiting.length
  }

  /**
   * Runs `fn` when a slot is free. Not an async function: a call that finds a free slot (every sequential call) costs
   * one promise hop here, not three.
   */
  run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.active < this.max) {
      this.active++
      if (this.active > this.peak) this.peak = this.active
      return this.settle(fn)
    }
    return this.wait(signal).then(() => {
      if (this.active > this.peak) this.peak = this.active
      return this.settle(fn)
    })
  }

  private settle<T>(fn: () => Promise<T>): Promise<T> {
    let p: Promise<T>
    try {
      p = fn()
    } catch (e) {
      this.release()
      return Promise.reject(e)
    }
    return p.then(this.releaseWith as (v: T) => T, this.releaseThrowing)
  }

  private readonly releaseWith = (v: unknown): unknown => {
    this.release()
    return v
  }
  private readonly releaseThrowing = (e: unknown): never => {
    this.release()
    throw e
  }

  private wait(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const onAbort = (): void => {
        const i = this.waiting.indexOf(entry)
        if (i >= 0) {
          this.waiting.splice(i, 1)
          reject(signal?.reason)
        }
      }
      const entry = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
        reject,
        signal,
      }
      this.waiting.push(entry)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private release(): void {
    const next = this.waiting.shift()
    // The slot passes straight to the next waiter: `active` stays the same.
    if (next) next.resolve()
    else this.active--
  }
}
