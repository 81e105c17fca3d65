/**
 * Writes one of the proxy's own errors: the OpenAI-shaped body, `x-request-id`, and the
 * error's headers (`retry-after` or `x-should-retry: false`). After the head went out no
 * status can change any more: the connection is cut instead, so the client sees an
 * incomplete answer rather than a wrong one.
 */
import type { ServerResponse } from 'node:http';
import { renderError, type ProxyError } from '../errors.js';

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
