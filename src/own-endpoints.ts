/**
 * The proxy's own endpoints: `/` (alive), `/health` (for load balancers and Docker),
 * `/stats` (JSON for a person) and `/metrics` (Prometheus). With ADMIN_TOKEN set, /stats
 * and /metrics answer only a request bearing it; / and /health stay open. The same table
 * serves the optional loopback-only ADMIN_PORT listener, where no token is asked.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { sha256Bytes } from './security/digest.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { ProxyError } from './errors.js';
import { presentedKey } from './http/credentials.js';
import { requestIdFor } from './http/request-id.js';
import type { Logger } from './logging/logger.js';
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from './metrics/registry.js';
import type { Telemetry } from './observe/telemetry.js';
import { sendError } from './http/send-error.js';
import type { Upstream } from './upstream/upstream.js';
import type { UpstreamSet } from './upstream/upstream-set.js';
import type { Gate } from './resilience/gate.js';
import type { Lifetimes } from './proxy/lifetime.js';

export interface OwnParts {
  readonly config: Config;
  readonly version: string;
  readonly telemetry: Telemetry;
  readonly upstreams: UpstreamSet;
  readonly gate: Gate | null;
  /** The requests alive now, by phase. */
  readonly lifetimes: Lifetimes;
  /** The per-client limits' table: clients tracked, and tokens reserved and not yet settled. */
  readonly limits: { readonly size: number; outstanding(): number };
  /** Request-log lines lost so far (0 when the log is off). */
  readonly requestLogDropped: () => number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Renders /metrics; null = 404. */
  readonly metrics: (() => string) | null;
  readonly isDraining: () => boolean;
  /**
   * With WORKERS > 1: /metrics and /stats summed over every worker, asked of the primary
   * (cluster/scrape.ts); absent in a single process, which answers from its own parts.
   */
  readonly summed?: SummedScrapes;
}

export interface SummedScrapes {
  metrics(): Promise<string>;
  stats(): Promise<Record<string, unknown>>;
}

const OWN_PATHS: ReadonlySet<string> = new Set(['/', '/health', '/stats', '/metrics']);
const GUARDED: ReadonlySet<string> = new Set(['/stats', '/metrics']);

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * 200 while the proxy can serve, whatever its upstreams do (restarting the proxy would not
 * heal them): they are reported, one object each. `upstream` and `circuit_breaker` describe
 * the first (home) upstream, as they did when there was only one.
 */
export function healthReport(p: OwnParts): { status: number; body: Record<string, unknown> } {
  const draining = p.isDraining();
  const home = p.upstreams.home;
  const t = home.transport.stats();
  const stats = p.telemetry.stats;
  const now = p.clock.now();
  return {
    status: draining ? 503 : 200,
    body: {
      status: draining ? 'draining' : 'ok',
      uptime_s: stats.uptimeSec(),
      version: p.version,
      in_flight: stats.inFlight,
      upstream: { url: home.url.href, protocol: t.protocol, open_connections: t.openConnections },
      circuit_breaker: breakerView(p, home),
      upstreams: p.upstreams.all.map((u) => ({ name: u.name, url: u.url.href, state: u.state(now), in_flight: u.inFlight, breaker: breakerView(p, u), models: modelsOf(u) })),
      last_upstream_error: stats.lastUpstreamError,
    },
  };
}

function breakerView(p: OwnParts, u: Upstream): Record<string, unknown> {
  if (u.breaker === null) return { state: 'disabled' };
  const s = u.breaker.snapshot(p.clock.now());
  const since = s.lastTransitionAt === null ? null : new Date(p.clock.wallNow() - (p.clock.now() - s.lastTransitionAt)).toISOString();
  return { state: s.state, consecutive_failures: s.consecutiveFailures, last_transition: since, retry_after_s: Math.ceil(s.retryAfterMs / 1000) };
}

/** What it serves: its `models`, else what discovery found; null when unknown (every model). */
function modelsOf(u: Upstream): string[] | null {
  const served = u.served;
  return served === null ? null : [...served];
}

/** One upstream for /stats: its health and what went through it. */
function upstreamStats(p: OwnParts, u: Upstream, now: number): Record<string, unknown> {
  const t = u.transport.stats();
  return {
    name: u.name,
    url: u.url.href,
    state: u.state(now),
    weight: u.weight,
    max_concurrent: u.maxConcurrent,
    in_flight: u.inFlight,
    attempts: Object.fromEntries(p.telemetry.stats.attemptsByUpstream.get(u.name) ?? []),
    breaker: breakerView(p, u),
    last_health_check: u.lastProbe,
    models: modelsOf(u),
    protocol: t.protocol,
    open_connections: t.openConnections,
    connections_opened: t.connectionsOpened,
  };
}

export function statsReport(p: OwnParts): Record<string, unknown> {
  const s = p.telemetry.stats;
  const byClass: Record<string, number> = {};
  for (const [status, n] of s.byStatus) {
    const cls = `${Math.floor(status / 100)}xx`;
    byClass[cls] = (byClass[cls] ?? 0) + n;
  }
  return {
    uptime_s: s.uptimeSec(),
    requests: { total: s.requests, by_class: byClass, by_status: Object.fromEntries(s.byStatus), by_endpoint: Object.fromEntries(s.byEndpoint) },
    in_flight: s.inFlight,
    in_flight_by_phase: p.lifetimes.byPhase(),
    queue: {
      depth: p.gate?.queued ?? 0,
      slots_in_use: p.gate?.inFlight ?? 0,
      max_concurrent: p.config.maxConcurrentRequests,
      size: p.config.queueSize,
      order: p.config.queueOrder,
      waiting_by_client: Object.fromEntries([...(p.gate?.queuedBy() ?? [])].map(([k, n]) => [clientName(k), n])),
      wait_ms_by_client: Object.fromEntries(Object.entries(p.gate?.waits() ?? {}).map(([k, w]) => [clientName(k), { count: w.count, p50_ms: w.p50Ms, p99_ms: w.p99Ms, max_ms: w.maxMs }])),
    },
    latency_ms: s.durationMs.percentiles(),
    time_to_first_byte_ms: s.ttfbMs.percentiles(),
    tokens: Object.fromEntries(s.tokens),
    upstream_attempts: Object.fromEntries(s.attempts),
    retries: { total: s.totalRetries(), by_reason: Object.fromEntries(s.retries) },
    rate_limited: s.rateLimited,
    rate_limited_by_reason: s.rateLimitedBy,
    client_limits: { clients_tracked: p.limits.size, tokens_reserved: p.limits.outstanding() },
    clients: Object.fromEntries([...s.clients].map(([k, c]) => [k, { requests: c.requests, prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, tokens_charged: c.tokensCharged, rejected: c.rejected }])),
    streams: s.streams,
    circuit_breaker: breakerView(p, p.upstreams.home),
    upstream: { ...p.upstreams.home.transport.stats(), url: p.upstreams.home.url.href },
    balance: p.upstreams.several ? p.config.balance : null,
    upstreams: p.upstreams.all.map((u) => upstreamStats(p, u, p.clock.now())),
    last_upstream_error: s.lastUpstreamError,
    request_log: { enabled: p.config.requestLogEnabled, dropped_lines: p.requestLogDropped() },
  };
}

/** A client as /stats names it: its key id, or its address (the limiter's `id:`/`ip:` prefix dropped). */
function clientName(key: string): string {
  return key.startsWith('id:') || key.startsWith('ip:') ? key.slice(3) : key;
}

/** Compares a presented token with ADMIN_TOKEN in constant time. */
export function adminTokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = sha256Bytes(expected);
  const b = sha256Bytes(presented);
  return timingSafeEqual(a, b);
}

/** Serves `path` if it is one of the proxy's own endpoints; false when it is not. */
export function serveOwn(p: OwnParts, req: IncomingMessage, res: ServerResponse, path: string, guarded: boolean): boolean {
  if (!OWN_PATHS.has(path)) return false;
  const requestId = requestIdFor(req.headers['x-request-id']);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendError(res, new ProxyError('method_not_allowed', `Method ${req.method} is not allowed on ${path}.`), requestId, { allow: 'GET, HEAD' });
    return true;
  }
  if (guarded && p.config.adminToken !== null && GUARDED.has(path) && !adminTokenMatches(p.config.adminToken, presentedKey(req.headers))) {
    sendError(res, new ProxyError('unauthorized', `${path} needs the admin token: send "Authorization: Bearer <ADMIN_TOKEN>".`), requestId, { 'www-authenticate': 'Bearer' });
    return true;
  }
  if (path === '/') {
    sendJson(res, 200, { status: 'ok' });
  } else if (path === '/health') {
    const h = healthReport(p);
    sendJson(res, h.status, h.body);
  } else if (path === '/stats') {
    if (p.summed === undefined) sendJson(res, 200, statsReport(p));
    else p.summed.stats().then((body) => sendJson(res, 200, body), (err: Error) => summedFailed(p, res, requestId, '/stats', err));
  } else if (p.metrics === null) {
    sendError(res, new ProxyError('not_found', 'Metrics are off (METRICS_ENABLED=false).'), requestId);
  } else if (p.summed !== undefined) {
    p.summed.metrics().then((text) => sendMetrics(res, text), (err: Error) => summedFailed(p, res, requestId, '/metrics', err));
  } else {
    let text: string;
    try {
      text = p.metrics();
    } catch (err) {
      p.logger.error('metrics collection failed', { err: err as Error, stack: (err as Error | undefined)?.stack });
      sendError(res, new ProxyError('internal', 'Metrics collection failed.'), requestId);
      return true;
    }
    sendMetrics(res, text);
  }
  return true;
}

function sendMetrics(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function summedFailed(p: OwnParts, res: ServerResponse, requestId: string, path: string, err: Error): void {
  p.logger.error('summing the workers failed', { path, err });
  if (!res.headersSent) sendError(res, new ProxyError('internal', `Summing ${path} over the workers failed: ${err.message}`), requestId);
}

export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** The ADMIN_PORT listener: own endpoints only, no token; main binds it to 127.0.0.1. */
export function createAdminServer(p: OwnParts): http.Server {
  return http.createServer((req, res) => {
    const path = pathOf(req.url ?? '/');
    if (!serveOwn(p, req, res, path, false)) sendError(res, new ProxyError('not_found', `Invalid URL (${req.method} ${path})`), requestIdFor(req.headers['x-request-id']));
  });
}
