/**
 * routes.mjs: the /v1/ route table: which handler answers which method and path.
 *
 * Patterns match the raw pathname; a route marked `json` gets its body parsed
 * as a JSON object first (a 400 otherwise), and no match is OpenAI's 404.
 */
import { invalidUrl } from './errors.mjs';
import { parseJsonBody } from './request-input.mjs';
import { getModel, listModels } from './models.mjs';
import { chatCompletions, completions } from './chat.mjs';
import { embeddings } from './embeddings.mjs';
import { speech, transcriptions } from './audio.mjs';
import { deleteFile, getFile, getFileContent, listFiles, uploadFile } from './files.mjs';
import { responses } from './responses.mjs';
import { echo } from './echo.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */

/**
 * @typedef {object} Route
 * @property {string} method  '*' = any method
 * @property {RegExp} pattern matched against the raw pathname
 * @property {(ctx: Ctx, match: RegExpExecArray) => void|Promise<void>} handler
 * @property {boolean} [json] parse the body as a JSON object first
 */

/** @type {Route[]} */
const ROUTES = [
  { method: 'GET', pattern: /^\/v1\/models$/, handler: listModels },
  { method: 'GET', pattern: /^\/v1\/models\/([^/]+)$/, handler: getModel },
  { method: 'POST', pattern: /^\/v1\/chat\/completions$/, handler: chatCompletions, json: true },
  { method: 'POST', pattern: /^\/v1\/completions$/, handler: completions, json: true },
  { method: 'POST', pattern: /^\/v1\/embeddings$/, handler: embeddings, json: true },
  { method: 'POST', pattern: /^\/v1\/audio\/speech$/, handler: speech, json: true },
  { method: 'POST', pattern: /^\/v1\/audio\/transcriptions$/, handler: transcriptions },
  { method: 'GET', pattern: /^\/v1\/files$/, handler: listFiles },
  { method: 'POST', pattern: /^\/v1\/files$/, handler: uploadFile },
  { method: 'GET', pattern: /^\/v1\/files\/([^/]+)$/, handler: getFile },
  { method: 'DELETE', pattern: /^\/v1\/files\/([^/]+)$/, handler: deleteFile },
  { method: 'GET', pattern: /^\/v1\/files\/([^/]+)\/content$/, handler: getFileContent },
  { method: 'POST', pattern: /^\/v1\/responses$/, handler: responses, json: true },
  { method: '*', pattern: /^\/v1\/echo(?:\/.*)?$/, handler: echo },
];

/**
 * Answer a /v1/ request whose body has been read.
 * @param {Ctx} ctx
 */
export async function route(ctx) {
  for (const r of ROUTES) {
    if (r.method !== '*' && r.method !== ctx.method) continue;
    const match = r.pattern.exec(ctx.path);
    if (!match) continue;
    if (r.json) ctx.json = parseJsonBody(ctx.body);
    await r.handler(ctx, match);
    return;
  }
  throw invalidUrl(ctx);
}
