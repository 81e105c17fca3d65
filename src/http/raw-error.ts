/**
 * One of the proxy's own errors written straight to a socket, for the moments no
 * ServerResponse exists: a request node could not parse, a refused upgrade, a WebSocket
 * tunnel whose upstream cannot be reached. Same OpenAI shape as sendError; the connection
 * is closed after it.
 */
import type { Duplex } from 'node:stream';
import { errorBody } from '../errors.js';

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable' };

export function rawError(socket: Duplex, status: number, message: string, type: string, code: string, headers: Record<string, string> = {}): void {
  const body = errorBody(message, type, code);
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${body}`);
}
