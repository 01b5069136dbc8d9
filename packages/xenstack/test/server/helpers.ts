// Test helpers for the server: an app on a fresh store (either backend), a release of harmless shell tasks for
// deployments on the local executor, and a reader of server-sent events over real HTTP.
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp, serverContext, xenserverHealthDeps } from '../../src/server/index.js'
import type { ServerContext } from '../../src/server/context.js'
import type { StateStore } from '../../src/state/store.js'
import { openStore, type BackendName } from '../state/databases.js'

export interface TestServer {
  app: FastifyInstance
  token: string
  state: StateStore
  context: ServerContext
  auth: { authorization: string }
}

export async function testServer(
  t: TestContext,
  backend: BackendName,
  dataDir: string,
  notes: string[] = [],
  opts: { health?: boolean; webDir?: string } = {},
): Promise<TestServer | undefined> {
  const state = openStore(t, backend, dataDir)
  if (!state) return undefined
  const { context, tokens } = serverContext(state, { notes })
  const token = tokens.ensure()!
  const app = await buildApp(context, {
    tokens,
    health: opts.health ? xenserverHealthDeps(state) : undefined,
    webDir: opts.webDir,
  })
  t.after(async () => {
    await context.deployments.close()
    await context.pools.close()
    context.health.close()
    await app.close()
    state.close()
  })
  return { app, token, state, context, auth: { authorization: `Bearer ${token}` } }
}

/** A release whose only tasks are shell commands, recorded in the store (resolveRelease finds it there). */
export function recordTestRelease(
  state: StateStore,
  name: string,
  tasks: { id: string; cmd: string; requires?: string[]; timeout?: number }[],
): void {
  state.releases.upsert({
    name,
    version: `${name}-1`,
    operatingSystem: 'Ubuntu',
    source: 'test',
    data: {
      name,
      version: `${name}-1`,
      operatingSystem: 'Ubuntu',
      settings: {
        common: {
          metadata: { label: 'Common', weight: 10 },
          debug: { value: false, label: 'Debug', type: 'checkbox', weight: 10 },
          admin_password: {
            value: 'Initial-Passw0rd',
            label: 'Admin password',
            type: 'password',
            weight: 20,
            regex: { source: '^\\S{8,}$', error: 'at least 8 characters, no spaces' },
          },
          workers: {
            value: '4',
            label: 'Workers',
            type: 'text',
            weight: 30,
            regex: { source: '^[1-9][0-9]?$', error: 'a number from 1 to 99' },
          },
        },
      },
      components: [],
      requiredComponentTypes: [],
      roles: {
        controller: { name: 'Controller', conflicts: ['compute'] },
        compute: { name: 'Compute', conflicts: ['controller'] },
      },
      tasks: tasks.map((x) => ({
        id: x.id,
        type: 'shell',
        roles: ['compute'],
        requires: x.requires,
        parameters: { cmd: x.cmd, timeout: x.timeout ?? 60, retries: 0 },
      })),
    },
  })
}

export interface SseEvent {
  id?: string
  event: string
  data: any
}

/**
 * Opens an event stream and collects events until `done(events)` holds or the deadline passes (then throws with
 * what arrived). Returns the events and a `close()`.
 */
export async function openEvents(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController()
  const res = await fetch(url, { headers, signal: ac.signal })
  const events: SseEvent[] = []
  const waiters: (() => void)[] = []
  const pump = (async () => {
    if (!res.body) return
    const decoder = new TextDecoder()
    let buf = ''
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true })
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const e: SseEvent = { event: 'message', data: undefined }
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) e.id = line.slice(4)
            else if (line.startsWith('event: ')) e.event = line.slice(7)
            else if (line.startsWith('data: ')) data += line.slice(6)
          }
          if (!data) continue
          e.data = JSON.parse(data)
          events.push(e)
          waiters.splice(0).forEach((w) => w())
        }
      }
    } catch {
      // aborted
    }
  })()
  return {
    status: res.status,
    headers: res.headers,
    events,
    async until(done: (events: SseEvent[]) => boolean, timeoutMs = 60_000): Promise<SseEvent[]> {
      const deadline = Date.now() + timeoutMs
      while (!done(events)) {
        const left = deadline - Date.now()
        if (left <= 0)
          throw new Error(
            `event stream ${url}: condition not met in ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ')}`,
          )
        await new Promise<void>((r) => {
          const timer = setTimeout(r, Math.min(left, 1000))
          waiters.push(() => {
            clearTimeout(timer)
            r()
          })
        })
      }
      return events
    },
    async close() {
      ac.abort()
      await pump
    },
  }
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function eventually<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not true after ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
