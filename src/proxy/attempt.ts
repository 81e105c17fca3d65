/**
 * One attempt at the upstream, turned into a verdict for the retry loop (what is safe to
 * repeat, and what the client gets if nothing is repeated). The breaker (through the
 * request's ticket) and the telemetry hear every attempt's outcome here, in one place. A
 * 502/503 that may be retried is read whole (it is small) so that the last one can still
 * be passed on unchanged; that hold consults the request's lifetime like every other phase.
 *
 * What an early end (client gone, TIMEOUT, shutdown) means for the client is not decided
 * here: the attempt reports what it saw to the breaker and returns `ended`, and the
 * handler answers from the lifetime's reason.
 */
import type { Clock } from '../clock.js';
import { ProxyError } from '../errors.js';
import type { Telemetry } from '../observe/telemetry.js';
import { retryAfterMs } from '../resilience/retry-after.js';
import type { Verdict } from '../resilience/retry.js';
import { BodyChannel } from '../upstream/body-channel.js';
import { UpstreamFailure, type UpstreamRequest, type UpstreamResponse } from '../upstream/transport.js';
import type { Upstream } from '../upstream/upstream.js';
import type { BreakerTicket } from './breaker-ticket.js';
import type { Lifetime } from './lifetime.js';

/** What the client will get. */
export type Answer =
  | { readonly kind: 'stream'; readonly up: UpstreamResponse }
  | { readonly kind: 'held'; readonly status: number; readonly headers: UpstreamResponse['headers']; readonly body: Buffer }
  | { readonly kind: 'error'; readonly error: ProxyError }
  /** The request's lifetime ended (client gone, TIMEOUT, shutdown): its reason decides the answer. */
  | { readonly kind: 'ended' };

/** Upstream statuses worth asking again: the server said it could not take the request now. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503]);
const MAX_HELD_ERROR_BODY = 64 * 1024;
const ENDED: Answer = { kind: 'ended' };

export interface AttemptParts {
  readonly telemetry: Telemetry;
  readonly clock: Clock;
}

/**
 * Sends `r` once to upstream `u`; the verdict on it goes to `ticket` (the request's standing
 * with u's breaker) and to the telemetry under u's name.
 */
export async function attempt(p: AttemptParts, u: Upstream, r: UpstreamRequest, life: Lifetime, ticket: BreakerTicket): Promise<Verdict<Answer>> {
  const { telemetry } = p;
  const failure = (outcome: 'timeout' | 'connect_error' | 'reset' | 'protocol', message: string): void => {
    telemetry.attempt(u.name, outcome, message);
    ticket.failure();
  };
  life.enter('attempt');
  let up: UpstreamResponse;
  try {
    up = await u.transport.send(r, life.cancel);
  } catch (err) {
    const ended = life.endedBy;
    if (ended !== null) {
      // TIMEOUT while waiting for the upstream is the upstream's failure; a client that left or
      // shutdown says nothing about it (a probe's slot is given back when the request ends)
      if (ended === 'deadline') failure('timeout', 'no answer before TIMEOUT');
      return { kind: 'final', value: ENDED };
    }
    if (err instanceof ProxyError) return { kind: 'final', value: { kind: 'error', error: err } };
    if (!(err instanceof UpstreamFailure)) throw err; // our own bug: the handler answers 500
    if (err.details.staleConnection) {
      // a reused keep-alive socket the peer had already closed says nothing about its health
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
  telemetry.attempt(u.name, failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${up.status}` : undefined);
  if (failed) ticket.failure();
  else ticket.success();
  if (!RETRY_STATUSES.has(up.status)) return { kind: 'final', value: { kind: 'stream', up } };
  const held = await holdSmallBody(up, MAX_HELD_ERROR_BODY, life);
  if (held.kind !== 'held') return { kind: 'final', value: held };
  const wait = retryAfterMs(up.headers, p.clock.wallNow());
  const reason = `http_${up.status}`;
  return wait === undefined ? { kind: 'retry', reason, value: held } : { kind: 'retry', reason, value: held, retryAfterMs: wait };
}

/**
 * Reads a body of at most `limit` bytes. A larger one is not retried: it is handed on as a
 * stream that replays what was read, then the rest, so the client still gets it whole. A
 * body that stalls is bounded by the lifetime (TIMEOUT, the client leaving, shutdown), which
 * aborts the upstream request and ends the hold.
 */
function holdSmallBody(up: UpstreamResponse, limit: number, life: Lifetime): Promise<Answer> {
  const declared = Number(up.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ kind: 'stream', up });
  life.enter('holding_error');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const settle = (answer: Answer): void => {
      done = true;
      offEnded();
      resolve(answer);
    };
    // a body that breaks while held is passed on as far as it came: it is an error answer anyway
    const whole = (): void => {
      if (!done) settle({ kind: 'held', status: up.status, headers: up.headers, body: Buffer.concat(chunks, size) });
    };
    const offEnded = life.cancel.onAbort(() => {
      if (done) return;
      done = true;
      up.abort();
      resolve(ENDED);
    });
    if (done) return;
    up.body.read({
      data: (c) => {
        if (done) return;
        size += c.length;
        chunks.push(c);
        if (size <= limit) return;
        // too big to hold: the client gets what was read, then the rest as it comes
        const replay = new BodyChannel(up.body);
        for (const chunk of chunks) replay.data(chunk);
        up.body.read(replay);
        settle({ kind: 'stream', up: { status: up.status, headers: up.headers, body: replay, abort: () => up.abort() } });
      },
      end: whole,
      broken: whole,
    });
  });
}
