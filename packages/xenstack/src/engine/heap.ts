/**
 * A binary max-heap of integer ids ordered by a numeric key, stored in typed-array-friendly plain arrays.
 * The scheduler keeps one per node (ready tasks by critical-path weight) and one across nodes, so picking the
 * next task is O(log n) instead of astute's poll-every-node loop.
 */
export class MaxHeap {
  private ids: number[] = []
  private keys: number[] = []

  get size(): number {
    return this.ids.length
  }

  push(id: number, key: number): void {
    const ids = this.ids
    const keys = this.keys
    let i = ids.length
    ids.push(id)
    keys.push(key)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (keys[p] >= key) break
      ids[i] = ids[p]
      keys[i] = keys[p]
      i = p
    }
    ids[i] = id
    keys[i] = key
  }

  /** The id with the largest key, or -1 when empty. */
  peek(): number {
    return this.ids.length ? this.ids[0] : -1
  }

  peekKey(): number {
    return this.keys.length ? this.keys[0] : -Infinity
  }

  pop(): number {
    const ids = this.ids
    const keys = this.keys
    if (ids.length === 0) return -1
    const top = ids[0]
    const lastId = ids.pop() as number
    const lastKey = keys.pop() as number
    const n = ids.length
    if (n > 0) {
      let i = 0
      while (true) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && keys[r] > keys[l] ? r : l
        if (keys[c] <= lastKey) break
        ids[i] = ids[c]
        keys[i] = keys[c]
        i = c
      }
      ids[i] = lastId
      keys[i] = lastKey
    }
    return top
  }

  clear(): number[] {
    const out = this.ids
    this.ids = []
    this.keys = []
    return out
  }
}
