/**
 * Where a request may go among several upstreams (a Route for UpstreamSet.choose):
 *
 * - **State that lives on one server** (files, uploads, batches, vector stores, assistants,
 *   threads, fine-tuning, evals, containers, conversations, stored chat completions) cannot
 *   be balanced blindly: an id made on one replica means nothing to another. It all goes to
 *   the home upstream (the first configured), and only there (no failover: a 503 is more
 *   honest than a 404 for an object that exists).
 * - **Stored responses**: `/v1/responses/{id}…` and a `POST /v1/responses` whose body names
 *   `previous_response_id` go to the upstream that made that response (ResponseHomes), else
 *   to the home upstream.
 * - **Everything else** is balanced among the upstreams that serve the model the request
 *   names: the body's `model` (read by request-facts), the path's for `GET /v1/models/{id}`,
 *   the query's for a WebSocket `/v1/realtime?model=…`.
 * - **The session key** (BALANCE=affinity only): `x-session-id`, else the body's `user`, else
 *   the start of the prompt (its first 1,024 characters), so a conversation keeps hitting the
 *   replica whose prefix cache holds it.
 * The forwarded bytes are never touched: fields are read from a parsed copy.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from '../upstream/upstream-set.js';
import type { ResponseHomes } from './response-homes.js';

const STATEFUL = /^\/v1\/(?:files|uploads|batches|vector_stores|assistants|threads|fine_tuning|evals|containers|conversations)(?:\/|$)/;
const STORED_COMPLETION = /^\/v1\/chat\/completions\/[^/]+/;
const RESPONSE_BY_ID = /^\/v1\/responses\/([^/]+)/;
/** `/v1/responses/{…}` paths that are operations, not ids. */
const RESPONSE_OPERATIONS: ReadonlySet<string> = new Set(['input_tokens', 'compact']);
const MODEL_BY_PATH = /^\/v1\/models\/([^/]+)$/;
const MAX_KEY_CHARS = 256;
const PROMPT_HEAD_CHARS = 1024;
/** Bodies parsed for their routing fields at most (request-facts' own limit). */
const MAX_PARSE_BYTES = 128 * 1024;

export interface RouteInput {
  readonly method: string;
  /** Path and query as the client sent them. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** The model request-facts read from the body, or null. */
  readonly model: string | null;
  /** The body when it was kept whole (null: streamed or none). */
  readonly body: Buffer | null;
}

export interface RouteOptions {
  readonly home: string;
  readonly responses: ResponseHomes;
  /** BALANCE=affinity: work out the session key. */
  readonly affinity: boolean;
}

export function routeOf(r: RouteInput, o: RouteOptions): Route {
  const q = r.url.indexOf('?');
  const path = q === -1 ? r.url : r.url.slice(0, q);
  if (STATEFUL.test(path) || STORED_COMPLETION.test(path)) return { model: null, key: null, pinned: o.home };
  const byId = RESPONSE_BY_ID.exec(path);
  if (byId !== null && !RESPONSE_OPERATIONS.has(byId[1]!)) return { model: null, key: null, pinned: o.responses.get(decodeSafe(byId[1]!)) ?? o.home };
  const wantFields = o.affinity || (r.method === 'POST' && path === '/v1/responses');
  const fields = wantFields && r.body !== null ? bodyFields(r.body) : null;
  const previous = fields?.previous_response_id;
  if (typeof previous === 'string' && path === '/v1/responses') return { model: r.model, key: null, pinned: o.responses.get(previous) ?? o.home };
  const model = r.model ?? modelOfPath(path, r.url, q);
  return { model, key: o.affinity ? sessionKey(r.headers, fields, r.body) : null, pinned: null };
}

function modelOfPath(path: string, url: string, q: number): string | null {
  const m = MODEL_BY_PATH.exec(path);
  if (m !== null) return decodeSafe(m[1]!);
  if (path === '/v1/realtime' && q !== -1) return new URLSearchParams(url.slice(q + 1)).get('model');
  return null;
}

function sessionKey(headers: IncomingHttpHeaders, fields: Record<string, unknown> | null, body: Buffer | null): string | null {
  const header = headers['x-session-id'];
  if (typeof header === 'string' && header !== '') return header.slice(0, MAX_KEY_CHARS);
  const user = fields?.['user'];
  if (typeof user === 'string' && user !== '') return `user:${user.slice(0, MAX_KEY_CHARS)}`;
  if (fields !== null) {
    const head = promptHead(fields);
    if (head !== null) return `prompt:${head}`;
  }
  // not parsed (too big to parse, or not JSON): the start of the body stands for the prompt's
  return body !== null && body.length > 0 ? `body:${body.toString('latin1', 0, PROMPT_HEAD_CHARS)}` : null;
}

/** The first characters of the prompt: chat `messages`, Responses `input`, completions `prompt`. */
export function promptHead(doc: Record<string, unknown>): string | null {
  const source = doc['messages'] ?? doc['input'] ?? doc['prompt'];
  if (typeof source === 'string') return source.slice(0, PROMPT_HEAD_CHARS);
  if (!Array.isArray(source)) return null;
  let head = '';
  for (const item of source) {
    const content = (item as { content?: unknown } | null)?.content ?? item;
    head += typeof content === 'string' ? content : JSON.stringify(content);
    head += '\n';
    if (head.length >= PROMPT_HEAD_CHARS) break;
  }
  return head === '' ? null : head.slice(0, PROMPT_HEAD_CHARS);
}

function bodyFields(body: Buffer): Record<string, unknown> | null {
  if (body.length === 0 || body.length > MAX_PARSE_BYTES) return null;
  try {
    const doc: unknown = JSON.parse(body.toString('utf8'));
    return typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? (doc as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
