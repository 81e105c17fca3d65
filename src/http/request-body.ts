/**
 * The client's request body, read just enough for retries: a body up to the replay limit is
 * buffered whole so a later attempt can resend it; a larger one is handed over as the bytes
 * read so far plus the rest of the live stream, sent once and never retried after it began.
 * MAX_REQUEST_BODY is enforced in both cases (up front from Content-Length when given).
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';

export type RequestBody =
  | { readonly kind: 'buffered'; readonly data: Buffer }
  | { readonly kind: 'streaming'; readonly head: readonly Buffer[]; readonly headBytes: number; readonly rest: IncomingMessage };

export interface BodyLimits {
  readonly maxReplayBytes: number;
  readonly maxBodyBytes: number;
}

export const EMPTY_BODY: RequestBody = { kind: 'buffered', data: Buffer.alloc(0) };

export function tooLarge(limit: number): ProxyError {
  return new ProxyError('body_too_large', `Request body is larger than the proxy's limit of ${limit} bytes.`);
}

/** A body that ended before it was complete: the client went away while sending it. */
export class ClientGone extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientGone';
  }
}

export function readRequestBody(req: IncomingMessage, limits: BodyLimits): Promise<RequestBody> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBodyBytes) return Promise.reject(tooLarge(limits.maxBodyBytes));
  if (req.readableEnded) return Promise.resolve(EMPTY_BODY);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      chunks.push(chunk);
      if (size > limits.maxBodyBytes) {
        cleanup();
        reject(tooLarge(limits.maxBodyBytes));
      } else if (size > limits.maxReplayBytes) {
        cleanup();
        req.pause();
        resolve({ kind: 'streaming', head: chunks, headBytes: size, rest: req });
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 0 ? EMPTY_BODY : { kind: 'buffered', data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onGone = (): void => {
      cleanup();
      reject(new ClientGone());
    };
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
  });
}
