/**
 * The seam between policy and wire: a Transport sends one attempt and reports either the
 * upstream's answer (status + headers, body still streaming) or an UpstreamFailure with a
 * stable outcome code. Retry, breaker and metrics read only that code.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { RequestBody } from '../http/request-body.js';
import type { Cancel } from '../cancel.js';
import type { BodySource } from './body-channel.js';

export interface UpstreamRequest {
  readonly method: string;
  /** Path and query, with the upstream's path prefix applied. */
  readonly path: string;
  readonly headers: OutgoingHttpHeaders;
  readonly body: RequestBody;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: BodySource;
  /** Stop the upstream request now (the client left, or we gave up on it). */
  abort(): void;
}

/** What went wrong with an attempt that produced no answer. */
export type FailureOutcome = 'connect_error' | 'timeout' | 'reset' | 'protocol';

/** How one attempt ended: answered (below 500, or 5xx), or one of the failures. */
export type AttemptOutcome = 'ok' | 'http_5xx' | FailureOutcome;

export class UpstreamFailure extends Error {
  constructor(
    readonly outcome: FailureOutcome,
    message: string,
    readonly details: {
      /** Nothing of the request reached the upstream: always safe to send again. */
      readonly neverSent?: boolean;
      /** A reused keep-alive connection the peer had already closed: resend at once, not a failure. */
      readonly staleConnection?: boolean;
      readonly cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'UpstreamFailure';
  }
}

export interface TransportStats {
  readonly protocol: 'http/1.1' | 'h2';
  readonly openConnections: number;
  readonly connectionsOpened: number;
}

export interface Transport {
  /** Sends one attempt. Rejects with UpstreamFailure, or with `cancel.reason` when cancelled. */
  send(req: UpstreamRequest, cancel: Cancel): Promise<UpstreamResponse>;
  stats(): TransportStats;
  close(): Promise<void>;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ECONNABORTED']);

/** Classify a socket-level error raised before any response arrived. */
export function classifySocketError(err: unknown, connected: boolean): FailureOutcome {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (!connected && CONNECT_CODES.has(code)) return 'connect_error';
  if (code.startsWith('HPE_') || code === 'ERR_HTTP2_PROTOCOL_ERROR' || code === 'ERR_INVALID_HTTP_RESPONSE') return 'protocol';
  if (!connected) return 'connect_error';
  return 'reset';
}
