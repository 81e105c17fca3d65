/**
 * Token usage read from upstream answers, for accounting, without slowing the answer down.
 *
 * Shapes (shared/reference/protocol-notes.md §2): chat, completions, embeddings carry
 * `usage: {prompt_tokens, completion_tokens?, total_tokens}` (embeddings: no completion, so 0);
 * responses and transcriptions `usage: {input_tokens, output_tokens}`, which a responses stream
 * sends in `response.completed`'s `data.response.usage`.
 * The wanted `usage` is the last `"usage"` object of a document (after `choices`, `data`,
 * `output`); only it is parsed, never a whole (maybe megabytes) answer. A byte search for
 * `"usage"` hits only keys: a `"` inside a JSON string is escaped (`\"`).
 */
import { B, find, lineStart, needle, objectStart, startsWith, valueStart } from './json-bytes.js';
import { SseTextCounter } from './text-chars.js';

/**
 * What an answer reports it cost. The charge is `promptTokens + completionTokens`, which is
 * the usage's `total_tokens`: cached prompt tokens are already inside `prompt_tokens` /
 * `input_tokens` (their `*_details.cached_tokens` is a part, not an addition), as reasoning
 * tokens are inside `completion_tokens` / `output_tokens`.
 */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** The part of `promptTokens` served from the prompt cache, when reported; for the log, never added to a charge. */
  cachedTokens: number | null;
}

const MAX_LINE_BYTES = 1024 * 1024; // longest unfinished line kept across chunks
const MAX_USAGE_BYTES = 4096; // a usage object with its *_details is a few hundred bytes
const MODEL_SCAN_CHUNKS = 8; // chunks scanned for a `"model":"..."` before giving up
const MAX_MODEL_CHARS = 200;

const DATA = Buffer.from('data:');
const USAGE_KEY = needle('"usage"');
const MODEL_KEY = needle('"model"');
const U = 0x75; // `u`: the byte after the quote of `"usage"`

/**
 * From a complete non-streamed JSON answer (chat, completions, embeddings, responses). null when absent/unparsable.
 * Cost: a native search backwards from the end, then JSON.parse of the usage object alone:
 * under 1 µs whatever the size of the answer.
 */
export function usageFromJson(body: Buffer): Usage | null {
  let hit = body.lastIndexOf(USAGE_KEY.bytes);
  // Skip later `"usage"` keys whose value is no object (a `metadata` string, say).
  while (hit > 0 && objectStart(body, hit + USAGE_KEY.bytes.length, body.length) === -1) {
    hit = body.lastIndexOf(USAGE_KEY.bytes, hit - 1);
  }
  return hit === -1 ? null : usageAfterKey(body, hit, body.length);
}

/**
 * Watches an SSE stream as it passes, chunk by chunk, without altering or holding it: its
 * usage, its model, and the characters of text it generated (text-chars.ts), for a stream
 * that reports no usage.
 *
 * Cost per chunk, for a 230-byte vLLM chat chunk on a 2.4 GHz EPYC VM: ~0.25 µs, of which
 * ~0.1 µs is the text count (scripts/bench/sse-watch.mjs): one search for `"usage"` and the
 * key that holds text, a look past the colon (a chat chunk's `"usage":null` is rejected
 * there), the delta's strings read, and finding the last LF. The usage object
 * alone is parsed, about once per stream. Nothing is copied unless an event is split across
 * chunks, and then only the unfinished line (at most 1 MiB). Lines end in LF or CRLF; bare CR
 * (allowed by SSE, used by no OpenAI-compatible server we know) or JSON spread over several
 * `data:` lines of one event yield no usage.
 */
export class SseUsageWatcher {
  #usage: Usage | null = null;
  #model: string | null = null;
  #modelFromUsage = false;
  #modelScans = 0;
  readonly #pieces: Buffer[] = []; // copies of the unfinished line's bytes, oldest first
  #pieceBytes = 0;
  #skipping = false; // the unfinished line outgrew MAX_LINE_BYTES: ignore bytes until its end
  readonly #text = new SseTextCounter();

  push(chunk: Buffer): void {
    let from = 0;
    if (this.#skipping || this.#pieceBytes > 0) {
      from = chunk.indexOf(B.LF) + 1; // 0: no LF, the unfinished line goes on
      if (from === 0) return this.#carry(chunk, 0, chunk.length);
      if (!this.#skipping) {
        this.#pieces.push(chunk.subarray(0, from)); // a view, released by the concat below
        const line = Buffer.concat(this.#pieces);
        this.#scan(line, 0, line.length);
      }
      this.#reset(false);
    }
    // Upstreams flush whole events, so the last byte is nearly always the LF.
    const lastNl = chunk[chunk.length - 1] === B.LF ? chunk.length - 1 : chunk.lastIndexOf(B.LF);
    const to = lastNl < from ? from : lastNl + 1;
    if (to > from) this.#scan(chunk, from, to);
    if (to < chunk.length) this.#carry(chunk, to, chunk.length);
  }

  /** The last usage the stream reported, or null (not asked for, or the stream was cut). */
  usage(): Usage | null {
    return this.#usage;
  }

  /** The model named on the usage event's line, else by one of the first chunks; else null. */
  model(): string | null {
    return this.#model;
  }

  /** Characters of generated text seen so far (text-chars.ts says which); a line over 1 MiB is not counted. */
  textChars(): number {
    return this.#text.chars();
  }

  /** Complete lines in buf[from, to), `to - 1` being a LF. */
  #scan(buf: Buffer, from: number, to: number): void {
    if (this.#model === null && this.#modelScans < MODEL_SCAN_CHUNKS) {
      this.#modelScans++;
      this.#model = firstModel(buf, from, to);
    }
    // One pass finds "usage" and the keys holding text (text-chars.ts says which).
    let usageLineEnd = -1; // a usage line is read whole, once: later "usage" keys on it are skipped
    this.#text.begin(buf, from, to);
    for (let hit = this.#text.nextKey(buf, from, to); hit !== -1; ) {
      let next = hit + USAGE_KEY.bytes.length;
      if (buf[hit + 1] !== U) {
        next = this.#text.countAt(buf, hit, from, to);
      } else if (hit > usageLineEnd && objectStart(buf, next, to) !== -1) {
        usageLineEnd = buf.indexOf(B.LF, hit);
        this.#line(buf, lineStart(buf, hit, from), usageLineEnd, hit);
      }
      hit = this.#text.nextKey(buf, next, to);
    }
  }

  /** A line [start, end) (no LF) with `"usage":{` at `hit`: read its last such usage, and its model. */
  #line(buf: Buffer, start: number, end: number, hit: number): void {
    if (!startsWith(buf, start, DATA)) return;
    for (let next = find(buf, USAGE_KEY, hit + 1, end); next !== -1; next = find(buf, USAGE_KEY, next + 1, end)) {
      if (objectStart(buf, next + USAGE_KEY.bytes.length, end) !== -1) hit = next;
    }
    const usage = usageAfterKey(buf, hit, end);
    if (usage === null) return;
    this.#usage = usage;
    // The line's first `"model"`: chat's top-level one, or `response.model` (before `output`).
    const model = this.#modelFromUsage ? null : firstModel(buf, start, end);
    if (model !== null) {
      this.#model = model;
      this.#modelFromUsage = true;
    }
  }

  #carry(chunk: Buffer, start: number, end: number): void {
    if (this.#skipping) return;
    if (this.#pieceBytes + end - start > MAX_LINE_BYTES) return this.#reset(true);
    // A copy: the caller owns the chunk and may reuse or release it once push returns.
    this.#pieces.push(Buffer.from(chunk.subarray(start, end)));
    this.#pieceBytes += end - start;
  }

  #reset(skipping: boolean): void {
    this.#pieces.length = 0;
    this.#pieceBytes = 0;
    this.#skipping = skipping;
  }
}

/** The counts of the `{...}` after the `"usage"` key at `hit`, parsed alone; to bounds the search. */
function usageAfterKey(buf: Buffer, hit: number, to: number): Usage | null {
  const open = objectStart(buf, hit + USAGE_KEY.bytes.length, to);
  if (open === -1) return null;
  const close = objectEnd(buf, open, Math.min(to, open + MAX_USAGE_BYTES));
  if (close === -1) return null;
  let u: Record<string, unknown>;
  try {
    u = JSON.parse(buf.toString('utf8', open, close)) as Record<string, unknown>;
  } catch {
    return null;
  }
  // Chat/completions/embeddings name it `prompt_tokens`, responses/transcriptions `input_tokens`;
  // each keeps its cached part in its own `*_details`.
  const chat = u.prompt_tokens !== undefined && u.prompt_tokens !== null;
  const prompt = chat ? u.prompt_tokens : u.input_tokens;
  const completion = u.completion_tokens ?? u.output_tokens ?? 0;
  if (!isCount(prompt) || !isCount(completion)) return null;
  const details = chat ? u.prompt_tokens_details : u.input_tokens_details;
  const cached = typeof details === 'object' && details !== null ? (details as Record<string, unknown>).cached_tokens : undefined;
  return { promptTokens: prompt, completionTokens: completion, cachedTokens: isCount(cached) ? cached : null };
}

/** Index just past the `}` closing the object opened at `open`, or -1 before `to`. */
function objectEnd(buf: Buffer, open: number, to: number): number {
  let depth = 0;
  let inString = false;
  for (let i = open; i < to; i++) {
    const b = buf[i];
    if (inString) {
      if (b === B.Backslash) i++;
      else if (b === B.Quote) inString = false;
    } else if (b === B.Quote) inString = true;
    else if (b === B.OpenBrace) depth++;
    else if (b === B.CloseBrace && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * The first `"model":"<value>"` in buf[from, to) on a `data:` line, read without parsing:
 * right for a chat chunk and for `response.created`/`.completed`, where it precedes any
 * nested object. A value with an escape is skipped (no model id has one).
 */
function firstModel(buf: Buffer, from: number, to: number): string | null {
  const hit = find(buf, MODEL_KEY, from, to);
  if (hit === -1 || !startsWith(buf, lineStart(buf, hit, from), DATA)) return null;
  const value = valueStart(buf, hit + MODEL_KEY.bytes.length, to);
  if (value === -1 || buf[value] !== B.Quote) return null;
  const open = value + 1;
  const limit = Math.min(to, open + MAX_MODEL_CHARS * 4); // 4 bytes: the longest UTF-8 char
  for (let j = open; j < limit; j++) {
    const b = buf[j];
    if (b === B.Quote) return j > open ? buf.toString('utf8', open, j).slice(0, MAX_MODEL_CHARS) : null;
    if (b === B.Backslash || b === B.LF) return null;
  }
  return null;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}
