/**
 * errors.mjs: the fake's error outcomes and the OpenAI error body they become.
 *
 * A handler throws `HttpError` and the request handler renders it as
 * `{"error":{message,type,param,code}}`; `ClientGoneError` means there is nobody
 * left to answer. Faults of action 'status' become an `HttpError` here too, so
 * plain requests and WebSocket upgrades fail the same way.
 */

/** An error that becomes an OpenAI-shaped error answer. */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {{type?: string, param?: string|null, code?: string|null, headers?: Record<string,string>, closeConnection?: boolean}} [extra]
   */
  constructor(status, message, extra = {}) {
    super(message);
    this.status = status;
    this.type = extra.type ?? 'invalid_request_error';
    this.param = extra.param ?? null;
    this.code = extra.code ?? null;
    this.headers = extra.headers ?? {};
    // Set when the request body was not read to its end: an h1 connection cannot be reused.
    this.closeConnection = extra.closeConnection ?? false;
  }
}

/** The client went away while we were still reading its request. */
export class ClientGoneError extends Error {}

/**
 * The body OpenAI sends with every error status.
 * @param {HttpError} err
 */
export function errorBody(err) {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

/**
 * The 404 OpenAI answers for a method and path it does not serve.
 * @param {{method: string, path: string}} request
 */
export function invalidUrl({ method, path }) {
  return new HttpError(404, `Invalid URL (${method} ${path})`);
}

/**
 * The error a 'status' fault answers with: its status, an optional Retry-After,
 * and a message, type and code that default to a plain server error.
 * @param {import('./faults.mjs').Fault} fault  already validated, so `status` is set
 */
export function statusFaultError(fault) {
  const status = /** @type {number} */ (fault.status);
  /** @type {Record<string,string>} */
  const headers = fault.retryAfter != null ? { 'retry-after': String(fault.retryAfter) } : {};
  const message = fault.message ?? `The fake upstream was told to fail with status ${status}.`;
  return new HttpError(status, message, { type: fault.type ?? 'server_error', code: fault.code ?? null, headers });
}
