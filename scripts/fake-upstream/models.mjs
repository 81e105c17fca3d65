/**
 * models.mjs: the fake's models: GET /v1/models, GET /v1/models/{id}, and the
 * `model` check every generating endpoint makes.
 *
 * Without a `models` option any id starting with 'fake' exists (five are
 * listed); with one, exactly those ids exist, as on a server that loaded only
 * them. Anything else is the 404 `model_not_found` OpenAI answers for an
 * unknown model.
 */
import { HttpError } from './errors.mjs';
import { sendJson } from './answers.mjs';

/** @typedef {import('./context.mjs').Ctx} Ctx */
/** @typedef {import('./state.mjs').State} State */

const MODEL_CREATED = 1700000000;
const MODEL_IDS = ['fake-model', 'fake-model-2', 'fake-embed', 'fake-tts', 'fake-whisper'];

/** @param {string} id */
function modelObject(id) {
  return { id, object: 'model', created: MODEL_CREATED, owned_by: 'fake' };
}

/**
 * @param {State} state
 * @param {string} id
 */
function serves(state, id) {
  return state.models ? state.models.includes(id) : id.startsWith('fake');
}

/**
 * The request's `model`, which must name a model this fake serves.
 * @param {State} state
 * @param {Record<string, any>} body
 * @returns {string}
 */
export function requireModel(state, body) {
  const model = body.model;
  if (typeof model !== 'string' || model === '') {
    throw new HttpError(400, 'you must provide a model parameter');
  }
  if (!serves(state, model)) {
    throw new HttpError(404, `The model '${model}' does not exist or you do not have access to it.`, {
      code: 'model_not_found',
    });
  }
  return model;
}

/** @param {Ctx} ctx */
export function listModels(ctx) {
  sendJson(ctx, 200, { object: 'list', data: (ctx.state.models ?? MODEL_IDS).map(modelObject) });
}

/**
 * @param {Ctx} ctx
 * @param {RegExpExecArray} match
 */
export function getModel(ctx, match) {
  let id = match[1];
  try {
    id = decodeURIComponent(id);
  } catch {
    // keep the raw id
  }
  if (!serves(ctx.state, id)) {
    throw new HttpError(404, `The model '${id}' does not exist`, { code: 'model_not_found' });
  }
  sendJson(ctx, 200, modelObject(id));
}
