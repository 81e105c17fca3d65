/**
 * One forwarded request, start to end:
 *   admission (key, bucket, breaker) → body (bounded, kept for replay) → gate (concurrency)
 *   → retry(attempt) under the TIMEOUT deadline → relay the answer → one record.
 * Policy lives in the resilience modules, the wire in the transport and the relay; this
 * file wires them together and turns each outcome into exactly one answer and one record.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Cancel } from '../cancel.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { ProxyError } from '../errors.js';
import { clientAddress } from '../http/client-identity.js';
import { toClientHeaders, toUpstreamHeaders, type ForwardContext } from '../http/headers.js';
import { readRequestBody, type RequestBody } from '../http/request-body.js';
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
import type { Transport, UpstreamRequest } from '../upstream/transport.js';
import { admit, type AdmissionParts } from './admission.js';
import { attempt, CLIENT_GONE, DEADLINE, type Answer, type AttemptParts } from './attempt.js';
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

export class ProxyHandler {
  private readonly upstreamBase: string;
  private readonly upstreamHost: string;
  private readonly admission: AdmissionParts;
  private readonly attemptParts: AttemptParts;

  constructor(private readonly p: ProxyParts) {
    const u = p.config.upstreamUrl;
    this.upstreamBase = u.pathname.replace(/\/+$/, '');
    this.upstreamHost = u.host;
    this.admission = { apiKeys: p.apiKeys, limiter: p.limiter, breaker: p.breaker, rateLimitWindowSec: p.config.rateLimitWindowSec };
    this.attemptParts = { transport: p.transport, telemetry: p.telemetry, breaker: p.breaker, clock: p.clock, timeoutMs: p.config.timeoutMs };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { clock, telemetry, budget } = this.p;
    const started = clock.now();
    const url = req.url ?? '/';
    const rec: Mutable<RequestRecord> = {
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
    const fail = (err: ProxyError, extra?: Record<string, string>): void => {
      rec.error = err.code;
      rec.status = sendError(res, err, rec.requestId, extra);
    };
    telemetry.requestStarted();
    budget.requestStarted();
    let release: Release | null = null;
    let probe = false;
    let judged = false;
    try {
      const admission = admit(this.admission, req, rec.client, started);
      if (!admission.ok) {
        if (admission.error.kind === 'rate_limited') telemetry.rateLimited();
        return fail(admission.error, admission.rateHeaders);
      }
      probe = admission.probe;
      let body = await this.readBody(req, rec, fail);
      if (body === null) return;
      // from here on, a client that leaves stops everything it started
      const cancel = new Cancel();
      const onClientClose = (): void => {
        if (!res.writableFinished) cancel.abort(CLIENT_GONE);
      };
      res.on('close', onClientClose);
      if (this.p.gate !== null) {
        try {
          release = await this.p.gate.acquire(cancel.signal);
        } catch (err) {
          if (!(err instanceof GateRejected)) return this.gone(rec);
          const message = err.reason === 'queue_full' ? 'Too many requests are waiting for the upstream.' : 'Waited too long for a free upstream slot.';
          return fail(new ProxyError('queue_full', message, { retryAfterSec: err.retryAfterMs / 1000 }), admission.rateHeaders);
        }
      }
      const answer = await this.attempts(req, rec, body, cancel, probe, admission.keysOn, () => (judged = true));
      body = null; // not held while the answer streams, for minutes maybe
      res.off('close', onClientClose);
      rec.ttfbMs = clock.now() - started;
      await this.answer(res, rec, answer, admission.rateHeaders);
    } catch (err) {
      this.p.logger.error('request failed unexpectedly', { request_id: rec.requestId, err: err as Error });
      fail(new ProxyError('upstream_protocol', 'The proxy failed while handling this request.'));
    } finally {
      release?.();
      if (probe && !judged) this.p.breaker?.recordAbandoned(true);
      budget.requestEnded();
      rec.durationMs = clock.now() - started;
      telemetry.requestFinished(rec);
    }
  }

  private async readBody(req: IncomingMessage, rec: Mutable<RequestRecord>, fail: (err: ProxyError) => void): Promise<RequestBody | null> {
    const { config } = this.p;
    let body: RequestBody;
    try {
      body = await readRequestBody(req, { maxReplayBytes: config.maxReplayBodyBytes, maxBodyBytes: config.maxRequestBodyBytes, idleTimeoutMs: config.clientTimeoutMs });
    } catch (err) {
      if (err instanceof ProxyError) fail(err);
      else this.gone(rec);
      return null;
    }
    rec.bytesIn = body.kind === 'buffered' ? body.data.length : body.headBytes;
    rec.model = requestFacts(body.kind === 'buffered' ? body.data : body.head[0]!, req.headers['content-type']).model;
    return body;
  }

  /** Attempts under the TIMEOUT deadline, retried as the policy allows. */
  private async attempts(req: IncomingMessage, rec: Mutable<RequestRecord>, body: RequestBody, cancel: Cancel, probe: boolean, keysOn: boolean, judged: () => void): Promise<Answer> {
    const { config, clock, breaker, budget, telemetry } = this.p;
    const cancelDeadline = clock.timer(config.timeoutMs, () => cancel.abort(DEADLINE));
    const upstreamReq: UpstreamRequest = {
      method: rec.method,
      path: this.upstreamBase + rec.path,
      headers: toUpstreamHeaders(req.headers, { clientIp: rec.client, trustProxy: config.trustProxy, requestId: rec.requestId, upstreamHost: this.upstreamHost, http2: config.upstreamHttp2, credentials: credentialPolicy(config, keysOn) }),
      body,
    };
    let holdingRetry = false;
    const parts = this.attemptParts;
    const result = await retry<Answer>((n) => attempt(parts, upstreamReq, cancel, n === 1 && probe, judged), {
      maxRetries: probe ? 0 : config.maxRetries,
      backoffMs: (n) => backoffDelayMs(n, { baseMs: config.retryDelayMs, maxMs: config.retryMaxDelayMs }, this.p.random),
      clock,
      deadline: clock.now() + config.timeoutMs,
      cancel,
      mayRetry: (reason) => {
        // a streamed body is not kept: only a connection that never opened left it unread
        if (body.kind === 'streaming' && reason !== 'connect_error') return false;
        if (breaker !== null && breaker.snapshot(clock.now()).state !== 'closed') return false;
        if (!holdingRetry) holdingRetry = budget.tryAcquireRetry();
        return holdingRetry;
      },
      onRetry: (_n, reason) => telemetry.retry(reason),
    });
    cancelDeadline(); // the answer has begun (or never will): TIMEOUT no longer applies
    if (holdingRetry) budget.releaseRetry();
    rec.attempts = result.attempts;
    return result.value;
  }

  /** Gives the client its answer and completes the record. */
  private async answer(res: ServerResponse, rec: Mutable<RequestRecord>, answer: Answer, rateHeaders: Record<string, string> | undefined): Promise<void> {
    if (answer.kind === 'gone') return this.gone(rec);
    if (answer.kind === 'error') {
      rec.error = answer.error.code;
      rec.status = sendError(res, answer.error, rec.requestId, rateHeaders);
      return;
    }
    if (answer.kind === 'held') {
      const headers = toClientHeaders(answer.headers, rec.requestId);
      headers['content-length'] = answer.body.length;
      Object.assign(headers, rateHeaders);
      // the proxy already retried this 5xx: the SDKs should not multiply it
      if (rec.attempts > 1) headers['x-should-retry'] = 'false';
      res.writeHead(answer.status, headers);
      res.end(answer.body);
      rec.status = answer.status;
      rec.bytesOut = answer.body.length;
      rec.error = `upstream_${answer.status}`;
      return;
    }
    const { up } = answer;
    rec.status = up.status;
    const meter = usageMeter(up.status, up.headers);
    const relayed = await relayResponse(up, res, { requestId: rec.requestId, idleTimeoutMs: this.p.config.timeoutMs, ...(rateHeaders ? { extraHeaders: rateHeaders } : {}), ...(meter ? { onChunk: meter } : {}) });
    rec.stream = relayed.sse;
    rec.bytesOut = relayed.bytesOut;
    if (relayed.sse) this.p.telemetry.streamEnded(relayed.outcome);
    if (relayed.outcome === 'idle_timeout') rec.error = 'upstream_timeout';
    else if (relayed.outcome === 'upstream_broken') rec.error = 'upstream_stream_broken';
    else if (relayed.outcome === 'client_gone') rec.error = 'client_gone';
    if (meter !== null) {
      const usage = meter.usage();
      rec.promptTokens = usage?.promptTokens ?? null;
      rec.completionTokens = usage?.completionTokens ?? null;
      rec.model ??= meter.model();
    }
  }

  /** The client left before an answer: 499 in the record (nginx's code for it), nothing sent. */
  private gone(rec: Mutable<RequestRecord>): void {
    rec.error = 'client_gone';
    rec.status = 499;
  }
}
