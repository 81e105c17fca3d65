/**
 * The last event of a server-sent event stream the upstream broke, in the shape the
 * client's SDK reads for that endpoint (shapes from the OpenAI spec,
 * `../shared/reference/openai-openapi.yaml`):
 *
 * - Responses API (`POST /v1/responses`, and `GET /v1/responses/{id}?stream=true`, which
 *   resumes one): `ResponseErrorEvent`, an `event: error` whose data is
 *   `{"type":"error","code","message","param","sequence_number"}`, all five required. Its
 *   `sequence_number` follows the last one the client saw (events are numbered in order and
 *   `starting_after=N` resumes by them), read from the last events written; 0 when there is
 *   none.
 * - Assistants runs (`/v1/threads/runs`, `/v1/threads/{id}/runs`, `…/submit_tool_outputs`):
 *   `ErrorEvent`, an `event: error` whose data is the `Error` object itself.
 * - Everything else (chat and legacy completions, whose events are untyped `data:` lines,
 *   and the image and audio streams, whose typed unions have no error event):
 *   `data: {"error":{message,type,param,code}}`, which the OpenAI SDKs turn into an APIError.
 *
 * Pure, and called once per broken stream, never per chunk.
 */

export type StreamErrorShape = 'responses' | 'assistants' | 'chat';

const RESPONSES = /^\/v1\/responses(?:\/[^/]+)?$/;
const ASSISTANTS = /^\/v1\/threads\/(?:runs|[^/]+\/runs(?:\/[^/]+\/submit_tool_outputs)?)$/;

/** Which error event a stream of this request path ends with (`url` may carry a query). */
export function streamErrorShape(url: string): StreamErrorShape {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (RESPONSES.test(path)) return 'responses';
  if (ASSISTANTS.test(path)) return 'assistants';
  return 'chat';
}

const SEQ_KEY = Buffer.from('"sequence_number"');

/**
 * The last `"sequence_number": N` in `events` (the tail of the stream as written), or null.
 * A key inside a JSON string value cannot match: its quotes are escaped there.
 */
export function lastSequenceNumber(events: Buffer | null): number | null {
  if (events === null) return null;
  let from = events.length;
  while (from > 0) {
    const at = events.lastIndexOf(SEQ_KEY, from - 1);
    if (at < 0) return null;
    let i = at + SEQ_KEY.length;
    while (isSpace(events[i])) i++;
    if (events[i] === 0x3a /* : */) {
      i++;
      while (isSpace(events[i])) i++;
      let n = 0;
      const start = i;
      while (i < events.length && events[i]! >= 0x30 && events[i]! <= 0x39 && i - start < 15) n = n * 10 + (events[i++]! - 0x30);
      if (i > start) return n;
    }
    from = at;
  }
  return null;
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * The bytes that end a broken stream for the request at `url`: one whole SSE event.
 * `lastEvents` is the last complete event(s) written to the client, or null.
 */
export function streamErrorEvent(url: string, lastEvents: Buffer | null, message: string, code: string): string {
  switch (streamErrorShape(url)) {
    case 'responses': {
      const seen = lastSequenceNumber(lastEvents);
      const data = { type: 'error', code, message, param: null, sequence_number: seen === null ? 0 : seen + 1 };
      return `event: error\ndata: ${JSON.stringify(data)}\n\n`;
    }
    case 'assistants':
      return `event: error\ndata: ${JSON.stringify({ message, type: 'server_error', param: null, code })}\n\n`;
    default:
      return `data: ${JSON.stringify({ error: { message, type: 'server_error', param: null, code } })}\n\n`;
  }
}
