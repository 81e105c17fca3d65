/**
 * One forwarded request, start to end:
 *   limit (per client) → breaker (fail fast) → body (bounded, kept for replay) → gate
 *   (concurrency) → retry(attempt) under the TIMEOUT deadline → relay the answer → record.
 * Policy lives in the resilience modules; the wire in the transport and the relay. This
 * file only wires them together and turns each outcome into exactly one answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { ProxyError, renderError } from './errors.js';
import { toClientHeaders, toUpstreamHeaders, type ForwardContext } from './http/headers.js';
import { presentedKey } from './http/credentials.js';
import type { ApiKeys } from './security/api-keys.js';
import { clientAddress, clientKey } from './http/client-identity.js';
import { ClientGone, readRequestBody, type RequestBody } from './http/request-body.js';
import { requestIdFor } from './http/request-id.js';
import type { Logger } from './logging/logger.js';
import { backoffDelayMs } from './resilience/backoff.js';
import type { CircuitBreaker } from './resilience/circuit-breaker.js';
import { GateRejected, type ConcurrencyGate, type Release } from './resilience/concurrency-gate.js';
import type { RateLimiter } from './resilience/rate-limiter.js';
import { retry, type Verdict } from './resilience/retry.js';
import type { RetryBudget } from './resilience/retry-budget.js';
import { retryAfterMs } from './resilience/retry-after.js';
import { routeTemplate } from './http/route-template.js';
import type { Telemetry } from './observe/telemetry.js';
import { requestFacts } from './observe/request-facts.js';
import { SseUsageWatcher, usageFromJson, type Usage } from './observe/usage.js';
import { relayResponse, type RelayOutcome } from './upstream/relay.js';
import { UpstreamFailure, type Transport, type UpstreamRequest, type UpstreamResponse } from './upstream/transport.js';
import { formatDuration } from './http/duration.js';

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

/** Why the attempt signal fired. */
const CLIENT_GONE = new ClientGone();
class DeadlinePassed extends Error {}
const DEADLINE = new DeadlinePassed('the upstream did not begin its answer in time');

/** A 5xx that may be retried is read whole (it is small) so the last one can still be passed on. */
const MAX_HELD_ERROR_BODY = 64 * 1024;

type Answer =
  | { readonly kind: 'stream'; readonly up: UpstreamResponse }
  | { readonly kind: 'held'; readonly status: number; readonly headers: UpstreamResponse['headers']; readonly body: Buffer }
  | { readonly kind: 'error'; readonly error: ProxyError }
  | { readonly kind: 'gone' };

/** Upstream statuses worth asking again: the server said it could not take the request now. */
const RETRY_STATUSES = new Set([502, 503]);

export function sendError(res: ServerResponse, err: ProxyError, requestId: string, extra?: Record<string, string>): number {
  if (res.headersSent) {
    res.destroy();
    return err.status;
  }
  const body = renderError(err);
  res.writeHead(err.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    ...extra,
    ...err.responseHeaders(),
    // the rest of an oversized or stalled body is never read: the connection cannot be reused
    ...(err.kind === 'body_too_large' || err.kind === 'request_timeout' ? { connection: 'close' } : {}),
  });
  res.end(body);
  return err.status;
}

export class ProxyHandler {
  private readonly upstreamBase: string;
  private readonly upstreamHost: string;

  constructor(private readonly p: ProxyParts) {
    const u = p.config.upstreamUrl;
    this.upstreamBase = u.pathname.replace(/\/+$/, '');
    this.upstreamHost = u.host;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { config, clock, telemetry } = this.p;
    const started = clock.now();
    const requestId = requestIdFor(req.headers['x-request-id']);
    const client = clientAddress(req, config.trustProxy);
    const url = req.url ?? '/';
    telemetry.requestStarted();
    this.p.budget.requestStarted();
    let status = 0;
    let attempts = 0;
    let bytesIn = 0;
    let bytesOut = 0;
    let ttfbMs: number | null = null;
    let streamed = false;
    let model: string | null = null;
    let usage: Usage | null = null;
    let error: string | null = null;
    let release: Release | null = null;
    let probe = false;
    let breakerVerdict = false;
    try {
      // 0. who is asking, when keys are required
      const keys = this.p.apiKeys();
      let keyId: string | null = null;
      if (keys !== null) {
        const presented = presentedKey(req.headers);
        keyId = keys.match(presented);
        if (keyId === null) {
          error = 'invalid_api_key';
          status = sendError(res, new ProxyError('unauthorized', presented === undefined ? 'You did not provide an API key. Send it as "Authorization: Bearer <key>".' : 'Incorrect API key provided.'), requestId);
          return;
        }
      }
      // 1. the client's bucket
      let rateHeaders: Record<string, string> | undefined;
      if (this.p.limiter !== null) {
        const d = this.p.limiter.check(clientKey(req, client, keyId), started);
        rateHeaders = {
          'x-ratelimit-limit-requests': String(d.limit),
          'x-ratelimit-remaining-requests': String(d.remaining),
          'x-ratelimit-reset-requests': formatDuration(d.resetMs),
        };
        if (!d.allowed) {
          telemetry.rateLimited();
          error = 'rate_limited';
          status = sendError(res, new ProxyError('rate_limited', `Rate limit reached for this client: ${d.limit} requests per ${config.rateLimitWindowSec}s. Please try again in ${formatDuration(d.retryAfterMs)}.`, { retryAfterSec: d.retryAfterMs / 1000 }), requestId, rateHeaders);
          return;
        }
      }
      // 2. the breaker
      if (this.p.breaker !== null) {
        const a = this.p.breaker.admit(clock.now());
        if (a.kind === 'reject') {
          error = 'circuit_open';
          status = sendError(res, new ProxyError('circuit_open', 'The upstream is failing; the proxy is refusing requests until it recovers.', { retryAfterSec: a.retryAfterMs / 1000 }), requestId, rateHeaders);
          return;
        }
        probe = a.kind === 'probe';
      }
      // 3. the body
      let body: RequestBody;
      try {
        body = await readRequestBody(req, { maxReplayBytes: config.maxReplayBodyBytes, maxBodyBytes: config.maxRequestBodyBytes, idleTimeoutMs: config.clientTimeoutMs });
      } catch (err) {
        if (err instanceof ProxyError) {
          error = err.code;
          status = sendError(res, err, requestId, rateHeaders);
        } else {
          error = 'client_gone';
          status = 499;
        }
        return;
      }
      bytesIn = body.kind === 'buffered' ? body.data.length : body.headBytes;
      const facts = requestFacts(body.kind === 'buffered' ? body.data : body.head[0]!, req.headers['content-type']);
      model = facts.model;

      // 4. the client may leave from here on: stop everything for nobody
      const ctl = new AbortController();
      const onClientClose = (): void => {
        if (!res.writableFinished) ctl.abort(CLIENT_GONE);
      };
      res.on('close', onClientClose);

      // 5. a slot toward the upstream
      if (this.p.gate !== null) {
        try {
          release = await this.p.gate.acquire(ctl.signal);
        } catch (err) {
          if (err instanceof GateRejected) {
            error = 'queue_full';
            status = sendError(res, new ProxyError('queue_full', err.reason === 'queue_full' ? 'Too many requests are waiting for the upstream.' : 'Waited too long for a free upstream slot.', { retryAfterSec: err.retryAfterMs / 1000 }), requestId, rateHeaders);
          } else {
            error = 'client_gone';
            status = 499;
          }
          return;
        }
      }

      // 6. attempts under the deadline
      const deadline = clock.now() + config.timeoutMs;
      const timer = new AbortController();
      clock.sleep(config.timeoutMs, timer.signal).then(() => ctl.abort(DEADLINE), () => {});
      const upstreamReq: UpstreamRequest = {
        method: req.method ?? 'GET',
        path: this.upstreamBase + url,
        headers: toUpstreamHeaders(req.headers, { clientIp: client, trustProxy: config.trustProxy, requestId, upstreamHost: this.upstreamHost, http2: config.upstreamHttp2, credentials: credentialPolicy(config, keys !== null) }),
        body,
      };
      let holdingRetry = false;
      const result = await retry<Answer>((n) => this.attempt(upstreamReq, ctl.signal, n === 1 && probe, (v) => (breakerVerdict ||= v)), {
        maxRetries: probe ? 0 : config.maxRetries,
        backoffMs: (n) => backoffDelayMs(n, { baseMs: config.retryDelayMs, maxMs: config.retryMaxDelayMs }, this.p.random),
        clock,
        deadline,
        signal: ctl.signal,
        mayRetry: () => {
          if (body.kind === 'streaming') return false;
          if (this.p.breaker !== null && this.p.breaker.snapshot(clock.now()).state !== 'closed') return false;
          if (!holdingRetry) holdingRetry = this.p.budget.tryAcquireRetry();
          return holdingRetry;
        },
        onRetry: (_n, reason) => telemetry.retry(reason),
      });
      timer.abort(); // the answer has begun (or never will): TIMEOUT no longer applies
      if (holdingRetry) this.p.budget.releaseRetry();
      attempts = result.attempts;
      const answer = result.value;
      const retried = attempts > 1;
      ttfbMs = clock.now() - started;
      res.off('close', onClientClose);
      if (answer.kind === 'gone') {
        error = 'client_gone';
        status = 499;
        return;
      }
      if (answer.kind === 'error') {
        error = answer.error.code;
        status = sendError(res, answer.error, requestId, rateHeaders);
        return;
      }
      const extra: Record<string, string> = { ...rateHeaders };
      if (retried && answer.kind === 'held' && answer.status >= 500) extra['x-should-retry'] = 'false';
      if (answer.kind === 'held') {
        status = answer.status;
        const headers = toClientHeaders(answer.headers, requestId);
        headers['content-length'] = answer.body.length;
        res.writeHead(answer.status, { ...headers, ...extra });
        res.end(answer.body);
        bytesOut = answer.body.length;
        if (answer.status >= 500) error = `upstream_${answer.status}`;
        return;
      }
      status = answer.up.status;
      const meter = usageMeter(answer.up);
      const relayed = await relayResponse(answer.up, res, { requestId, idleTimeoutMs: config.timeoutMs, extraHeaders: extra, ...(meter ? { onChunk: meter.push } : {}) });
      streamed = relayed.sse;
      bytesOut = relayed.bytesOut;
      if (relayed.sse) telemetry.streamEnded(relayed.outcome);
      if (relayed.outcome !== 'complete') error = relayErrorCode(relayed.outcome);
      if (meter) {
        usage = meter.usage();
        model ??= meter.model();
      }
    } catch (err) {
      this.p.logger.error('request failed unexpectedly', { request_id: requestId, err: err as Error });
      error = 'internal';
      status = sendError(res, new ProxyError('upstream_protocol', 'The proxy failed while handling this request.'), requestId);
    } finally {
      release?.();
      if (probe && !breakerVerdict) this.p.breaker?.recordAbandoned(true);
      this.p.budget.requestEnded();
      telemetry.requestFinished({
        requestId,
        client,
        method: req.method ?? 'GET',
        path: url,
        endpoint: routeTemplate(url),
        model,
        stream: streamed,
        status,
        durationMs: clock.now() - started,
        ttfbMs,
        attempts,
        bytesIn,
        bytesOut,
        promptTokens: usage?.promptTokens ?? null,
        completionTokens: usage?.completionTokens ?? null,
        error,
      });
    }
  }

  /** One attempt, turned into a verdict for the retry loop; the breaker and stats hear its outcome. */
  private async attempt(r: UpstreamRequest, signal: AbortSignal, isProbe: boolean, judged: (v: boolean) => void): Promise<Verdict<Answer>> {
    const { telemetry: stats, breaker, clock } = this.p;
    let up: UpstreamResponse;
    try {
      up = await this.p.transport.send(r, signal);
    } catch (err) {
      if (signal.reason === CLIENT_GONE || err === CLIENT_GONE) return { kind: 'final', value: { kind: 'gone' } };
      if (err === DEADLINE || signal.reason === DEADLINE) {
        stats.attempt('timeout', 'no answer before TIMEOUT');
        breaker?.recordFailure(clock.now(), isProbe);
        judged(true);
        return { kind: 'final', value: { kind: 'error', error: new ProxyError('upstream_timeout', `The upstream did not answer within ${this.p.config.timeoutMs / 1000}s.`) } };
      }
      if (err instanceof ProxyError) return { kind: 'final', value: { kind: 'error', error: err } };
      if (!(err instanceof UpstreamFailure)) throw err;
      if (err.details.staleConnection) {
        return { kind: 'retry', reason: 'stale_connection', immediate: true, value: { kind: 'error', error: new ProxyError('upstream_protocol', 'The upstream closed the connection before answering.') } };
      }
      stats.attempt(err.outcome === 'protocol' ? 'protocol' : err.outcome === 'timeout' ? 'timeout' : err.outcome, err.message);
      breaker?.recordFailure(clock.now(), isProbe);
      judged(true);
      if (err.outcome === 'connect_error') {
        return { kind: 'retry', reason: 'connect_error', value: { kind: 'error', error: new ProxyError('upstream_unreachable', `The upstream could not be reached (${err.message}).`) } };
      }
      const broke = new ProxyError('upstream_protocol', `The upstream broke the connection before answering (${err.message}).`);
      if (err.outcome === 'reset') return { kind: 'retry', reason: 'reset', value: { kind: 'error', error: broke } };
      return { kind: 'final', value: { kind: 'error', error: broke } };
    }
    const failed = up.status >= 500;
    stats.attempt(failed ? 'http_5xx' : 'ok', failed ? `upstream answered ${up.status}` : undefined);
    if (failed) breaker?.recordFailure(clock.now(), isProbe);
    else breaker?.recordSuccess(clock.now(), isProbe);
    judged(true);
    if (!RETRY_STATUSES.has(up.status)) return { kind: 'final', value: { kind: 'stream', up } };
    const held = await readSmallBody(up, MAX_HELD_ERROR_BODY);
    if (held === null) return { kind: 'final', value: { kind: 'stream', up } };
    const value: Answer = { kind: 'held', status: up.status, headers: up.headers, body: held };
    const wait = retryAfterMs(up.headers, Date.now());
    return wait === undefined ? { kind: 'retry', reason: `http_${up.status}`, value } : { kind: 'retry', reason: `http_${up.status}`, value, retryAfterMs: wait };
  }
}

/**
 * Watches a successful answer for its token usage as it passes: SSE through the stream
 * watcher; JSON by keeping only its last two chunks (usage is written last, and only that
 * small object is parsed). Other answers are not watched.
 */
function usageMeter(up: UpstreamResponse): { push: (c: Buffer) => void; usage: () => Usage | null; model: () => string | null } | null {
  if (up.status < 200 || up.status >= 300) return null;
  const type = up.headers['content-type'] ?? '';
  if (type.startsWith('text/event-stream')) {
    const w = new SseUsageWatcher();
    return { push: (c) => w.push(c), usage: () => w.usage(), model: () => w.model() };
  }
  if (!type.startsWith('application/json')) return null;
  let prev: Buffer | null = null;
  let last: Buffer | null = null;
  return {
    push: (c) => {
      prev = last;
      last = c;
    },
    usage: () => (last === null ? null : usageFromJson(prev === null ? last : Buffer.concat([prev, last]))),
    model: () => null,
  };
}

function relayErrorCode(outcome: RelayOutcome): string {
  return outcome === 'idle_timeout' ? 'upstream_timeout' : outcome === 'client_gone' ? 'client_gone' : 'upstream_stream_broken';
}

/** Reads a body of at most `limit` bytes; null (and the stream left as is) when it is larger or breaks. */
function readSmallBody(up: UpstreamResponse, limit: number): Promise<Buffer | null> {
  const declared = Number(up.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(null);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (v: Buffer | null): void => {
      up.body.off('data', onData);
      up.body.off('end', onEnd);
      up.body.off('close', onClose);
      resolve(v);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      chunks.push(c);
      if (size > limit) {
        up.abort();
        done(null);
      }
    };
    const onEnd = (): void => done(Buffer.concat(chunks, size));
    const onClose = (): void => {
      if (!up.body.readableEnded) done(Buffer.concat(chunks, size));
    };
    up.body.on('data', onData);
    up.body.on('end', onEnd);
    up.body.on('close', onClose);
    up.body.on('error', () => {});
  });
}
