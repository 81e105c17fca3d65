/**
 * multipart.mjs: a small multipart/form-data parser (RFC 7578 over RFC 2046)
 * and the form lookups the upload endpoints make.
 *
 * It works on the complete body and keeps part contents binary-exact, since the
 * tests upload arbitrary bytes through the proxy and check their sha256.
 */
import { HttpError } from './errors.mjs';

const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * @typedef {object} MultipartPart
 * @property {string|undefined} name
 * @property {string|undefined} filename
 * @property {string|undefined} contentType
 * @property {Record<string,string>} headers
 * @property {Buffer} content
 */

/**
 * @param {string|undefined} contentType
 * @returns {string|null}
 */
function multipartBoundary(contentType) {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return null;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : null;
}

/**
 * One parameter of a Content-Disposition value (`name`, `filename`), quoted or not.
 * @param {string} value
 * @param {string} key
 */
function dispositionParam(value, key) {
  // `(?:^|;)\s*name` does not match inside `filename` because a ';' must come first.
  const re = new RegExp(`(?:^|;)\\s*${key}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))`, 'i');
  const m = re.exec(value);
  if (!m) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2].trim();
}

/**
 * @param {string} headerText
 * @param {Buffer} content
 * @returns {MultipartPart}
 */
function buildPart(headerText, content) {
  /** @type {Record<string,string>} */
  const headers = {};
  for (const line of headerText.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const disposition = headers['content-disposition'] ?? '';
  return {
    name: dispositionParam(disposition, 'name'),
    filename: dispositionParam(disposition, 'filename'),
    contentType: headers['content-type'],
    headers,
    content,
  };
}

/**
 * A small multipart/form-data parser over the complete body (RFC 7578 / 2046):
 * parts are split on "--boundary", part headers end at CRLFCRLF, and a part's
 * content ends right before "CRLF--boundary". Contents stay binary-exact.
 * @param {Buffer} body
 * @param {string|undefined} contentType
 * @returns {MultipartPart[]}
 */
export function parseMultipart(body, contentType) {
  const boundary = multipartBoundary(contentType);
  if (!boundary) throw new HttpError(400, 'Expected a multipart/form-data body with a boundary.');
  const malformed = () => new HttpError(400, 'Malformed multipart/form-data body.');
  const opening = Buffer.from(`--${boundary}`);
  const separator = Buffer.from(`\r\n--${boundary}`);

  // The first delimiter opens the body, or follows a preamble and a CRLF.
  /** @type {number} */
  let pos;
  if (body.subarray(0, opening.length).equals(opening)) pos = opening.length;
  else {
    const at = body.indexOf(separator);
    if (at < 0) throw malformed();
    pos = at + separator.length;
  }

  /** @type {MultipartPart[]} */
  const parts = [];
  for (;;) {
    // "--boundary--" closes the body.
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts;
    // Skip optional transport padding up to the CRLF ending the delimiter line.
    const lineEnd = body.indexOf(CRLF, pos);
    if (lineEnd < 0) throw malformed();
    const headerStart = lineEnd + 2;
    let headerText = '';
    let contentStart;
    if (body[headerStart] === 0x0d && body[headerStart + 1] === 0x0a) {
      contentStart = headerStart + 2; // a part without headers
    } else {
      const headerEnd = body.indexOf(CRLFCRLF, headerStart);
      if (headerEnd < 0) throw malformed();
      headerText = body.toString('utf8', headerStart, headerEnd);
      contentStart = headerEnd + 4;
    }
    const contentEnd = body.indexOf(separator, contentStart);
    if (contentEnd < 0) throw malformed();
    parts.push(buildPart(headerText, body.subarray(contentStart, contentEnd)));
    pos = contentEnd + separator.length;
  }
}

/**
 * The text of a plain form field (a part without a filename).
 * @param {MultipartPart[]} parts
 * @param {string} name
 */
export function fieldValue(parts, name) {
  const part = parts.find((p) => p.name === name && p.filename === undefined);
  return part ? part.content.toString('utf8') : undefined;
}

/**
 * The `file` part, which OpenAI's upload endpoints require.
 * @param {MultipartPart[]} parts
 */
export function requireFilePart(parts) {
  const file = parts.find((p) => p.name === 'file');
  if (!file) throw new HttpError(400, "'file' is a required property", { param: 'file' });
  return file;
}
