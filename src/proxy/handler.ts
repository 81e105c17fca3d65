/**
 * One forwarded request, start to end:
 *   admission (key, bucket, breaker) → body (bounded, kept for replay) → gate (concurrency)
 *   → retry(attempt) under the TIMEOUT deadline → relay the answer → one record.
 * Every phase runs under the request's Lifetime (lifetime.ts): a client that leaves, TIMEOUT
 * and shutdown end the request through it in any phase, and `endedEarly` alone turns that
 * into the answer and the record. The request's standing with the breaker is its
 * BreakerTicket, released whatever happens. An exception is the proxy's own bug: 500
 * `internal_error`, logged with its stack, never blamed on the upstream.
 *
 * Policy lives in the resilience modules, the wire in the transport and the relay; this
 * file wires them together and turns each outcome into exactly one answer and one record.
 * WebSocket upgrades pass the same admission, queue and breaker (`upgrade`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { CLIENT_GONE, Ended, type EndReason } from '../cancel.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { ProxyError } from '../errors.js';
import { clientAddress } from '../http/client-identity.js';
import { toClientHeaders, toUpstreamHeaders, type ForwardContext } from '../http/headers.js';
import { rawError } from '../http/raw-error.js';
import { readRequestBody, type BodyLimits, type RequestBody } from '../http/request-body.js';
import { requestIdFor } from '../http/request-id.js';
import { routeTemplate } from '../http/route-template.js';
import { sendError } from '../http/send-error.js';
import type { Logger } from '../logging/logger.js';
import { requestFacts } from '../observe/request-facts.js';
import type { RequestRecord, Telemetry } from '../observe/telemetry.js';
import { backoffDelayMs } from '../resilience/backoff.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { GateRejected, type ConcurrencyGate, type Release } from '../resilience/concurrency-gate.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import { retry } from '../resilience/retry.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { ApiKeys } from '../security/api-keys.js';
import { relayResponse } from '../upstream/relay.js';
import { upstreamTarget, type UpstreamTarget } from '../upstream/target.js';
import type { Transport, UpstreamRequest } from '../upstream/transport.js';
import { tunnelWebSocket } from '../upstream/websocket-tunnel.js';
import { admit, type AdmissionParts } from './admission.js';
import { attempt, type Answer, type AttemptParts } from './attempt.js';
import { BreakerTicket } from './breaker-ticket.js';
import { Lifetimes, type Lifetime } from './lifetime.js';
import { usageMeter } from './usage-meter.js';

export interface ProxyParts {
  readonly config: Config;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly limiter: RateLimiter | null;
  readonly breaker: CircuitBreaker | null;
  readonly gate: ConcurrencyGate | null;
  readonly budget: RetryBudget;
  /** The client keys in force now (they can be reloaded); null = no key needed. */
  readonly apiKeys: () => ApiKeys | null;
  readonly random?: () => number;
}

/** What to do with client credentials toward the upstream, from the config. */
export function credentialPolicy(config: Config, keysOn: boolean): ForwardContext['credentials'] {
  if (config.upstreamApiKey !== null) return { authorization: `Bearer ${config.upstreamApiKey}` };
  return keysOn ? 'strip' : 'pass';
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Rec = Mutable<RequestRecord>;
type RateHeaders = Record<string, string> | undefined;

/** How the client is told of an error: on its ServerResponse, or on the raw socket of an upgrade. */
type Reply = (err: ProxyError, extra: RateHeaders) => number;

export class ProxyHandler {
  /** Every request alive now (shutdown ends them, /stats counts them by phase). */
  readonly lifetimes: Lifetimes;
  private readonly target: UpstreamTarget;
  private readonly admission: AdmissionParts;
  private readonly attemptParts: AttemptParts;
  private readonly bodyLimits: BodyLimits;

  constructor(private readonly p: ProxyParts) {
    const { config, clock } = p;
    this.lifetimes = new Lifetimes(clock);
    this.target = upstreamTarget(config.upstreamUrl);
    this.admission = { apiKeys: p.apiKeys, limiter: p.limiter, breaker: p.breaker, rateLimitWindowSec: config.rateLimitWindowSec };
    this.attemptParts = { transport: p.transport, telemetry: p.telemetry, clock };
    this.bodyLimits = { maxReplayBytes: config.maxReplayBodyBytes, maxBodyBytes: config.maxRequestBodyBytes, idleTimeoutMs: config.clientTimeoutMs, clock };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { clock, telemetry, budget, config } = this.p;
    const started = clock.now();
    const life = this.lifetimes.begin();
    life.watchClient(res);
    const rec = this.record(req);
    const reply: Reply = (err, extra) => sendError(res, err, rec.requestId, extra);
    telemetry.requestStarted();
    budget.requestStarted();
    let release: Release | null = null;
    let ticket: BreakerTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = admit(this.admission, req, rec.client, started);
      rateHeaders = admission.rateHeaders;
      if (!admission.ok) return this.refuse(rec, reply, admission.error, rateHeaders);
      ticket = new BreakerTicket(this.p.breaker, clock, admission.probe);
      life.enter('reading_body');
      let body: RequestBody | null = await readRequestBody(req, this.bodyLimits, life.cancel);
      rec.bytesIn = body.kind === 'buffered' ? body.data.length : body.headBytes;
      rec.model = requestFacts(body.kind === 'buffered' ? body.data : body.head[0]!, req.headers['content-type']).model;
      if (this.p.gate !== null) {
        life.enter('queued');
        release = await this.p.gate.acquire(life.cancel.signal);
      }
      life.startDeadline(config.timeoutMs);
      const answer = await this.attempts(req, rec, body, life, ticket, admission.keysOn);
      body = null; // not held while the answer streams, for minutes maybe
      await this.answer(res, rec, answer, rateHeaders, life, reply);
    } catch (err) {
      this.failed(rec, err, rateHeaders, reply, res);
    } finally {
      release?.();
      ticket?.release();
      life.finish();
      budget.requestEnded();
      rec.ttfbMs = life.firstByteAt === null ? null : life.firstByteAt - started;
      rec.durationMs = clock.now() - started;
      telemetry.requestFinished(rec);
    }
  }

  /**
   * A WebSocket upgrade under `/v1/`: the same admission as any request (key, bucket,
   * breaker), then a concurrency slot held while the tunnel is open. The upstream must answer
   * the handshake within TIMEOUT; its status is the breaker's verdict. Refusals are written on
   * the raw socket in the same OpenAI shape.
   */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const { clock, telemetry, config } = this.p;
    const started = clock.now();
    const life = this.lifetimes.begin();
    socket.on('error', () => life.end(CLIENT_GONE)); // while it waits, a broken client socket must not throw
    life.watchSocket(socket);
    const rec = this.record(req);
    rec.stream = true;
    let answered = false;
    const reply: Reply = (err, extra) => (answered ? (socket.destroy(), err.status) : rawError(socket, err, rec.requestId, extra));
    telemetry.requestStarted();
    let release: Release | null = null;
    let ticket: BreakerTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = admit(this.admission, req, rec.client, started);
      rateHeaders = admission.rateHeaders;
      if (!admission.ok) return this.refuse(rec, reply, admission.error, rateHeaders);
      const t = (ticket = new BreakerTicket(this.p.breaker, clock, admission.probe));
      if (this.p.gate !== null) {
        life.enter('queued');
        release = await this.p.gate.acquire(life.cancel.signal);
      }
      life.startDeadline(config.timeoutMs);
      life.enter('tunnel');
      rec.attempts = 1;
      const result = await tunnelWebSocket(req, socket, head, {
        target: this.target,
        path: this.target.basePath + rec.path,
        headers: toUpstreamHeaders(req.headers, this.forwardContext(req, rec, admission.keysOn, false)), // a tunnel is always HTTP/1.1
        connectTimeoutMs: config.connectTimeoutMs,
        clock,
        life,
        onAnswer: (status) => {
          answered = true;
          life.clearDeadline(); // an open tunnel may stay quiet as long as it likes
          const failed = status >= 500;
          telemetry.attempt(failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${status}` : undefined);
          if (failed) t.failure();
          else t.success();
        },
      });
      rec.bytesIn = result.bytesIn;
      rec.bytesOut = result.bytesOut;
      if (result.status !== null) {
        rec.status = result.status;
        if (life.endedBy === 'shutdown') rec.error = 'draining';
      } else if (life.ended) {
        if (life.endedBy === 'deadline') {
          telemetry.attempt('timeout', 'no handshake answer before TIMEOUT');
          t.failure();
        }
        this.endedEarly(rec, life.endedBy!, reply, rateHeaders, () => socket.destroy());
      } else {
        telemetry.attempt(result.failure, result.message);
        t.failure();
        const err =
          result.failure === 'connect_error'
            ? new ProxyError('upstream_unreachable', `The upstream could not be reached (${result.message}).`)
            : new ProxyError('upstream_protocol', `The upstream broke the connection before answering (${result.message}).`);
        this.fail(rec, reply, err, rateHeaders);
      }
    } catch (err) {
      this.failed(rec, err, rateHeaders, reply, socket);
    } finally {
      release?.();
      ticket?.release();
      life.finish();
      rec.durationMs = clock.now() - started;
      telemetry.requestFinished(rec);
    }
  }

  /** Attempts under the TIMEOUT deadline, retried as the policy allows. */
  private async attempts(req: IncomingMessage, rec: Rec, body: RequestBody, life: Lifetime, ticket: BreakerTicket, keysOn: boolean): Promise<Answer> {
    const { config, clock, breaker, budget, telemetry } = this.p;
    const upstreamReq: UpstreamRequest = {
      method: rec.method,
      path: this.target.basePath + rec.path,
      headers: toUpstreamHeaders(req.headers, this.forwardContext(req, rec, keysOn, this.p.config.upstreamHttp2)),
      body,
    };
    let holdingRetry = false;
    const parts = this.attemptParts;
    try {
      const result = await retry<Answer>(
        () => {
          rec.attempts++;
          return attempt(parts, upstreamReq, life, ticket);
        },
        {
          maxRetries: ticket.probe ? 0 : config.maxRetries,
          backoffMs: (n) => backoffDelayMs(n, { baseMs: config.retryDelayMs, maxMs: config.retryMaxDelayMs }, this.p.random),
          clock,
          deadline: clock.now() + config.timeoutMs,
          cancel: life.cancel,
          mayRetry: (reason) => {
            // a streamed body is not kept: only a connection that never opened left it unread
            if (body.kind === 'streaming' && reason !== 'connect_error') return false;
            if (breaker !== null && breaker.snapshot(clock.now()).state !== 'closed') return false;
            if (!holdingRetry) holdingRetry = budget.tryAcquireRetry();
            return holdingRetry;
          },
          onRetry: (_n, reason) => {
            telemetry.retry(reason);
            life.enter('backoff');
          },
        },
      );
      return result.value;
    } finally {
      if (holdingRetry) budget.releaseRetry();
    }
  }

  /** Gives the client its answer and completes the record. */
  private async answer(res: ServerResponse, rec: Rec, answer: Answer, rateHeaders: RateHeaders, life: Lifetime, reply: Reply): Promise<void> {
    // an early end decides, whatever the last attempt said: a client that left during a
    // backoff is 499, not the 503 that was waiting to be retried
    if (life.ended) {
      if (answer.kind === 'stream') answer.up.abort();
      return this.endedEarly(rec, life.endedBy!, reply, rateHeaders, () => res.destroy());
    }
    if (answer.kind === 'ended') throw new Error('an attempt reported an early end the lifetime does not know of');
    if (answer.kind === 'error') return this.fail(rec, reply, answer.error, rateHeaders);
    if (answer.kind === 'held') {
      const headers = toClientHeaders(answer.headers, rec.requestId);
      headers['content-length'] = answer.body.length;
      Object.assign(headers, rateHeaders);
      // the proxy already retried this 5xx: the SDKs should not multiply it
      if (rec.attempts > 1) headers['x-should-retry'] = 'false';
      res.writeHead(answer.status, headers);
      life.markFirstByte();
      res.end(answer.body);
      rec.status = answer.status;
      rec.bytesOut = answer.body.length;
      rec.error = `upstream_${answer.status}`;
      return;
    }
    const { up } = answer;
    life.holdUpstream(up);
    life.answerBegan(this.p.config.timeoutMs);
    rec.status = up.status;
    const meter = usageMeter(up.status, up.headers);
    const relayed = await relayResponse(up, res, { requestId: rec.requestId, idleTimeoutMs: this.p.config.timeoutMs, ...(rateHeaders ? { extraHeaders: rateHeaders } : {}), ...(meter ? { onChunk: meter } : {}) }, life);
    rec.stream = relayed.sse;
    rec.bytesOut = relayed.bytesOut;
    if (relayed.sse) this.p.telemetry.streamEnded(relayed.outcome);
    if (relayed.outcome === 'idle_timeout') rec.error = 'upstream_timeout';
    else if (relayed.outcome === 'upstream_broken') rec.error = 'upstream_stream_broken';
    else if (relayed.outcome === 'shutdown') rec.error = 'draining';
    else if (relayed.outcome === 'client_gone') this.gone(rec);
    if (meter !== null) {
      const usage = meter.usage();
      rec.promptTokens = usage?.promptTokens ?? null;
      rec.completionTokens = usage?.completionTokens ?? null;
      rec.model ??= meter.model();
    }
  }

  /**
   * The one place an early end becomes an answer: a client that left gets nothing (its
   * connection is gone) and is 499 in the record; TIMEOUT is 504; shutdown is 503 `draining`.
   */
  private endedEarly(rec: Rec, reason: EndReason, reply: Reply, rateHeaders: RateHeaders, cut: () => void): void {
    if (reason === 'client_gone') {
      cut();
      this.gone(rec);
    } else if (reason === 'deadline') {
      this.fail(rec, reply, new ProxyError('upstream_timeout', `The upstream did not answer within ${this.p.config.timeoutMs / 1000}s.`), rateHeaders);
    } else {
      this.fail(rec, reply, new ProxyError('draining', 'The proxy is shutting down; send the request again.'), rateHeaders);
    }
  }

  /** Whatever a phase threw: an early end, a refusal, or the proxy's own bug. */
  private failed(rec: Rec, err: unknown, rateHeaders: RateHeaders, reply: Reply, conn: { destroy(): void }): void {
    if (err instanceof Ended) return this.endedEarly(rec, err.reason, reply, rateHeaders, () => conn.destroy());
    if (err instanceof GateRejected) {
      const message = err.reason === 'queue_full' ? 'Too many requests are waiting for the upstream.' : 'Waited too long for a free upstream slot.';
      return this.fail(rec, reply, new ProxyError('queue_full', message, { retryAfterSec: err.retryAfterMs / 1000 }), rateHeaders);
    }
    if (err instanceof ProxyError) return this.fail(rec, reply, err, rateHeaders);
    this.p.logger.error('the proxy failed while handling a request', { request_id: rec.requestId, err: err as Error, stack: (err as Error | undefined)?.stack ?? String(err) });
    this.fail(rec, reply, new ProxyError('internal', 'The proxy failed while handling this request.'), rateHeaders);
  }

  private refuse(rec: Rec, reply: Reply, err: ProxyError, rateHeaders: RateHeaders): void {
    if (err.kind === 'rate_limited') this.p.telemetry.rateLimited();
    this.fail(rec, reply, err, rateHeaders);
  }

  private fail(rec: Rec, reply: Reply, err: ProxyError, rateHeaders: RateHeaders): void {
    rec.error = err.code;
    rec.status = reply(err, rateHeaders);
  }

  /** The client left: 499 in the record (nginx's code for it), in whatever phase. */
  private gone(rec: Rec): void {
    rec.error = 'client_gone';
    rec.status = 499;
  }

  /** Header hygiene for both the forwarded request and the tunnel's handshake: one context, one function. */
  private forwardContext(req: IncomingMessage, rec: Rec, keysOn: boolean, http2: boolean): ForwardContext {
    const { config } = this.p;
    // X-Forwarded-For gets the peer this proxy heard from (behind a trusted balancer, the
    // balancer), never the client address already taken from the chain: that would repeat it
    return { clientIp: req.socket.remoteAddress ?? 'unknown', trustProxy: config.trustProxy, requestId: rec.requestId, upstreamHost: this.target.host, http2, credentials: credentialPolicy(config, keysOn) };
  }

  private record(req: IncomingMessage): Rec {
    const url = req.url ?? '/';
    return {
      requestId: requestIdFor(req.headers['x-request-id']),
      client: clientAddress(req, this.p.config.trustProxy),
      method: req.method ?? 'GET',
      path: url,
      endpoint: routeTemplate(url),
      model: null,
      stream: false,
      status: 0,
      durationMs: 0,
      ttfbMs: null,
      attempts: 0,
      bytesIn: 0,
      bytesOut: 0,
      promptTokens: null,
      completionTokens: null,
      error: null,
    };
  }
}
