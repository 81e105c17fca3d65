/**
 * Writes one of the proxy's own errors on a ServerResponse (errorAnswer makes its head and
 * body). After the head went out no status can change any more: the connection is cut
 * instead, so the client sees an incomplete answer rather than a wrong one.
 */
import type { ServerResponse } from 'node:http';
import { errorAnswer, type ProxyError } from '../errors.js';

export function sendError(res: ServerResponse, err: ProxyError, requestId: string, extra?: Record<string, string>): number {
  if (res.headersSent) {
    res.destroy();
    return err.status;
  }
  const a = errorAnswer(err, requestId, extra);
  res.writeHead(a.status, a.headers);
  res.end(a.body);
  return a.status;
}
