/**
 * The node:http server and its route table: the proxy's own endpoints, WebSocket upgrades
 * under `/v1/`, and everything else under `/v1/` to the proxy handler. Anything outside
 * gets an OpenAI-shaped 404 without touching the upstream. No policy here, but the server's
 * own limits against hostile clients: headers must arrive within CLIENT_TIMEOUT (slow
 * loris), header size is node's 16 KiB, and what node cannot parse gets a JSON 400.
 */
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ProxyError } from './errors.js';
import { rawError } from './http/raw-error.js';
import { clientAddress } from './http/client-identity.js';
import { presentedKey } from './http/credentials.js';
import { requestIdFor } from './http/request-id.js';
import { routeTemplate } from './http/route-template.js';
import { credentialPolicy, type ProxyHandler } from './proxy/handler.js';
import { sendError } from './http/send-error.js';
import type { ApiKeys } from './security/api-keys.js';
import { pathOf, serveOwn, type OwnParts } from './own-endpoints.js';
import { tunnelWebSocket } from './upstream/websocket-tunnel.js';

export interface ServerParts extends OwnParts {
  readonly handler: ProxyHandler;
  readonly apiKeys: () => ApiKeys | null;
}

export function createProxyServer(p: ServerParts): http.Server {
  const server = http.createServer(
    {
      keepAliveTimeout: 65_000,
      headersTimeout: p.config.clientTimeoutMs,
      // how often node checks headersTimeout: its 30 s default would let a slow client
      // hold a connection for up to 30 s past CLIENT_TIMEOUT
      connectionsCheckingInterval: Math.min(1000, p.config.clientTimeoutMs),
    },
    (req, res) => {
      const url = req.url ?? '/';
      if (p.isDraining()) res.setHeader('connection', 'close');
      if (url.startsWith('/v1/')) {
        p.handler.handle(req, res).catch((err: unknown) => p.logger.error('handler crashed', { err: err as Error }));
        return;
      }
      const path = pathOf(url);
      if (!serveOwn(p, req, res, path, true)) sendError(res, new ProxyError('not_found', `Invalid URL (${req.method} ${path})`), requestIdFor(req.headers['x-request-id']));
    },
  );
  // Requests may take many minutes (long generations, big uploads): the deadlines that
  // matter are the proxy's own phases (TIMEOUT, CLIENT_TIMEOUT for a stalled body), not
  // node's whole-request timer.
  server.requestTimeout = 0;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(p, req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      rawError(socket, 408, 'The request headers did not arrive in time.', 'invalid_request_error', 'request_timeout');
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      rawError(socket, 431, 'The request headers are too large.', 'invalid_request_error', 'headers_too_large');
    } else {
      rawError(socket, 400, 'The request could not be parsed.', 'invalid_request_error', 'bad_request');
    }
  });
  return server;
}

function upgrade(p: ServerParts, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const requestId = requestIdFor(req.headers['x-request-id']);
  const url = req.url ?? '/';
  const isWs = typeof req.headers.upgrade === 'string' && req.headers.upgrade.toLowerCase() === 'websocket';
  if (p.isDraining()) return rawError(socket, 503, 'The proxy is shutting down.', 'service_unavailable_error', 'draining', { 'x-request-id': requestId });
  if (!isWs || !url.startsWith('/v1/')) return rawError(socket, 404, `Invalid URL (${req.method} ${pathOf(url)}) for an upgrade`, 'invalid_request_error', 'not_found', { 'x-request-id': requestId });
  const keys = p.apiKeys();
  if (keys !== null && keys.match(presentedKey(req.headers)) === null) return rawError(socket, 401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key', { 'x-request-id': requestId });
  p.telemetry.requestStarted();
  const started = p.clock.now();
  const base = p.config.upstreamUrl.pathname.replace(/\/+$/, '');
  const client = clientAddress(req, p.config.trustProxy);
  tunnelWebSocket(req, socket, head, {
    origin: p.config.upstreamUrl,
    path: base + url,
    requestId,
    clientIp: client,
    connectTimeoutMs: p.config.connectTimeoutMs,
    credentials: credentialPolicy(p.config, keys !== null),
    onClose: (outcome, bytesIn, bytesOut) => {
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
