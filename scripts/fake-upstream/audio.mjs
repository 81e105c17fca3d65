/**
 * audio.mjs: POST /v1/audio/speech (binary out) and POST /v1/audio/transcriptions
 * (multipart in).
 *
 * Both exist to prove the proxy carries bodies byte for byte: speech answers
 * deterministic bytes covering every byte value, and a transcription reports the
 * size and sha256 of the uploaded file and of the whole multipart body it got.
 */
import crypto from 'node:crypto';
import { HttpError } from './errors.mjs';
import { sendBuffer, sendJson } from './answers.mjs';
import { requireModel } from './models.mjs';
import { fieldValue, parseMultipart, requireFilePart } from './multipart.mjs';
import { sha256Hex } from './request-input.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

/**
 * Deterministic "audio": each 256-byte block is a permutation of 0..255 (multiply by an
 * odd number, add a seed byte), so every byte value appears and byte-exactness is tested.
 * @param {string} input
 */
function fakeAudio(input) {
  const size = Math.max(1024, input.length * 100);
  const seed = crypto.createHash('sha256').update(input).digest();
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = ((i & 255) * 167 + seed[(i >> 8) % seed.length]) & 255;
  return out;
}

/** @param {Ctx} ctx */
export function speech(ctx) {
  const body = ctx.json;
  requireModel(ctx.state, body);
  if (typeof body.input !== 'string') {
    throw new HttpError(400, "'input' is a required property and must be a string.", { param: 'input' });
  }
  sendBuffer(ctx, 200, { 'content-type': 'audio/mpeg' }, fakeAudio(body.input));
}

/** @param {Ctx} ctx */
export function transcriptions(ctx) {
  const parts = parseMultipart(ctx.body, ctx.headers['content-type']);
  const model = fieldValue(parts, 'model');
  if (model !== undefined) requireModel(ctx.state, { model });
  const file = requireFilePart(parts);
  sendJson(ctx, 200, {
    text: 'fake transcript',
    bytes: file.content.length,
    sha256: sha256Hex(file.content),
    body_bytes: ctx.body.length,
    body_sha256: sha256Hex(ctx.body),
  });
}
