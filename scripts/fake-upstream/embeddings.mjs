/**
 * embeddings.mjs: POST /v1/embeddings.
 *
 * Vectors are deterministic (derived from sha256 of the text), `dimensions`
 * sized, and float32 so the JSON floats and `encoding_format: "base64"` (little-
 * endian float32 bytes, as OpenAI sends them) describe the same vector.
 */
import crypto from 'node:crypto';
import { HttpError } from './errors.mjs';
import { sendJson } from './answers.mjs';
import { requireModel } from './models.mjs';
import { fingerprint } from './state.mjs';
import { countWords } from './tokens.mjs';

const MAX_EMBEDDING_DIMENSIONS = 4096;
const DEFAULT_EMBEDDING_DIMENSIONS = 8;

/**
 * Deterministic pseudo-embedding: sha256 blocks of the text give 16 values each in [-1, 1].
 * Values are float32 so the float and base64 answers describe the same vector.
 * @param {string} text
 * @param {number} dimensions
 */
function fakeEmbedding(text, dimensions) {
  const out = new Float32Array(dimensions);
  for (let block = 0; block * 16 < dimensions; block++) {
    const digest = crypto.createHash('sha256').update(`${block}:`).update(text).digest();
    for (let j = 0; j < 16 && block * 16 + j < dimensions; j++) {
      out[block * 16 + j] = digest.readUInt16LE(j * 2) / 32767.5 - 1;
    }
  }
  return out;
}

/** Little-endian bytes of a Float32Array, whatever the host byte order. @param {Float32Array} vector */
function float32LeBase64(vector) {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

/**
 * The embedding inputs as texts plus their token counts.
 * @param {unknown} input
 * @returns {{text: string, tokens: number}[]}
 */
function embeddingInputs(input) {
  if (typeof input === 'string') return [{ text: input, tokens: countWords(input) }];
  if (Array.isArray(input) && input.length > 0) {
    // An array of token ids is a single input; otherwise each element is one input.
    if (input.every((x) => typeof x === 'number')) return [{ text: JSON.stringify(input), tokens: input.length }];
    return input.map((x) => {
      if (typeof x === 'string') return { text: x, tokens: countWords(x) };
      if (Array.isArray(x) && x.every((t) => typeof t === 'number')) return { text: JSON.stringify(x), tokens: x.length };
      throw new HttpError(400, "'input' must be a string, an array of strings or an array of token arrays.", { param: 'input' });
    });
  }
  throw new HttpError(400, "'input' is a required property and must not be empty.", { param: 'input' });
}

/** @param {import('./context.mjs').Ctx} ctx */
export function embeddings(ctx) {
  const body = ctx.json;
  const model = requireModel(ctx.state, body);
  const inputs = embeddingInputs(body.input);
  const dimensions = body.dimensions == null ? DEFAULT_EMBEDDING_DIMENSIONS : Number(body.dimensions);
  if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_EMBEDDING_DIMENSIONS) {
    throw new HttpError(400, `'dimensions' must be an integer between 1 and ${MAX_EMBEDDING_DIMENSIONS}.`, { param: 'dimensions' });
  }
  const base64 = body.encoding_format === 'base64';
  const data = inputs.map(({ text }, index) => {
    const vector = fakeEmbedding(text, dimensions);
    return { object: 'embedding', index, embedding: base64 ? float32LeBase64(vector) : Array.from(vector) };
  });
  const tokens = inputs.reduce((n, i) => n + i.tokens, 0);
  // system_fingerprint is not in OpenAI's embedding answer; clients ignore an unknown field,
  // and it tells a test which of several fakes answered, as in chat completions.
  const usage = { prompt_tokens: tokens, total_tokens: tokens };
  sendJson(ctx, 200, { object: 'list', data, model, usage, system_fingerprint: fingerprint(ctx.state) });
}
