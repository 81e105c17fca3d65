/**
 * The client's request body, read just enough for retries: a body up to the replay limit is
 * buffered whole so a later attempt can resend it; a larger one is handed over as the bytes
 * read so far plus the rest of the live stream, sent once and never retried after it began.
 * MAX_REQUEST_BODY is enforced in both cases (up front from Content-Length when given, and
 * by counting, since a client can omit or lie about its length), and a body that stalls
 * longer than CLIENT_TIMEOUT is given up with 408: a slow client cannot hold a slot forever.
 * Reading consults the request's cancellation: a client that leaves (or shutdown) ends the
 * read with the cancellation's reason, like every other phase. Timers run on the injected clock.
 */
import type { IncomingMessage } from 'node:http';
import { CLIENT_GONE, type Cancel } from '../cancel.js';
import { IdleTimer, type Clock } from '../clock.js';
import { ProxyError } from '../errors.js';

export interface BodyLimits {
  readonly maxReplayBytes: number;
  readonly maxBodyBytes: number;
  /** Longest silence while the body is still arriving. */
  readonly idleTimeoutMs: number;
  /** Where the stall timers run. */
  readonly clock: Clock;
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

/**
 * Resolves with the body (whole, or its head plus the live rest). Rejects with a ProxyError
 * (413, 408), or with `cancel.reason` when the request ends meanwhile; a client whose
 * connection breaks mid-body ends the request as CLIENT_GONE.
 */
export function readRequestBody(req: IncomingMessage, limits: BodyLimits, cancel: Cancel): Promise<RequestBody> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBodyBytes) return Promise.reject(tooLarge(limits.maxBodyBytes));
  if (cancel.aborted) return Promise.reject(cancel.reason);
  if (req.readableEnded) return Promise.resolve(EMPTY_BODY);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const idle = new IdleTimer(limits.clock, limits.idleTimeoutMs, () => {
      cleanup();
      reject(stalled(limits.idleTimeoutMs));
    });
    const cleanup = (): void => {
      idle.stop();
      offCancel();
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      idle.touch();
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
    // the body broke off: the client went away while sending it
    const onGone = (): void => cancel.abort(CLIENT_GONE);
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    const offCancel = cancel.onAbort(() => {
      cleanup();
      reject(cancel.reason);
    });
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
  const idle = new IdleTimer(limits.clock, limits.idleTimeoutMs, () => {
    rest.unpipe(out);
    out.destroy(stalled(limits.idleTimeoutMs));
  });
  rest.on('data', (chunk: Buffer) => {
    idle.touch();
    size += chunk.length;
    if (size > limits.maxBodyBytes) {
      idle.stop();
      rest.unpipe(out);
      out.destroy(tooLarge(limits.maxBodyBytes));
    }
  });
  // the upstream taking its time to read is not the client stalling
  out.on('drain', () => idle.touch());
  // the watch ends with the upload, however it ends; a body whose last bytes came with the
  // ones that crossed the replay limit has already ended here, and 'end' will not come again
  const stop = (): void => idle.stop();
  rest.once('end', stop);
  rest.once('close', stop);
  out.once('finish', stop);
  out.once('close', stop);
  if (rest.readableEnded) stop();
  rest.on('error', (err) => out.destroy(err));
  rest.pipe(out);
  rest.resume();
}
