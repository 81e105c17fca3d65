/**
 * One forwarded request, start to end:
 *   admission (key, bucket, breaker) → body (bounded, kept for replay) → gate (concurrency)
 *   → retry(attempt) under the TIMEOUT deadline → relay the answer → one record.
 * Every phase runs under the request's Lifetime (lifetime.ts): a client that leaves, TIMEOUT
 * and shutdown end the request through it in any phase, and Outcomes (outcomes.ts) alone
 * turns that, a refusal or an exception into the answer and the record. The request's
 * standing with the breaker is its BreakerTicket, released whatever happens.
 *
 * Policy lives in the resilience modules, the wire in the transport and the relay; this
 * file wires them together. WebSocket upgrades pass the same admission, queue and breaker
 * (upgrade.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { toClientHeaders, toUpstreamHeaders } from '../http/headers.js';
import { readRequestBody, type BodyLimits, type RequestBody } from '../http/request-body.js';
import { sendError } from '../http/send-error.js';
import type { Logger } from '../logging/logger.js';
import { requestFacts } from '../observe/request-facts.js';
import type { Telemetry } from '../observe/telemetry.js';
import { backoffDelayMs } from '../resilience/backoff.js';
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import type { ConcurrencyGate, Release } from '../resilience/concurrency-gate.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import { retry } from '../resilience/retry.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { ApiKeys } from '../security/api-keys.js';
import { relayResponse } from '../upstream/relay.js';
import { upstreamTarget, type UpstreamTarget } from '../upstream/target.js';
import type { Transport, UpstreamRequest } from '../upstream/transport.js';
import { admit, type AdmissionParts } from './admission.js';
import { attempt, type Answer, type AttemptParts } from './attempt.js';
import { BreakerTicket } from './breaker-ticket.js';
import { forwardContext } from './forwarding.js';
import { Lifetimes, type Lifetime } from './lifetime.js';
import { newRecord, Outcomes, type RateHeaders, type Rec, type Reply } from './outcomes.js';
import { UpgradeHandler } from './upgrade.js';
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

export class ProxyHandler {
  /** Every request alive now (shutdown ends them, /stats counts them by phase). */
  readonly lifetimes: Lifetimes;
  private readonly target: UpstreamTarget;
  private readonly admission: AdmissionParts;
  private readonly attemptParts: AttemptParts;
  private readonly bodyLimits: BodyLimits;
  private readonly outcomes: Outcomes;
  private readonly upgrades: UpgradeHandler;

  constructor(private readonly p: ProxyParts) {
    const { config, clock } = p;
    this.lifetimes = new Lifetimes(clock);
    this.target = upstreamTarget(config.upstreamUrl);
    this.admission = { apiKeys: p.apiKeys, limiter: p.limiter, breaker: p.breaker, rateLimitWindowSec: config.rateLimitWindowSec };
    this.attemptParts = { transport: p.transport, telemetry: p.telemetry, clock };
    this.bodyLimits = { maxReplayBytes: config.maxReplayBodyBytes, maxBodyBytes: config.maxRequestBodyBytes, idleTimeoutMs: config.clientTimeoutMs, clock };
    this.outcomes = new Outcomes(config.timeoutMs, p.logger, p.telemetry);
    this.upgrades = new UpgradeHandler(p, this.lifetimes, this.target, this.admission, this.outcomes);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { clock, telemetry, budget, config } = this.p;
    const started = clock.now();
    const life = this.lifetimes.begin();
    life.watchClient(res);
    const rec = newRecord(req, config.trustProxy);
    const reply: Reply = (err, extra) => sendError(res, err, rec.requestId, extra);
    telemetry.requestStarted();
    budget.requestStarted();
    let release: Release | null = null;
    let ticket: BreakerTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = admit(this.admission, req, rec.client, started);
      rateHeaders = admission.rateHeaders;
      if (!admission.ok) return this.outcomes.refuse(rec, reply, admission.error, rateHeaders);
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
      this.outcomes.failed(rec, err, reply, rateHeaders, res);
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

  /** A WebSocket upgrade under `/v1/` (upgrade.ts): the same admission, queue and breaker. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    return this.upgrades.handle(req, socket, head);
  }

  /** Attempts under the TIMEOUT deadline, retried as the policy allows. */
  private async attempts(req: IncomingMessage, rec: Rec, body: RequestBody, life: Lifetime, ticket: BreakerTicket, keysOn: boolean): Promise<Answer> {
    const { config, clock, breaker, budget, telemetry } = this.p;
    const upstreamReq: UpstreamRequest = {
      method: rec.method,
      path: this.target.basePath + rec.path,
      headers: toUpstreamHeaders(req.headers, forwardContext(config, this.target, req, rec.requestId, keysOn, config.upstreamHttp2)),
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
      return this.outcomes.endedEarly(rec, life.endedBy!, reply, rateHeaders, () => res.destroy());
    }
    if (answer.kind === 'ended') throw new Error('an attempt reported an early end the lifetime does not know of');
    if (answer.kind === 'error') return this.outcomes.fail(rec, reply, answer.error, rateHeaders);
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
    const relayed = await relayResponse(up, res, { requestId: rec.requestId, path: rec.path, idleTimeoutMs: this.p.config.timeoutMs, ...(rateHeaders ? { extraHeaders: rateHeaders } : {}), ...(meter ? { onChunk: meter } : {}) }, life);
    rec.stream = relayed.sse;
    rec.bytesOut = relayed.bytesOut;
    if (relayed.sse) this.p.telemetry.streamEnded(relayed.outcome);
    if (relayed.outcome === 'idle_timeout') rec.error = 'upstream_timeout';
    else if (relayed.outcome === 'upstream_broken') rec.error = 'upstream_stream_broken';
    else if (relayed.outcome === 'shutdown') rec.error = 'draining';
    else if (relayed.outcome === 'client_gone') this.outcomes.gone(rec);
    if (meter !== null) {
      const usage = meter.usage();
      rec.promptTokens = usage?.promptTokens ?? null;
      rec.completionTokens = usage?.completionTokens ?? null;
      rec.model ??= meter.model();
    }
  }
}
