/**
 * A request's record, and the one place where how a request went becomes its answer and
 * its record, for HTTP requests and WebSocket upgrades alike: a refusal, an early end (the
 * client gone: 499 and nothing sent; TIMEOUT: 504; shutdown: 503 `draining`), and the
 * proxy's own bug (500 `internal_error`, logged with its stack, never blamed on the upstream).
 * How the error reaches the client (a ServerResponse, or the raw socket of an upgrade) is
 * the caller's `Reply`.
 */
import type { IncomingMessage } from 'node:http';
import { Ended, type EndReason } from '../cancel.js';
import { ProxyError } from '../errors.js';
import { clientAddress } from '../http/client-identity.js';
import { requestIdFor } from '../http/request-id.js';
import { routeTemplate } from '../http/route-template.js';
import type { Logger } from '../logging/logger.js';
import type { RequestRecord, Telemetry } from '../observe/telemetry.js';
import { GateRejected } from '../resilience/concurrency-gate.js';
import type { LimitReason } from '../resilience/client-limits.js';
import type { Route, UpstreamSet } from '../upstream/upstream-set.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
export type Rec = Mutable<RequestRecord>;
export type RateHeaders = Record<string, string> | undefined;

/** Tells the client of an error; returns the status it was given. */
export type Reply = (err: ProxyError, extra: RateHeaders) => number;

/**
 * 503 when no upstream can take the request: `circuit_open` with one upstream (as it always
 * was), `no_upstream_available` with several; `Retry-After` until the soonest could.
 */
export function unavailable(upstreams: UpstreamSet, route: Route, now: number, healthIntervalMs: number): ProxyError {
  const retryAfterSec = upstreams.retryAfterMs(route, now, healthIntervalMs) / 1000;
  return upstreams.several
    ? new ProxyError('no_upstream_available', 'No upstream that serves this request can take it now.', { retryAfterSec })
    : new ProxyError('circuit_open', 'The upstream is failing; the proxy is refusing requests until it recovers.', { retryAfterSec });
}

export function newRecord(req: IncomingMessage, trustProxy: boolean): Rec {
  const url = req.url ?? '/';
  return {
    requestId: requestIdFor(req.headers['x-request-id']),
    client: clientAddress(req, trustProxy),
    method: req.method ?? 'GET',
    path: url,
    endpoint: routeTemplate(url),
    model: null,
    stream: false,
    status: 0,
    durationMs: 0,
    ttfbMs: null,
    attempts: 0,
    upstream: null,
    bytesIn: 0,
    bytesOut: 0,
    promptTokens: null,
    completionTokens: null,
    tokensCharged: null,
    keyId: null,
    error: null,
  };
}

export class Outcomes {
  constructor(
    private readonly timeoutMs: number,
    private readonly logger: Logger,
    private readonly telemetry: Telemetry,
  ) {}

  /** Admission said no (key, the client's limits, no upstream); `limited` says which of its limits. */
  refuse(rec: Rec, reply: Reply, err: ProxyError, rateHeaders: RateHeaders, limited: LimitReason | null = null): void {
    if (limited !== null) this.telemetry.rateLimited(limited, rec.keyId ?? rec.client);
    this.fail(rec, reply, err, rateHeaders);
  }

  /** One of the proxy's own errors, answered and recorded. */
  fail(rec: Rec, reply: Reply, err: ProxyError, rateHeaders: RateHeaders): void {
    rec.error = err.code;
    rec.status = reply(err, rateHeaders);
  }

  /** The client left: 499 in the record (nginx's code for it), in whatever phase. */
  gone(rec: Rec): void {
    rec.error = 'client_gone';
    rec.status = 499;
  }

  /** The request's lifetime ended early; `cut` closes a client connection that is gone. */
  endedEarly(rec: Rec, reason: EndReason, reply: Reply, rateHeaders: RateHeaders, cut: () => void): void {
    if (reason === 'client_gone') {
      cut();
      this.gone(rec);
    } else if (reason === 'deadline') {
      this.fail(rec, reply, new ProxyError('upstream_timeout', `The upstream did not answer within ${this.timeoutMs / 1000}s.`), rateHeaders);
    } else {
      this.fail(rec, reply, new ProxyError('draining', 'The proxy is shutting down; send the request again.'), rateHeaders);
    }
  }

  /** Whatever a phase threw: an early end, a refusal, or the proxy's own bug. */
  failed(rec: Rec, err: unknown, reply: Reply, rateHeaders: RateHeaders, conn: { destroy(): void }): void {
    if (err instanceof Ended) return this.endedEarly(rec, err.reason, reply, rateHeaders, () => conn.destroy());
    if (err instanceof GateRejected) {
      const message = err.reason === 'queue_timeout' ? 'Waited too long for a free upstream slot.' : err.perClient ? 'This client already holds its share of the places waiting for the upstream.' : 'Too many requests are waiting for the upstream.';
      return this.fail(rec, reply, new ProxyError('queue_full', message, { retryAfterSec: err.retryAfterMs / 1000 }), rateHeaders);
    }
    if (err instanceof ProxyError) return this.fail(rec, reply, err, rateHeaders);
    this.logger.error('the proxy failed while handling a request', { request_id: rec.requestId, err: err as Error, stack: (err as Error | undefined)?.stack ?? String(err) });
    this.fail(rec, reply, new ProxyError('internal', 'The proxy failed while handling this request.'), rateHeaders);
  }
}
