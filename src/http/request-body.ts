/**
 * The client's request body, read just enough for retries: a body up to the replay limit is
 * buffered whole so a later attempt can resend it; a larger one is handed over as the bytes
 * read so far plus the rest of the live stream, sent once and never retried after it began.
 * MAX_REQUEST_BODY is enforced in both cases (up front from Content-Length when given, and
 * by counting, since a client can omit or lie about its length), and a body that stalls
 * longer than CLIENT_TIMEOUT is given up with 408: a slow client cannot hold a slot forever.
 */
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';

export interface BodyLimits {
  readonly maxReplayBytes: number;
  readonly maxBodyBytes: number;
  /** Longest silence while the body is still arriving. */
  readonly idleTimeoutMs: number;
}

export type RequestBody =
  | { readonly kind: 'buffered'; readonly data: Buffer }
  | { readonly kind: 'streaming'; readonly head: readonly Buffer[]; readonly headBytes: number; readonly rest: IncomingMessage; readonly limits: BodyLimits };

export const EMPTY_BODY: RequestBody = { kind: 'buffered', data: Buffer.alloc(0) };

export function tooLarge(limit: number): ProxyError {
  return new ProxyError('body_too_large', `Request body is larger than the proxy's limit of ${limit} bytes.`);
}

function stalled(ms: number): ProxyError {
  return new ProxyError('request_timeout', `The request body stalled for more than ${ms / 1000}s.`);
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
    const timer = setTimeout(() => {
      cleanup();
      reject(stalled(limits.idleTimeoutMs));
    }, limits.idleTimeoutMs);
    timer.unref();
    const cleanup = (): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      timer.refresh();
      size += chunk.length;
      chunks.push(chunk);
      if (size > limits.maxBodyBytes) {
        cleanup();
        reject(tooLarge(limits.maxBodyBytes));
      } else if (size > limits.maxReplayBytes) {
        cleanup();
        req.pause();
        resolve({ kind: 'streaming', head: chunks, headBytes: size, rest: req, limits });
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

/**
 * Writes the body to an outgoing stream (the HTTP/1.1 upload writer or an h2 stream). A streamed
 * body keeps being counted and watched as it passes: past the size limit, or silent past
 * the idle limit, the attempt is destroyed with the 413 or 408 error.
 */
export function writeBody(body: RequestBody, out: NodeJS.WritableStream & { destroy(err?: Error): void }): void {
  if (body.kind === 'buffered') {
    if (body.data.length > 0) out.end(body.data);
    else out.end();
    return;
  }
  const { rest, limits } = body;
  for (const chunk of body.head) out.write(chunk);
  let size = body.headBytes;
  const timer = setTimeout(() => {
    rest.unpipe(out);
    out.destroy(stalled(limits.idleTimeoutMs));
  }, limits.idleTimeoutMs);
  timer.unref();
  rest.on('data', (chunk: Buffer) => {
    timer.refresh();
    size += chunk.length;
    if (size > limits.maxBodyBytes) {
      clearTimeout(timer);
      rest.unpipe(out);
      out.destroy(tooLarge(limits.maxBodyBytes));
    }
  });
  rest.once('end', () => clearTimeout(timer));
  rest.once('close', () => clearTimeout(timer));
  rest.on('error', (err) => out.destroy(err));
  rest.pipe(out);
  rest.resume();
}
