/**
 * The node:http server and its route table: the proxy's own endpoints (`/`, `/health`,
 * `/stats`, `/metrics`), WebSocket upgrades under `/v1/`, and everything else under `/v1/`
 * to the proxy handler. Anything outside gets an OpenAI-shaped 404 without touching the
 * upstream. No policy here.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from './config.js';
import { ProxyError, errorBody } from './errors.js';
import { clientAddress } from './http/client-identity.js';
import { requestIdFor } from './http/request-id.js';
import type { Logger } from './logging/logger.js';
import { sendError, type ProxyHandler } from './proxy-handler.js';
import type { CircuitBreaker } from './resilience/circuit-breaker.js';
import type { Telemetry } from './observe/telemetry.js';
import type { Transport } from './upstream/transport.js';
import { tunnelWebSocket } from './upstream/websocket-tunnel.js';
import { routeTemplate } from './http/route-template.js';
import { CONTENT_TYPE as METRICS_CONTENT_TYPE } from './metrics/registry.js';
import type { Clock } from './clock.js';

export interface ServerParts {
  readonly config: Config;
  readonly version: string;
  readonly handler: ProxyHandler;
  readonly telemetry: Telemetry;
  readonly transport: Transport;
  readonly breaker: CircuitBreaker | null;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Renders /metrics; null = 404. */
  readonly metrics: (() => string) | null;
  readonly isDraining: () => boolean;
}

const JSON_TYPE = 'application/json';

function sendJson(res: ServerResponse, status: number, value: unknown, extra?: Record<string, string>): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(body);
}

export function healthReport(p: ServerParts): { status: number; body: Record<string, unknown> } {
  const draining = p.isDraining();
  const t = p.transport.stats();
  const stats = p.telemetry.stats;
  return {
    status: draining ? 503 : 200,
    body: {
      status: draining ? 'draining' : 'ok',
      uptime_s: stats.uptimeSec(),
      version: p.version,
      in_flight: stats.inFlight,
      upstream: { url: p.config.upstreamUrl.href, protocol: t.protocol, open_connections: t.openConnections },
      circuit_breaker: p.breaker === null ? { state: 'disabled' } : breakerView(p),
      last_upstream_error: stats.lastUpstreamError,
    },
  };
}

function breakerView(p: ServerParts): Record<string, unknown> {
  const s = p.breaker!.snapshot(p.clock.now());
  const since = s.lastTransitionAt === null ? null : new Date(Date.now() - (p.clock.now() - s.lastTransitionAt)).toISOString();
  return { state: s.state, consecutive_failures: s.consecutiveFailures, last_transition: since, retry_after_s: Math.ceil(s.retryAfterMs / 1000) };
}

export function statsReport(p: ServerParts): Record<string, unknown> {
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
    latency_ms: s.durationMs.percentiles(),
    time_to_first_byte_ms: s.ttfbMs.percentiles(),
    tokens: Object.fromEntries(s.tokens),
    upstream_attempts: Object.fromEntries(s.attempts),
    retries: { total: s.totalRetries(), by_reason: Object.fromEntries(s.retries) },
    rate_limited: s.rateLimited,
    streams: s.streams,
    circuit_breaker: p.breaker === null ? { state: 'disabled' } : breakerView(p),
    upstream: { ...p.transport.stats(), url: p.config.upstreamUrl.href },
    last_upstream_error: s.lastUpstreamError,
  };
}

export function createProxyServer(p: ServerParts): http.Server {
  const server = http.createServer({ keepAliveTimeout: 65_000, headersTimeout: 66_000 }, (req, res) => route(p, req, res));
  // Requests may take many minutes (long generations, big uploads): the deadlines that
  // matter are the proxy's own TIMEOUT phases, not node's whole-request timer.
  server.requestTimeout = 0;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(p, req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      const body = errorBody('The request could not be parsed.', 'invalid_request_error', err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request');
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
  return server;
}

function route(p: ServerParts, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  if (url.startsWith('/v1/')) {
    if (p.isDraining()) res.setHeader('connection', 'close');
    p.handler.handle(req, res).catch((err: unknown) => p.logger.error('handler crashed', { err: err as Error }));
    return;
  }
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const own = path === '/' || path === '/health' || path === '/stats' || path === '/metrics';
  if (own && req.method !== 'GET' && req.method !== 'HEAD') {
    sendError(res, new ProxyError('method_not_allowed', `Method ${req.method} is not allowed on ${path}.`), requestIdFor(req.headers['x-request-id']), { allow: 'GET, HEAD' });
    return;
  }
  if (p.isDraining()) res.setHeader('connection', 'close');
  switch (own ? path : '') {
    case '/':
      sendJson(res, 200, { status: 'ok' });
      return;
    case '/health': {
      const h = healthReport(p);
      sendJson(res, h.status, h.body);
      return;
    }
    case '/stats':
      sendJson(res, 200, statsReport(p));
      return;
    case '/metrics':
      if (p.metrics !== null) {
        let text: string;
        try {
          text = p.metrics();
        } catch (err) {
          p.logger.error('metrics collection failed', { err: err as Error });
          sendJson(res, 500, JSON.parse(errorBody('Metrics collection failed.', 'server_error', 'metrics_failed')));
          return;
        }
        res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
        res.end(text);
        return;
      }
  }
  sendError(res, new ProxyError('not_found', `Invalid URL (${req.method} ${path})`), requestIdFor(req.headers['x-request-id']));
}

function upgrade(p: ServerParts, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const requestId = requestIdFor(req.headers['x-request-id']);
  const isWs = typeof req.headers.upgrade === 'string' && req.headers.upgrade.toLowerCase() === 'websocket';
  if (!isWs || !(req.url ?? '').startsWith('/v1/') || p.isDraining()) {
    const status = p.isDraining() ? '503 Service Unavailable' : '404 Not Found';
    const body = errorBody(p.isDraining() ? 'The proxy is shutting down.' : `Invalid URL (${req.method} ${req.url}) for an upgrade`, p.isDraining() ? 'service_unavailable_error' : 'invalid_request_error', p.isDraining() ? 'draining' : 'not_found');
    socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`);
    return;
  }
  p.telemetry.requestStarted();
  const started = p.clock.now();
  const base = p.config.upstreamUrl.pathname.replace(/\/+$/, '');
  const client = clientAddress(req, p.config.trustProxy);
  tunnelWebSocket(req, socket, head, {
    origin: p.config.upstreamUrl,
    path: base + (req.url ?? '/'),
    requestId,
    clientIp: client,
    connectTimeoutMs: p.config.connectTimeoutMs,
    onClose: (outcome, bytesIn, bytesOut) => {
      const url = req.url ?? '/';
      p.telemetry.requestFinished({
        requestId,
        client,
        method: req.method ?? 'GET',
        path: url,
        endpoint: routeTemplate(url),
        model: null,
        stream: true,
        status: outcome === 'closed' ? 101 : 503,
        durationMs: p.clock.now() - started,
        ttfbMs: null,
        attempts: 1,
        bytesIn,
        bytesOut,
        promptTokens: null,
        completionTokens: null,
        error: outcome === 'closed' ? null : 'upstream_unreachable',
      });
    },
  });
}
