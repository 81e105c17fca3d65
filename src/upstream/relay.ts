/**
 * Streams the upstream's answer to the client as it arrives, with backpressure, and ends it
 * honestly. Server-sent events are passed whole: bytes of an event that has not ended yet
 * are held until its blank line arrives (upstreams write whole events, so this delays
 * nothing), so that when the upstream breaks mid-stream the client gets the complete events
 * so far, then one `data: {"error":...}` event and no `[DONE]`: a cut answer never looks
 * complete and never ends in half an event. A non-SSE body that breaks is cut (the client
 * sees it incomplete). Silence longer than the idle timeout counts as a break. A client
 * that leaves aborts the upstream request at once, so the model stops generating.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { UpstreamResponse } from './transport.js';
import { toClientHeaders } from '../http/headers.js';

export type RelayOutcome = 'complete' | 'upstream_broken' | 'idle_timeout' | 'client_gone';

export interface RelayResult {
  readonly outcome: RelayOutcome;
  readonly bytesOut: number;
  /** The answer was a Server-Sent Events stream. */
  readonly sse: boolean;
}

export interface RelayOptions {
  readonly requestId: string;
  readonly idleTimeoutMs: number;
  /** Extra headers for the client (rate-limit info, x-should-retry). */
  readonly extraHeaders?: Record<string, string>;
  /** Sees every body chunk as it passes (token accounting); must not keep or alter it. */
  readonly onChunk?: (chunk: Buffer) => void;
}

/** Index just past the last complete SSE event in `buf` (0 when none ended). */
export function lastEventEnd(buf: Buffer): number {
  const n = buf.length;
  if (n >= 2 && buf[n - 1] === 0x0a && (buf[n - 2] === 0x0a || (n >= 4 && buf[n - 2] === 0x0d && buf[n - 3] === 0x0a))) return n; // fast path
  for (let i = n - 1; i >= 1; i--) {
    const c = buf[i];
    const p = buf[i - 1];
    if (c === 0x0a && (p === 0x0a || (p === 0x0d && i >= 2 && buf[i - 2] === 0x0a))) return i + 1;
    if (c === 0x0d && p === 0x0d && buf[i + 1] !== 0x0a) return i + 1;
  }
  return 0;
}

/** Bound on a held partial event: a peer that never ends an event cannot grow our memory. */
const MAX_HELD_BYTES = 1 << 20;

export function brokenStreamEvent(message: string, code: string): string {
  return `data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code } })}\n\n`;
}

export function relayResponse(up: UpstreamResponse, res: ServerResponse, opts: RelayOptions): Promise<RelayResult> {
  const contentType = up.headers['content-type'];
  const sse = typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream');
  const headers = toClientHeaders(up.headers, opts.requestId);
  if (opts.extraHeaders) Object.assign(headers, opts.extraHeaders);
  if (sse) {
    headers['cache-control'] ??= 'no-cache';
    headers['x-accel-buffering'] = 'no';
    delete headers['content-length'];
  }
  res.writeHead(up.status, headers);
  if (sse) (res.socket as Socket | null)?.setNoDelay(true);
  const body = up.body;
  return new Promise((resolve) => {
    let bytesOut = 0;
    let held: Buffer | null = null;
    let settled = false;
    const idle = setTimeout(() => finish('idle_timeout'), opts.idleTimeoutMs);
    idle.unref();

    const write = (chunk: Buffer): void => {
      bytesOut += chunk.length;
      if (!res.write(chunk)) body.pause();
    };
    const onData = (chunk: Buffer): void => {
      idle.refresh();
      opts.onChunk?.(chunk);
      if (!sse) {
        write(chunk);
        return;
      }
      const buf = held === null ? chunk : Buffer.concat([held, chunk]);
      const end = lastEventEnd(buf);
      if (end === buf.length) {
        held = null;
        write(buf);
      } else if (buf.length - end > MAX_HELD_BYTES) {
        held = null;
        write(buf); // a pathological event: pass it on rather than hold without bound
      } else {
        if (end > 0) write(buf.subarray(0, end));
        held = buf.subarray(end);
      }
    };
    const onDrain = (): void => {
      body.resume();
    };
    const onEnd = (): void => {
      if (held !== null) write(held); // the upstream ended cleanly: its last bytes are its own business
      held = null;
      finish('complete');
    };
    const onBroken = (): void => finish('upstream_broken');
    const onClientClose = (): void => {
      if (!res.writableFinished) finish('client_gone');
    };
    const finish = (outcome: RelayOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      res.off('drain', onDrain);
      res.off('close', onClientClose);
      if (outcome === 'complete') {
        res.end();
      } else if (outcome === 'client_gone') {
        up.abort();
      } else {
        up.abort();
        if (sse && !res.destroyed) {
          const why = outcome === 'idle_timeout' ? `the upstream sent nothing for ${opts.idleTimeoutMs} ms` : 'the upstream broke the stream';
          const ev = brokenStreamEvent(`Stream ended early: ${why}. The answer is incomplete.`, outcome === 'idle_timeout' ? 'upstream_timeout' : 'upstream_stream_broken');
          bytesOut += ev.length;
          res.end(ev);
        } else {
          res.destroy();
        }
      }
      resolve({ outcome, bytesOut, sse });
    };
    res.on('drain', onDrain);
    res.on('close', onClientClose);
    if (res.destroyed) finish('client_gone');
    else {
      // last: what arrived with the head is delivered at once, maybe the whole body
      body.read({ data: onData, end: onEnd, broken: onBroken });
      // a stream whose first events have not come yet: its head goes out now, so the client
      // sees the stream begin (when events came with it, the first write carried the head)
      if (sse && bytesOut === 0 && !settled) res.flushHeaders();
    }
  });
}
