/**
 * Server-sent events: a hub of named channels (`deployments:<env>`, `pools:<name>`, `health:<env>`) that parts
 * publish to, and the SSE writer the routes stream them with. Each message is `event: <type>` + `data: <json>`
 * with an increasing `id`; a comment line every 15 s keeps proxies from closing an idle stream.
 */
import { EventEmitter } from 'node:events'
import type { FastifyReply, FastifyRequest } from 'fastify'

export interface HubMessage {
  id: number
  type: string
  data: unknown
}

export class EventHub {
  private readonly emitter = new EventEmitter()
  private seq = 0
  /** Open streams, ended when the server closes (an open stream would keep `close()` waiting forever). */
  readonly streams = new Set<() => void>()

  constructor() {
    this.emitter.setMaxListeners(0)
  }

  publish(channel: string, type: string, data: unknown): void {
    this.emitter.emit(channel, { id: ++this.seq, type, data } satisfies HubMessage)
  }

  subscribe(channel: string, fn: (m: HubMessage) => void): () => void {
    this.emitter.on(channel, fn)
    return () => this.emitter.off(channel, fn)
  }

  listeners(channel: string): number {
    return this.emitter.listenerCount(channel)
  }

  /** Ends every open stream (server shutdown). */
  endStreams(): void {
    for (const end of [...this.streams]) end()
  }
}

/**
 * Streams a channel as SSE until the client goes away: first the `snapshot` event(s) `initial` returns (the
 * current state, so a client that connects late misses nothing), then every message published.
 */
export function streamChannel(
  req: FastifyRequest,
  reply: FastifyReply,
  hub: EventHub,
  channel: string,
  initial: () => { type: string; data: unknown }[],
): void {
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-frame-options': 'DENY',
    'content-security-policy': "frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
  })
  const write = (m: { id?: number; type: string; data: unknown }) =>
    res.write(`${m.id !== undefined ? `id: ${m.id}\n` : ''}event: ${m.type}\ndata: ${JSON.stringify(m.data)}\n\n`)
  res.write('retry: 2000\n\n')
  for (const m of initial()) write(m)
  const unsubscribe = hub.subscribe(channel, write)
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000)
  const close = () => {
    clearInterval(keepAlive)
    unsubscribe()
    hub.streams.delete(end)
  }
  const end = () => {
    close()
    res.end()
  }
  hub.streams.add(end)
  req.raw.on('close', close)
  res.on('error', close)
}
