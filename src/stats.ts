/**
 * What the proxy knows about itself, for /health and /stats (a person with curl; Prometheus
 * has /metrics). Plain numbers and small maps keyed by bounded values (status codes,
 * route templates, outcome and reason names, at most MAX_MODELS model names), so nothing a
 * client sends can grow them.
 */
import { LatencyWindow } from './observe/latency-window.js';
import { RELAY_OUTCOMES, type RelayOutcome } from './upstream/relay.js';
import type { AttemptOutcome } from './upstream/transport.js';
import type { LimitReason } from './resilience/client-limits.js';

/** How a relayed answer ended: the relay's own outcome names. */
export type StreamOutcome = RelayOutcome;

const MAX_MODELS = 50;
/** Clients shown in /stats: the most recently active. */
const MAX_CLIENTS = 100;

export interface ClientCounts {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  tokensCharged: number;
  readonly rejected: Record<LimitReason, number>;
}

export class ProxyStats {
  readonly startedAtMs: number;
  requests = 0;
  inFlight = 0;
  rateLimited = 0;
  readonly rateLimitedBy: Record<LimitReason, number> = { requests: 0, tokens: 0, parallel: 0 };
  /** Per client (key id, or address without keys), the most recently active ones only. */
  readonly clients = new Map<string, ClientCounts>();
  readonly byStatus = new Map<number, number>();
  readonly byEndpoint = new Map<string, number>();
  readonly attempts = new Map<AttemptOutcome, number>();
  /** The same, per upstream name. */
  readonly attemptsByUpstream = new Map<string, Map<AttemptOutcome, number>>();
  readonly retries = new Map<string, number>();
  readonly streams = Object.fromEntries(RELAY_OUTCOMES.map((o) => [o, 0])) as Record<StreamOutcome, number>;
  readonly tokens = new Map<string, { prompt: number; completion: number }>();
  readonly durationMs = new LatencyWindow();
  readonly ttfbMs = new LatencyWindow();
  lastUpstreamError: { at: string; upstream: string; outcome: string; message: string } | null = null;

  constructor(private readonly wallClock: () => number = Date.now) {
    this.startedAtMs = wallClock();
  }

  requestEnded(status: number, endpoint: string, durationMs: number, ttfbMs: number | null): void {
    this.requests++;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    this.byEndpoint.set(endpoint, (this.byEndpoint.get(endpoint) ?? 0) + 1);
    this.durationMs.record(durationMs);
    if (ttfbMs !== null) this.ttfbMs.record(ttfbMs);
  }

  attempt(upstream: string, outcome: AttemptOutcome, message?: string): void {
    this.attempts.set(outcome, (this.attempts.get(outcome) ?? 0) + 1);
    let mine = this.attemptsByUpstream.get(upstream);
    if (mine === undefined) this.attemptsByUpstream.set(upstream, (mine = new Map()));
    mine.set(outcome, (mine.get(outcome) ?? 0) + 1);
    if (outcome !== 'ok') this.lastUpstreamError = { at: new Date(this.wallClock()).toISOString(), upstream, outcome, message: message ?? outcome };
  }

  /** An upstream removed by a reload: its counts go (names come from the config, so the map stays bounded). */
  forgetUpstream(upstream: string): void {
    this.attemptsByUpstream.delete(upstream);
  }

  /** A client refused by its own limits. */
  limited(reason: LimitReason, client: string): void {
    this.rateLimited++;
    this.rateLimitedBy[reason]++;
    this.client(client).rejected[reason]++;
  }

  /** A client's request ended, with what it was charged. */
  clientServed(client: string, prompt: number, completion: number, charged: number): void {
    const c = this.client(client);
    c.requests++;
    c.promptTokens += prompt;
    c.completionTokens += completion;
    c.tokensCharged += charged;
  }

  /** The client's counts, moved to the most recent end; the least recently active go past MAX_CLIENTS. */
  private client(key: string): ClientCounts {
    let c = this.clients.get(key);
    if (c === undefined) c = { requests: 0, promptTokens: 0, completionTokens: 0, tokensCharged: 0, rejected: { requests: 0, tokens: 0, parallel: 0 } };
    else this.clients.delete(key);
    this.clients.set(key, c);
    if (this.clients.size > MAX_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
    return c;
  }

  retry(reason: string): void {
    this.retries.set(reason, (this.retries.get(reason) ?? 0) + 1);
  }

  addTokens(model: string | null, prompt: number, completion: number): void {
    let key = model ?? 'unknown';
    if (!this.tokens.has(key) && this.tokens.size >= MAX_MODELS) key = 'other';
    const t = this.tokens.get(key) ?? { prompt: 0, completion: 0 };
    t.prompt += prompt;
    t.completion += completion;
    this.tokens.set(key, t);
  }

  uptimeSec(): number {
    return Math.round((this.wallClock() - this.startedAtMs) / 1000);
  }

  totalRetries(): number {
    let n = 0;
    for (const v of this.retries.values()) n += v;
    return n;
  }
}
