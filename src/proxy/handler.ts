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
import { pathOf } from '../own-endpoints.js';
import { backoffDelayMs } from '../resilience/backoff.js';
import type { Gate, Release } from '../resilience/gate.js';
import type { LimitStore, LimitTicket } from '../resilience/limit-store.js';
import { LocalLimits } from '../resilience/local-limits.js';
import { retry, type Verdict } from '../resilience/retry.js';
import type { RetryBudget } from '../resilience/retry-budget.js';
import type { ApiKeys } from '../security/api-keys.js';
import { relayResponse } from '../upstream/relay.js';
import type { UpstreamRequest } from '../upstream/transport.js';
import type { Upstream } from '../upstream/upstream.js';
import { BALANCED, type Route, type UpstreamSet } from '../upstream/upstream-set.js';
import { admit, limitHeaders, tokensRefused, type AdmissionParts } from './admission.js';
import { estimateTokens, settledTokens } from '../observe/token-estimate.js';
import { attempt, type Answer, type AttemptParts } from './attempt.js';
import { BreakerTickets } from './breaker-ticket.js';
import { ClientPolicies } from './client-policies.js';
import { forwardContext } from './forwarding.js';
import { Lifetimes, type Lifetime } from './lifetime.js';
import { newRecord, Outcomes, unavailable, type RateHeaders, type Rec, type Reply } from './outcomes.js';
import { ResponseHomes } from './response-homes.js';
import { routeOf, type RouteOptions } from './routing.js';
import { UpgradeHandler } from './upgrade.js';
import { usageMeter, type UsageMeter } from './usage-meter.js';

export interface ProxyParts {
  readonly config: Config;
  /** The upstreams (one or several), each with its transport and breaker. */
  readonly upstreams: UpstreamSet;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  /** The concurrency gate: this process's, or the cluster primary's (cluster/remote-gate.ts); null = no cap. */
  readonly gate: Gate | null;
  /** Every client's limits: this process's by default, or the cluster primary's (cluster/remote-limits.ts). */
  readonly limits?: LimitStore;
  readonly budget: RetryBudget;
  /** The client keys in force now (they can be reloaded); null = no key needed. */
  readonly apiKeys: () => ApiKeys | null;
  readonly random?: () => number;
}

export class ProxyHandler {
  /** Every request alive now (shutdown ends them, /stats counts them by phase). */
  readonly lifetimes: Lifetimes;
  /** Which upstream made each stored response (routing.ts). */
  readonly responses = new ResponseHomes();
  /** Every client's limits: requests, tokens, requests in flight. */
  readonly limits: LimitStore;
  private readonly admission: AdmissionParts;
  private readonly attemptParts: AttemptParts;
  private readonly bodyLimits: BodyLimits;
  private readonly outcomes: Outcomes;
  private readonly upgrades: UpgradeHandler;

  constructor(private readonly p: ProxyParts) {
    const { config, clock } = p;
    this.lifetimes = new Lifetimes(clock);
    this.limits = p.limits ?? new LocalLimits(clock);
    this.admission = { apiKeys: p.apiKeys, limits: this.limits, policies: new ClientPolicies(config, p.apiKeys) };
    this.attemptParts = { telemetry: p.telemetry, clock };
    this.bodyLimits = { maxReplayBytes: config.maxReplayBodyBytes, maxBodyBytes: config.maxRequestBodyBytes, idleTimeoutMs: config.clientTimeoutMs, clock };
    this.outcomes = new Outcomes(config.timeoutMs, p.logger, p.telemetry);
    this.upgrades = new UpgradeHandler(p, this.lifetimes, this.admission, this.outcomes, this.responses);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { clock, telemetry, budget, config, upstreams } = this.p;
    const started = clock.now();
    const life = this.lifetimes.begin();
    life.watchClient(res);
    const rec = newRecord(req, config.trustProxy);
    const reply: Reply = (err, extra) => sendError(res, err, rec.requestId, extra);
    telemetry.requestStarted();
    budget.requestStarted();
    let release: Release | null = null;
    const tickets = new BreakerTickets<Upstream>(clock);
    const tally: Tally = { upstream: null, estimate: 0, bodyBytes: 0, meter: null, answered: false };
    let client: LimitTicket | null = null;
    let rateHeaders: RateHeaders;
    try {
      const admission = await admit(this.admission, req, rec.client);
      rateHeaders = admission.rateHeaders;
      rec.keyId = admission.keyId;
      if (!admission.ok) return this.outcomes.refuse(rec, reply, admission.error, rateHeaders, admission.limited);
      client = admission.client;
      // nothing could take it (every breaker open, every upstream down): say so before reading the body
      if (!upstreams.available(BALANCED, started)) return this.outcomes.refuse(rec, reply, unavailable(this.p.upstreams, BALANCED, started, config.healthCheckIntervalMs), rateHeaders);
      if (upstreams.several && rec.method === 'GET' && pathOf(rec.path) === '/v1/models') return this.listModels(res, rec, rateHeaders, life);
      life.enter('reading_body');
      let body: RequestBody | null = await readRequestBody(req, this.bodyLimits, life.cancel);
      rec.bytesIn = body.kind === 'buffered' ? body.data.length : body.headBytes;
      const facts = requestFacts(body.kind === 'buffered' ? body.data : body.head[0]!, req.headers['content-type']);
      rec.model = facts.model;
      // the tokens a generation may cost, as OpenAI reckons them before the answer: its prompt,
      // and the most it asked for (else MAX_TOKENS_ESTIMATE); reserved on the client's tokens
      // per minute and charged to the fair queue. Only a POST with a JSON body generates:
      // a listing, a download or an upload costs no tokens
      if (rec.method === 'POST' && JSON_TYPE.test(req.headers['content-type'] ?? '')) {
        tally.bodyBytes = body.kind === 'buffered' ? body.data.length : Number(req.headers['content-length']) || body.headBytes;
        tally.estimate = estimateTokens(tally.bodyBytes, facts.maxTokens, config.maxTokensEstimate);
      }
      const reserved = tally.estimate === 0 ? null : await this.limits.reserve(client, tally.estimate);
      if (reserved !== null) {
        rateHeaders = { ...rateHeaders, ...limitHeaders(null, reserved.tokens) };
        if (!reserved.ok) {
          const refusal = tokensRefused(reserved.tokens, tally.estimate, reserved.retryAfterMs);
          tally.estimate = 0; // nothing reserved, nothing to settle
          return this.outcomes.refuse(rec, reply, refusal, rateHeaders, 'tokens');
        }
      }
      const route = upstreams.several ? routeOf({ method: rec.method, url: rec.path, headers: req.headers, model: rec.model, body: body.kind === 'buffered' ? body.data : null }, this.routeOptions()) : BALANCED;
      if (this.p.gate !== null) {
        life.enter('queued');
        release = await this.p.gate.acquire({ key: client.key, weight: client.policy.weight }, life.cancel.signal);
      }
      life.startDeadline(config.timeoutMs);
      const answer = await this.attempts(req, rec, body, route, life, tickets, tally, admission.keysOn);
      body = null; // not held while the answer streams, for minutes maybe
      await this.answer(res, rec, answer, rateHeaders, life, reply, tally);
    } catch (err) {
      this.outcomes.failed(rec, err, reply, rateHeaders, res);
    } finally {
      // what it really cost settles the reservation and is the service the fair queue counts,
      // charged before its slot goes (after the release there may be no client to charge).
      // The queue is charged what was served, not the estimate: an estimate (its max_tokens)
      // refunded at the end would leave a flooding client's count below a newcomer's
      const charged = tally.estimate === 0 ? 0 : settledTokens(tally.meter?.usage() ?? null, tally.meter?.textChars() ?? 0, tally.answered, tally.bodyBytes);
      if (release !== null && client !== null) this.p.gate!.charge(client.key, charged);
      release?.();
      tickets.releaseAll();
      if (tally.upstream !== null) upstreams.leave(tally.upstream);
      if (client !== null) {
        this.limits.leave(client, charged);
        rec.tokensCharged = charged;
      }
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

  /**
   * Attempts under the TIMEOUT deadline, retried as the policy allows: each on the upstream
   * the route and the balancer choose (a retry prefers one not tried yet, and goes at once
   * when it fails over). The upstream whose answer is relayed stays in `using` until the
   * request ends; the others are left as soon as their attempt is over.
   */
  private async attempts(req: IncomingMessage, rec: Rec, body: RequestBody, route: Route, life: Lifetime, tickets: BreakerTickets<Upstream>, using: Tally, keysOn: boolean): Promise<Answer> {
    const { config, clock, budget, telemetry, upstreams } = this.p;
    const tried = new Set<Upstream>();
    let upstreamReq: UpstreamRequest | null = null;
    let builtFor: Upstream | null = null;
    let last: Answer | null = null;
    let holdingRetry = false;
    const parts = this.attemptParts;
    const once = async (): Promise<Verdict<Answer>> => {
      const u = this.choose(route, tried, tickets);
      // nothing may take it now (the breakers opened meanwhile): the last answer stands
      if (u === null) return { kind: 'final', value: last ?? { kind: 'error', error: unavailable(upstreams, route, clock.now(), config.healthCheckIntervalMs) } };
      tried.add(u);
      rec.attempts++;
      rec.upstream = u.name;
      if (builtFor !== u) {
        upstreamReq = { method: rec.method, path: u.target.basePath + rec.path, headers: toUpstreamHeaders(req.headers, forwardContext(config, u.target, req, rec.requestId, keysOn, config.upstreamHttp2)), body };
        builtFor = u;
      }
      upstreams.enter(u);
      let relayed = false;
      try {
        const verdict = await attempt(parts, u, upstreamReq!, life, tickets.for(u));
        last = verdict.value;
        relayed = verdict.kind === 'final' && verdict.value.kind === 'stream';
        return verdict;
      } finally {
        if (relayed) using.upstream = u;
        else upstreams.leave(u);
      }
    };
    try {
      const result = await retry<Answer>(once, {
        maxRetries: config.maxRetries,
        backoffMs: (n) => backoffDelayMs(n, { baseMs: config.retryDelayMs, maxMs: config.retryMaxDelayMs }, this.p.random),
        clock,
        deadline: clock.now() + config.timeoutMs,
        cancel: life.cancel,
        failover: () => upstreams.untried(route, tried, clock.now()),
        mayRetry: (reason) => {
          // a streamed body is not kept: only a connection that never opened left it unread
          if (body.kind === 'streaming' && reason !== 'connect_error') return false;
          // an open breaker (the failure may have just opened it) or nobody left to ask
          if (!upstreams.available(route, clock.now())) return false;
          // failing over to a replica not tried yet adds no load to the one that failed:
          // the budget, which keeps retries from multiplying an outage, is not spent on it
          if (upstreams.untried(route, tried, clock.now())) return true;
          if (!holdingRetry) holdingRetry = budget.tryAcquireRetry();
          return holdingRetry;
        },
        onRetry: (_n, reason) => {
          telemetry.retry(reason);
          life.enter('backoff');
        },
      });
      return result.value;
    } finally {
      if (holdingRetry) budget.releaseRetry();
    }
  }

  /** The upstream for the next attempt whose breaker lets it through now, or null. */
  private choose(route: Route, tried: Set<Upstream>, tickets: BreakerTickets<Upstream>): Upstream | null {
    const { upstreams, clock } = this.p;
    if (!upstreams.several) {
      // one upstream: it, if its breaker (or this request's own probe) lets the attempt go
      const only = upstreams.home;
      const ticket = tickets.for(only);
      return ticket.probe || (only.routable(clock.now()) && ticket.admit()) ? only : null;
    }
    // this request is an upstream's half-open probe and got no verdict yet (its connection
    // turned out closed): the resend goes there, although the breaker shows its probe as out
    for (const u of tried) if (tickets.for(u).probe) return u;
    const refused = new Set(tried);
    for (let i = 0; i <= upstreams.all.length; i++) {
      const u = upstreams.choose(route, i === 0 ? tried : refused, clock.now());
      if (u === null) return null;
      if (tickets.for(u).admit()) return u;
      refused.add(u); // its probe slot was just taken by another request
      if (!upstreams.several) return null;
    }
    return null;
  }


  private routeOptions(): RouteOptions {
    return { home: this.p.upstreams.home.name, responses: this.responses, affinity: this.p.config.balance === 'affinity' };
  }

  /** With several upstreams the proxy answers `GET /v1/models` itself: the union of what they serve. */
  private listModels(res: ServerResponse, rec: Rec, rateHeaders: RateHeaders, life: Lifetime): void {
    const body = JSON.stringify({ object: 'list', data: this.p.upstreams.models().map((id) => ({ id, object: 'model', created: 0, owned_by: 'openai-proxy' })) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': rec.requestId, ...rateHeaders });
    life.markFirstByte();
    res.end(body);
    rec.status = 200;
    rec.bytesOut = Buffer.byteLength(body);
  }

  /** Gives the client its answer and completes the record. */
  private async answer(res: ServerResponse, rec: Rec, answer: Answer, rateHeaders: RateHeaders, life: Lifetime, reply: Reply, tally: Tally): Promise<void> {
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
    tally.meter = meter;
    tally.answered = up.status >= 200 && up.status < 300;
    const tap = this.tap(rec, up.status, tally.upstream, meter);
    const relayed = await relayResponse(up, res, { requestId: rec.requestId, path: rec.path, idleTimeoutMs: this.p.config.timeoutMs, ...(rateHeaders ? { extraHeaders: rateHeaders } : {}), ...(tap ? { onChunk: tap } : {}) }, life);
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

  /** What watches the answer as it passes: the usage meter, and for a stored response with several upstreams, which one holds it. */
  private tap(rec: Rec, status: number, from: Upstream | null, meter: UsageMeter | null): { push(chunk: Buffer): void } | null {
    if (from === null || !this.p.upstreams.several || status < 200 || status >= 300 || rec.method !== 'POST' || pathOf(rec.path) !== '/v1/responses') return meter;
    const homes = this.responses.watch(from.name);
    if (meter === null) return homes;
    return { push: (c) => (meter.push(c), homes.push(c)) };
  }
}

const JSON_TYPE = /^\s*application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** What a request uses and costs, settled when it ends. */
interface Tally {
  /** The upstream whose answer it relays (left when the request ends). */
  upstream: Upstream | null;
  /** Tokens reserved on its client's limits and charged to the fair queue; 0 = nothing to settle. */
  estimate: number;
  /** The request body's size: its prompt's part of the estimate, charged to a stream without usage besides its text. */
  bodyBytes: number;
  /** Watches the answer relayed for its usage and its text. */
  meter: UsageMeter | null;
  /** A 2xx answer was relayed: it produced tokens. */
  answered: boolean;
}
