/**
 * One of the proxy's own errors written straight to a socket, for the moments no
 * ServerResponse exists: a request node could not parse, a refused upgrade, a WebSocket
 * tunnel whose upstream cannot be reached. The same head and body as sendError (both come
 * from errorAnswer); the connection is closed after it.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorAnswer, type ProxyError } from '../errors.js';

export function rawError(socket: Duplex, err: ProxyError, requestId: string, extra?: Record<string, string>): number {
  const a = errorAnswer(err, requestId, extra);
  let head = `HTTP/1.1 ${a.status} ${STATUS_CODES[a.status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(a.headers)) if (name !== 'connection') head += `${name}: ${value}\r\n`;
  if (socket.writable) socket.end(`${head}connection: close\r\n\r\n${a.body}`);
  else socket.destroy();
  return a.status;
}
