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
import { requestIdFor } from './http/request-id.js';
import type { ProxyHandler } from './proxy/handler.js';
import { sendError } from './http/send-error.js';
import { pathOf, serveOwn, type OwnParts } from './own-endpoints.js';

export interface ServerParts extends OwnParts {
  readonly handler: ProxyHandler;
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
        p.handler.handle(req, res).catch((err: unknown) => p.logger.error('handler crashed', { err: err as Error, stack: (err as Error | undefined)?.stack }));
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
    } else {
      rawError(socket, clientErrorFor(err.code), requestIdFor(undefined));
    }
  });
  return server;
}

/** What node could not take from a client, as one of our errors. */
function clientErrorFor(code: string | undefined): ProxyError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new ProxyError('request_timeout', 'The request headers did not arrive in time.');
  if (code === 'HPE_HEADER_OVERFLOW') return new ProxyError('headers_too_large', 'The request headers are too large.');
  return new ProxyError('bad_request', 'The request could not be parsed.');
}

function upgrade(p: ServerParts, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const url = req.url ?? '/';
  const isWs = typeof req.headers.upgrade === 'string' && req.headers.upgrade.toLowerCase() === 'websocket';
  if (p.isDraining() || !isWs || !url.startsWith('/v1/')) {
    const requestId = requestIdFor(req.headers['x-request-id']);
    const err = p.isDraining() ? new ProxyError('draining', 'The proxy is shutting down; send the request again.') : new ProxyError('not_found', `Invalid URL (${req.method} ${pathOf(url)}) for an upgrade`);
    rawError(socket, err, requestId);
    return;
  }
  p.handler.upgrade(req, socket, head).catch((err: unknown) => p.logger.error('upgrade handler crashed', { err: err as Error, stack: (err as Error | undefined)?.stack }));
}
