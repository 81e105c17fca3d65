/**
 * One attempt at the upstream, turned into a verdict for the retry loop (what is safe to
 * repeat, and what the client gets if nothing is repeated). The breaker and the telemetry
 * hear every attempt's outcome here, in one place. A 502/503 that may be retried is read
 * whole (it is small) so that the last one can still be passed on unchanged.
 */
import type { Cancel } from '../cancel.js';
import type { Clock } from '../clock.js';
import { ProxyError } from '../errors.js';
import { ClientGone } from '../http/request-body.js';
import type { Telemetry } from '../observe/telemetry.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { retryAfterMs } from '../resilience/retry-after.js';
import type { Verdict } from '../resilience/retry.js';
import { BodyChannel } from '../upstream/body-channel.js';
import { UpstreamFailure, type Transport, type UpstreamRequest, type UpstreamResponse } from '../upstream/transport.js';

/** What the client will get. */
export type Answer =
  | { readonly kind: 'stream'; readonly up: UpstreamResponse }
  | { readonly kind: 'held'; readonly status: number; readonly headers: UpstreamResponse['headers']; readonly body: Buffer }
  | { readonly kind: 'error'; readonly error: ProxyError }
  | { readonly kind: 'gone' };

/** Reasons a request is cancelled. */
export const CLIENT_GONE = new ClientGone();
export const DEADLINE = new Error('the upstream did not begin its answer in time');

/** Upstream statuses worth asking again: the server said it could not take the request now. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503]);
const MAX_HELD_ERROR_BODY = 64 * 1024;

export interface AttemptParts {
  readonly transport: Transport;
  readonly telemetry: Telemetry;
  readonly breaker: CircuitBreaker | null;
  readonly clock: Clock;
  readonly timeoutMs: number;
}

/**
 * Sends `r` once. `isProbe` says whether this is the breaker's half-open probe; `judged`
 * is called when the breaker got a verdict from it (a probe without one is abandoned).
 */
export async function attempt(p: AttemptParts, r: UpstreamRequest, cancel: Cancel, isProbe: boolean, judged: () => void): Promise<Verdict<Answer>> {
  const { telemetry, breaker, clock } = p;
  const failure = (outcome: 'timeout' | 'connect_error' | 'reset' | 'protocol', message: string): void => {
    telemetry.attempt(outcome, message);
    breaker?.recordFailure(clock.now(), isProbe);
    judged();
  };
  let up: UpstreamResponse;
  try {
    up = await p.transport.send(r, cancel);
  } catch (err) {
    if (cancel.reason === CLIENT_GONE || err === CLIENT_GONE) return { kind: 'final', value: { kind: 'gone' } };
    if (cancel.reason === DEADLINE || err === DEADLINE) {
      failure('timeout', 'no answer before TIMEOUT');
      return { kind: 'final', value: { kind: 'error', error: new ProxyError('upstream_timeout', `The upstream did not answer within ${p.timeoutMs / 1000}s.`) } };
    }
    if (err instanceof ProxyError) return { kind: 'final', value: { kind: 'error', error: err } };
    if (!(err instanceof UpstreamFailure)) throw err;
    if (err.details.staleConnection) {
      // a reused keep-alive socket the peer had closed says nothing about its health
      return { kind: 'retry', reason: 'stale_connection', immediate: true, value: { kind: 'error', error: new ProxyError('upstream_protocol', 'The upstream closed the connection before answering.') } };
    }
    failure(err.outcome, err.message);
    if (err.outcome === 'connect_error') {
      return { kind: 'retry', reason: 'connect_error', value: { kind: 'error', error: new ProxyError('upstream_unreachable', `The upstream could not be reached (${err.message}).`) } };
    }
    const broke = new ProxyError('upstream_protocol', `The upstream broke the connection before answering (${err.message}).`);
    return err.outcome === 'reset' ? { kind: 'retry', reason: 'reset', value: { kind: 'error', error: broke } } : { kind: 'final', value: { kind: 'error', error: broke } };
  }
  const failed = up.status >= 500;
  telemetry.attempt(failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${up.status}` : undefined);
  if (failed) breaker?.recordFailure(clock.now(), isProbe);
  else breaker?.recordSuccess(clock.now(), isProbe);
  judged();
  if (!RETRY_STATUSES.has(up.status)) return { kind: 'final', value: { kind: 'stream', up } };
  const held = await holdSmallBody(up, MAX_HELD_ERROR_BODY);
  if (held.kind !== 'held') return { kind: 'final', value: held };
  const wait = retryAfterMs(up.headers, Date.now());
  const reason = `http_${up.status}`;
  return wait === undefined ? { kind: 'retry', reason, value: held } : { kind: 'retry', reason, value: held, retryAfterMs: wait };
}

/**
 * Reads a body of at most `limit` bytes. A larger one is not retried: it is handed on as a
 * stream that replays what was read, then the rest, so the client still gets it whole.
 */
function holdSmallBody(up: UpstreamResponse, limit: number): Promise<Answer> {
  const declared = Number(up.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: 'stream', up });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    // a body that breaks while held is passed on as far as it came: it is an error answer anyway
    const whole = (): void => {
      if (done) return;
      done = true;
      resolve({ kind: 'held', status: up.status, headers: up.headers, body: Buffer.concat(chunks, size) });
    };
    up.body.read({
      data: (c) => {
        if (done) return;
        size += c.length;
        chunks.push(c);
        if (size <= limit) return;
        done = true;
        // too big to hold: the client gets what was read, then the rest as it comes
        const replay = new BodyChannel(up.body);
        for (const chunk of chunks) replay.data(chunk);
        up.body.read(replay);
        resolve({ kind: 'stream', up: { status: up.status, headers: up.headers, body: replay, abort: () => up.abort() } });
      },
      end: whole,
      broken: whole,
    });
  });
}
