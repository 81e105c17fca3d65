/**
 * Every error the proxy makes itself: one kind per outcome, each with its HTTP status,
 * OpenAI `type` and stable `code`, rendered by one function in the OpenAI error shape
 * (`{"error":{message,type,param,code}}`) so every SDK parses it. Code decides on `kind`,
 * never on message text.
 */
export type ProxyErrorKind =
  | 'not_found'
  | 'method_not_allowed'
  | 'body_too_large'
  | 'bad_request'
  | 'unauthorized'
  | 'request_timeout'
  | 'rate_limited'
  | 'tokens_limited'
  | 'concurrency_limited'
  | 'upstream_unreachable'
  | 'upstream_protocol'
  | 'upstream_timeout'
  | 'circuit_open'
  | 'no_upstream_available'
  | 'queue_full'
  | 'draining'
  | 'headers_too_large'
  | 'internal';

interface KindInfo {
  status: number;
  type: string;
  code: string;
  /** The proxy already spent its retries: tell the SDKs not to add theirs. */
  noRetry: boolean;
}

const KINDS: Record<ProxyErrorKind, KindInfo> = {
  not_found: { status: 404, type: 'invalid_request_error', code: 'not_found', noRetry: false },
  method_not_allowed: { status: 405, type: 'invalid_request_error', code: 'method_not_allowed', noRetry: false },
  body_too_large: { status: 413, type: 'invalid_request_error', code: 'request_too_large', noRetry: false },
  bad_request: { status: 400, type: 'invalid_request_error', code: 'bad_request', noRetry: false },
  unauthorized: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key', noRetry: false },
  request_timeout: { status: 408, type: 'invalid_request_error', code: 'request_timeout', noRetry: true },
  rate_limited: { status: 429, type: 'requests', code: 'rate_limit_exceeded', noRetry: false },
  tokens_limited: { status: 429, type: 'tokens', code: 'rate_limit_exceeded', noRetry: false },
  concurrency_limited: { status: 429, type: 'requests', code: 'concurrency_limit_exceeded', noRetry: false },
  upstream_unreachable: { status: 503, type: 'service_unavailable_error', code: 'upstream_unreachable', noRetry: true },
  upstream_protocol: { status: 502, type: 'server_error', code: 'upstream_protocol_error', noRetry: true },
  upstream_timeout: { status: 504, type: 'server_error', code: 'upstream_timeout', noRetry: true },
  circuit_open: { status: 503, type: 'service_unavailable_error', code: 'circuit_open', noRetry: false },
  no_upstream_available: { status: 503, type: 'service_unavailable_error', code: 'no_upstream_available', noRetry: false },
  queue_full: { status: 503, type: 'service_unavailable_error', code: 'queue_full', noRetry: false },
  draining: { status: 503, type: 'service_unavailable_error', code: 'draining', noRetry: false },
  headers_too_large: { status: 431, type: 'invalid_request_error', code: 'headers_too_large', noRetry: false },
  // the proxy's own bug: never blamed on the upstream (that would be 502 upstream_protocol_error)
  internal: { status: 500, type: 'server_error', code: 'internal_error', noRetry: false },
};

export class ProxyError extends Error {
  readonly kind: ProxyErrorKind;
  readonly status: number;
  readonly type: string;
  readonly code: string;
  /** Seconds for a `Retry-After` header, when the wait is known. */
  readonly retryAfterSec: number | undefined;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    kind: ProxyErrorKind,
    message: string,
    opts: { retryAfterSec?: number; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    const info = KINDS[kind];
    this.name = 'ProxyError';
    this.kind = kind;
    this.status = info.status;
    this.type = info.type;
    this.code = info.code;
    this.retryAfterSec = opts.retryAfterSec;
    this.headers = opts.headers ?? {};
  }

  /** The headers that go with this error besides content-type. */
  responseHeaders(): Record<string, string> {
    const h: Record<string, string> = { ...this.headers };
    if (this.retryAfterSec !== undefined) h['retry-after'] = String(Math.max(1, Math.ceil(this.retryAfterSec)));
    else if (KINDS[this.kind].noRetry) h['x-should-retry'] = 'false';
    return h;
  }
}

/** The OpenAI error envelope, as a JSON string. */
export function errorBody(message: string, type: string, code: string | null, param: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

export function renderError(err: ProxyError): string {
  return errorBody(err.message, err.type, err.code);
}

/** What the client gets for one of the proxy's own errors: the one place its head and body are made. */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Record<string, string | number>;
  readonly body: string;
}

export function errorAnswer(err: ProxyError, requestId: string, extra?: Record<string, string>): ErrorAnswer {
  const body = renderError(err);
  return {
    status: err.status,
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestId,
      ...extra,
      ...err.responseHeaders(),
      // the rest of an oversized or stalled body is never read, and a draining proxy takes no
      // more requests on this connection: it cannot be reused
      ...(CLOSES_CONNECTION.has(err.kind) ? { connection: 'close' } : {}),
    },
    body,
  };
}

const CLOSES_CONNECTION: ReadonlySet<ProxyErrorKind> = new Set(['body_too_large', 'request_timeout', 'draining']);
