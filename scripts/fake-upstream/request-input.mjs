/**
 * request-input.mjs: what a client sent, read the way the tests check it.
 *
 * The raw path and query (never normalised: tests check exactly what the proxy
 * forwarded), raw headers flattened with repeats kept visible, the body read
 * under a size limit and hashed, a JSON body parsed the way the OpenAI API
 * does, and small integers from headers and fault fields.
 */
import crypto from 'node:crypto';
import { ClientGoneError, HttpError } from './errors.mjs';

export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** @param {Buffer|string} data */
export function sha256Hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** @param {string} rawUrl */
export function splitUrl(rawUrl) {
  // Keep the raw path and query: tests check exactly what the proxy forwarded.
  const q = rawUrl.indexOf('?');
  return q < 0 ? { path: rawUrl, query: '' } : { path: rawUrl.slice(0, q), query: rawUrl.slice(q + 1) };
}

/**
 * Flattened raw headers to a plain object. Repeated headers are joined with ', ' so a
 * duplicated header stays visible; h2 pseudo-headers (':path'...) are dropped.
 * @param {string[]} rawHeaders
 */
export function headersFromRaw(rawHeaders) {
  /** @type {Record<string,string>} */
  const out = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (name.startsWith(':')) continue;
    const value = String(rawHeaders[i + 1]);
    out[name] = Object.hasOwn(out, name) ? `${out[name]}, ${value}` : value;
  }
  return out;
}

/**
 * A non-negative integer from a header, an option or a fault field, or the fallback.
 * @param {unknown} value
 * @param {number} fallback
 * @param {number} max
 */
export function intOr(value, fallback, max) {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : fallback;
}

/** @param {number} limit */
function tooLarge(limit) {
  return new HttpError(413, `Request body too large: the maximum is ${limit} bytes.`, { closeConnection: true });
}

/**
 * Read the whole request body, refusing more than `limit` bytes.
 * @param {any} req  http.IncomingMessage or http2.Http2ServerRequest
 * @param {number} limit
 * @returns {Promise<Buffer>}
 */
export function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume(); // discard what comes, we answer 413 right away
      reject(tooLarge(limit));
      return;
    }
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    let done = false;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.off('data', onData);
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.once('close', () => {
      if (done) return;
      done = true;
      reject(new ClientGoneError('client went away while sending its body'));
    });
  });
}

/**
 * Parse a JSON object body the way the OpenAI API does: anything else is a 400.
 * @param {Buffer} body
 */
export function parseJsonBody(body) {
  let value;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(
      400,
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
    );
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'The request body must be a JSON object.');
  }
  return value;
}
