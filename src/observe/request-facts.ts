/**
 * The `model`, `stream` flag and requested maximum of tokens of a request, for metric labels,
 * the request log and token reservations, read from the body the proxy has already buffered.
 * It never throws and never costs more than a bounded amount: a body that is not worth parsing
 * yields nulls, never a slow request.
 */

export interface RequestFacts {
  model: string | null;
  stream: boolean;
  /**
   * The most tokens the answer may hold, as the request says: top-level
   * `max_completion_tokens`, else `max_tokens`, else `max_output_tokens` (responses), the first
   * that is a positive integer (as vLLM reads them: a 0 or null falls through to the next),
   * capped at MAX_REQUESTED_TOKENS; null when none is.
   */
  maxTokens: number | null;
}

/**
 * Bodies up to this size are JSON.parsed; larger ones are scanned. Measured on Node 20: parsing
 * a 125 KiB body takes ~0.1 ms, but past ~128 KiB the body's string (and a base64 image inside
 * it) lands in V8's large-object space and the cost jumps: ~2.5 ms at 250 KiB, ~7 ms at 1 MiB,
 * per request, on the event loop. Chat requests without images stay well below this.
 */
const MAX_PARSE_BYTES = 128 * 1024;
/** Bytes looked at from each end of a body too big to parse (and of every multipart body). */
const WINDOW_BYTES = 64 * 1024;
const MAX_MODEL_CHARS = 200;
/**
 * 2^24 tokens: more than any model's context window (the largest are ~10M), so no real request
 * is cut; a larger value (`1e300`) is read as this, keeping sums of tokens exact integers.
 */
const MAX_REQUESTED_TOKENS = 2 ** 24;
/** In the order they are honoured; all three at once is not a request OpenAI accepts anyway. */
const MAX_TOKENS_KEYS = ['max_completion_tokens', 'max_tokens', 'max_output_tokens'] as const;

/** A fresh object each time: callers may fill in what the body did not say. */
const none = (): RequestFacts => ({ model: null, stream: false, maxTokens: null });

const JSON_TYPE = /^\s*application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;
const MULTIPART_TYPE = /^\s*multipart\/form-data\s*;/i;
const BOUNDARY = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i;
// A JSON string value may hold escapes; they are decoded with JSON.parse below.
const MODEL_FIELD = /"model"\s*:\s*"((?:[^"\\\r\n]|\\.){1,800})"/;
const STREAM_TRUE = /"stream"\s*:\s*true\b/;
// Tried only where `"max_` starts (sticky: lastIndex is set before each exec), as a regex
// searching 64 KiB by itself costs ~12 µs and String#indexOf ~1 µs. A plain integer only:
// `1.5`, `1e3` and negative numbers are not a count (and rare enough).
const MAX_TOKENS_FIELD = /"(max_completion_tokens|max_tokens|max_output_tokens)"\s*:\s*(\d+)(?![.eE])/y;
const MODEL_PART = /^content-disposition[ \t]*:[ \t]*form-data[ \t]*;(?:[^\r\n]*;)?[ \t]*name[ \t]*=[ \t]*(?:"model"|model)[ \t]*(?:;|$)/im;

/** The model, stream flag and max tokens of a JSON request body, parsed only when cheap enough. */
export function requestFacts(body: Buffer, contentType: string | undefined): RequestFacts {
  if (typeof contentType !== 'string') return none();
  try {
    if (body.length === 0) return none();
    if (JSON_TYPE.test(contentType)) return body.length <= MAX_PARSE_BYTES ? parsedFacts(body) : scannedFacts(body);
    if (MULTIPART_TYPE.test(contentType)) return { model: multipartModel(body, contentType), stream: false, maxTokens: null };
  } catch {
    // Only a caller's type error (no Buffer) lands here: facts are optional, the request is not.
  }
  return none();
}

/** Cost: one UTF-8 decode and one JSON.parse of the body: ~2 µs for a 200-byte chat request, ~0.1 ms at 128 KiB. */
function parsedFacts(body: Buffer): RequestFacts {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return none();
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return none();
  const fields = doc as Record<string, unknown>;
  const { model, stream } = fields;
  let maxTokens: number | null = null;
  for (const key of MAX_TOKENS_KEYS) if ((maxTokens = tokenCount(fields[key])) !== null) break;
  return { model: typeof model === 'string' && model.length > 0 ? cap(model) : null, stream: stream === true, maxTokens };
}

/**
 * A body over 128 KiB is mostly base64 images or long histories: parsing it all would cost
 * milliseconds (see MAX_PARSE_BYTES) just for a label. Instead a regex looks at the first and
 * the last 64 KiB only: ~40 µs whatever the size. The head holds
 * `model` when the client wrote it first (openai-node keeps the caller's key order, and most
 * examples put `model` first); the tail holds it for openai-python, which writes `messages`
 * first and then `model` and the few other parameters given (`max_tokens` and its kin
 * likewise). A `"model"` or `"max_tokens"` key nested inside a message or a tool's schema is
 * not told apart: OpenAI message shapes have none, and a schema's property holds an object,
 * which is no count.
 */
function scannedFacts(body: Buffer): RequestFacts {
  const head = body.toString('utf8', 0, WINDOW_BYTES);
  const tail = body.toString('utf8', body.length - WINDOW_BYTES);
  const model = jsonStringField(head) ?? jsonStringField(tail);
  return { model, stream: STREAM_TRUE.test(head) || STREAM_TRUE.test(tail), maxTokens: scannedMaxTokens(head, tail) };
}

/** The value of the first key of MAX_TOKENS_KEYS found, the head before the tail. */
function scannedMaxTokens(head: string, tail: string): number | null {
  let found: number | null = null;
  let rank: number = MAX_TOKENS_KEYS.length; // of the key found: lower is preferred
  for (const text of [head, tail]) {
    for (let at = text.indexOf('"max_'); at !== -1 && rank > 0; at = text.indexOf('"max_', at + 1)) {
      MAX_TOKENS_FIELD.lastIndex = at;
      const m = MAX_TOKENS_FIELD.exec(text);
      const count = m === null ? null : tokenCount(Number(m[2]));
      const keyRank = m === null ? -1 : MAX_TOKENS_KEYS.indexOf(m[1] as (typeof MAX_TOKENS_KEYS)[number]);
      if (count !== null && keyRank < rank) {
        found = count;
        rank = keyRank;
      }
    }
  }
  return found;
}

/** A positive integer, capped at MAX_REQUESTED_TOKENS; else null. */
function tokenCount(v: unknown): number | null {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return null;
  return Math.min(v, MAX_REQUESTED_TOKENS);
}

function jsonStringField(text: string): string | null {
  const m = MODEL_FIELD.exec(text);
  if (m === null) return null;
  try {
    return cap(JSON.parse(`"${m[1]}"`) as string);
  } catch {
    return null;
  }
}

/**
 * The value of the form field `model` (RFC 7578), looked for in the first and the last 64 KiB
 * only: multipart bodies carry audio or images, and the field comes before the file with
 * openai-python (httpx writes fields first) but after it with openai-node (caller's order).
 * A boundary cannot occur inside a part, so every `--boundary` found starts a real part.
 */
function multipartModel(body: Buffer, contentType: string): string | null {
  const b = BOUNDARY.exec(contentType);
  const boundary = b === null ? undefined : (b[1] ?? b[2]);
  if (boundary === undefined) return null;
  const dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
  const headEnd = Math.min(body.length, WINDOW_BYTES);
  const fromHead = modelPartIn(body.subarray(0, headEnd), dashBoundary);
  if (fromHead !== null || headEnd === body.length) return fromHead;
  return modelPartIn(body.subarray(Math.max(headEnd, body.length - WINDOW_BYTES)), dashBoundary);
}

/** Walks the parts that start inside `win` (a view: no copy) and reads the `model` one. */
function modelPartIn(win: Buffer, dashBoundary: Buffer): string | null {
  let at = win.indexOf(dashBoundary);
  while (at !== -1) {
    const headersStart = at + dashBoundary.length + 2; // past the CRLF after the delimiter
    if (win[headersStart - 2] === 0x2d /* - */) return null; // `--boundary--`: the last one
    const headersEnd = win.indexOf('\r\n\r\n', headersStart);
    if (headersEnd === -1) return null;
    const next = win.indexOf(dashBoundary, headersEnd + 4);
    if (MODEL_PART.test(win.toString('latin1', headersStart, headersEnd))) {
      // The value runs to the CRLF before the next delimiter; a part cut by the window is lost.
      if (next === -1) return null;
      const value = win.toString('utf8', headersEnd + 4, next - 2).trim();
      return value.length > 0 ? cap(value) : null;
    }
    at = next;
  }
  return null;
}

function cap(model: string): string {
  return model.length > MAX_MODEL_CHARS ? model.slice(0, MAX_MODEL_CHARS) : model;
}
