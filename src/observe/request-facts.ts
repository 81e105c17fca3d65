/**
 * The `model` and `stream` flag of a request, for metric labels and the request log, read from
 * the body the proxy has already buffered. It never throws and never costs more than a bounded
 * amount: a body that is not worth parsing yields nulls, never a slow request.
 */

export interface RequestFacts {
  model: string | null;
  stream: boolean;
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

/** A fresh object each time: callers may fill in what the body did not say. */
const none = (): RequestFacts => ({ model: null, stream: false });

const JSON_TYPE = /^\s*application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;
const MULTIPART_TYPE = /^\s*multipart\/form-data\s*;/i;
const BOUNDARY = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i;
// A JSON string value may hold escapes; they are decoded with JSON.parse below.
const MODEL_FIELD = /"model"\s*:\s*"((?:[^"\\\r\n]|\\.){1,800})"/;
const STREAM_TRUE = /"stream"\s*:\s*true\b/;
const MODEL_PART = /^content-disposition[ \t]*:[ \t]*form-data[ \t]*;(?:[^\r\n]*;)?[ \t]*name[ \t]*=[ \t]*(?:"model"|model)[ \t]*(?:;|$)/im;

/** The model and stream flag of a JSON request body, parsed only when cheap enough. */
export function requestFacts(body: Buffer, contentType: string | undefined): RequestFacts {
  if (typeof contentType !== 'string') return none();
  try {
    if (body.length === 0) return none();
    if (JSON_TYPE.test(contentType)) return body.length <= MAX_PARSE_BYTES ? parsedFacts(body) : scannedFacts(body);
    if (MULTIPART_TYPE.test(contentType)) return { model: multipartModel(body, contentType), stream: false };
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
  const { model, stream } = doc as Record<string, unknown>;
  return { model: typeof model === 'string' && model.length > 0 ? cap(model) : null, stream: stream === true };
}

/**
 * A body over 128 KiB is mostly base64 images or long histories: parsing it all would cost
 * milliseconds (see MAX_PARSE_BYTES) just for a label. Instead a regex looks at the first and
 * the last 64 KiB only: ~40 µs whatever the size. The head holds
 * `model` when the client wrote it first (openai-node keeps the caller's key order, and most
 * examples put `model` first); the tail holds it for openai-python, which writes `messages`
 * first and then `model` and the few other parameters given. A `"model"` key nested inside
 * a message is not told apart: OpenAI message shapes have none.
 */
function scannedFacts(body: Buffer): RequestFacts {
  const head = body.toString('utf8', 0, WINDOW_BYTES);
  const tail = body.toString('utf8', body.length - WINDOW_BYTES);
  const model = jsonStringField(head) ?? jsonStringField(tail);
  return { model, stream: STREAM_TRUE.test(head) || STREAM_TRUE.test(tail) };
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
