/**
 * files.mjs: the Files API: upload (multipart), list, get, delete, download.
 *
 * Files live in the instance's state, at most MAX_STORED_FILES of them (the
 * oldest are dropped), so memory stays bounded however long a benchmark runs.
 * Each file's metadata carries its sha256 so tests can check the round trip.
 */
import { HttpError } from './errors.mjs';
import { sendBuffer, sendJson } from './answers.mjs';
import { fieldValue, parseMultipart, requireFilePart } from './multipart.mjs';
import { sha256Hex } from './request-input.mjs';
import { nextId, nowSeconds } from './state.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

const MAX_STORED_FILES = 20;

/** @param {Ctx} ctx */
export function uploadFile(ctx) {
  const parts = parseMultipart(ctx.body, ctx.headers['content-type']);
  const purpose = fieldValue(parts, 'purpose');
  if (!purpose) throw new HttpError(400, "'purpose' is a required property", { param: 'purpose' });
  const file = requireFilePart(parts);
  const content = Buffer.from(file.content); // own copy, not a view pinning the whole body
  const meta = {
    id: `file-${nextId(ctx.state)}`,
    object: 'file',
    bytes: content.length,
    created_at: nowSeconds(),
    filename: file.filename ?? 'upload',
    purpose,
    sha256: sha256Hex(content),
  };
  const { files } = ctx.state;
  files.set(meta.id, { meta, content });
  while (files.size > MAX_STORED_FILES) files.delete(/** @type {string} */ (files.keys().next().value));
  sendJson(ctx, 200, meta);
}

/**
 * @param {Ctx} ctx
 * @param {string} id
 */
function storedFile(ctx, id) {
  const file = ctx.state.files.get(id);
  if (!file) throw new HttpError(404, `No such File object: ${id}`, { param: 'id' });
  return file;
}

/** @param {Ctx} ctx */
export function listFiles(ctx) {
  sendJson(ctx, 200, { object: 'list', data: [...ctx.state.files.values()].map((f) => f.meta) });
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
export function getFile(ctx, match) {
  sendJson(ctx, 200, storedFile(ctx, match[1]).meta);
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
export function deleteFile(ctx, match) {
  storedFile(ctx, match[1]);
  ctx.state.files.delete(match[1]);
  sendJson(ctx, 200, { id: match[1], object: 'file', deleted: true });
}

/** @param {Ctx} ctx @param {RegExpExecArray} match */
export function getFileContent(ctx, match) {
  sendBuffer(ctx, 200, { 'content-type': 'application/octet-stream' }, storedFile(ctx, match[1]).content);
}
