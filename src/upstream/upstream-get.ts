/**
 * A small GET on one upstream, for the proxy's own questions (is it healthy, which models
 * does it serve): sent through the upstream's own transport (its pool, TLS and protocol),
 * bounded in time (the timer runs on the injected clock) and in the bytes it keeps. Never a
 * completion: these run on every upstream every few seconds and must not spend GPU time.
 */
import { Cancel, DEADLINE } from '../cancel.js';
import type { Clock } from '../clock.js';
import { EMPTY_BODY } from '../http/request-body.js';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Upstream } from './upstream.js';

export interface GetOptions {
  readonly clock: Clock;
  readonly timeoutMs: number;
  /** Bytes of the body kept; the rest is read and dropped. */
  readonly maxBytes: number;
  /** HTTP/2 to the upstream: no Host header (the session's authority says it). */
  readonly http2: boolean;
  /** Extra headers (the upstream's key for /v1/models). */
  readonly headers?: OutgoingHttpHeaders;
}

export interface GetResult {
  readonly status: number;
  readonly body: Buffer;
}

/** Resolves with the status and (the start of) the body; rejects on no answer or TIMEOUT. */
export async function getFromUpstream(u: Upstream, path: string, o: GetOptions): Promise<GetResult> {
  const cancel = new Cancel();
  const stop = o.clock.timer(o.timeoutMs, () => cancel.abort(DEADLINE));
  try {
    const headers: OutgoingHttpHeaders = { accept: 'application/json', 'user-agent': 'openai-proxy', ...o.headers };
    if (!o.http2) headers['host'] = u.target.host;
    const up = await u.transport.send({ method: 'GET', path, headers, body: EMPTY_BODY }, cancel);
    const body = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      const off = cancel.onAbort(() => {
        up.abort();
        reject(cancel.reason);
      });
      up.body.read({
        data: (c) => {
          if (kept >= o.maxBytes) return;
          const part = c.length > o.maxBytes - kept ? c.subarray(0, o.maxBytes - kept) : c;
          chunks.push(part);
          kept += part.length;
        },
        end: () => (off(), resolve(Buffer.concat(chunks, kept))),
        broken: () => (off(), reject(new Error('the answer broke off'))),
      });
    });
    return { status: up.status, body };
  } finally {
    stop();
  }
}
