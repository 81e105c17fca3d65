/**
 * The characters of text a streamed answer generated, counted as the stream passes: what a
 * stream that reports no usage is settled on (vLLM sends usage in a stream only when the
 * client asked for `stream_options.include_usage`; a cut stream loses it).
 *
 * What counts (shared/reference/protocol-notes.md §2):
 * - chat completions, in each `choices[].delta`: the string values of `content`, `refusal`
 *   and the reasoning, `reasoning` or `reasoning_content` (once, the longer: some servers
 *   send the same text under both names), read key by key; then, when the delta holds a
 *   nested value (`tool_calls`, `function_call`), the string `arguments` from there to the
 *   end of its line (its event), and deltas again from the next line: a chunk often holds
 *   several events (the proxy hands on what one upstream read brought as one chunk). Text
 *   written after the nested value in the same delta is not counted (no known server does:
 *   vLLM, SGLang, OpenAI and llama.cpp put `content` first). Not counted at all: roles,
 *   tool names and ids, audio.
 * - legacy completions (a stream whose first chunk has `"object":"text_completion"`):
 *   `choices[].text`.
 * - any other stream (Responses API, transcriptions): an event's string `delta`
 *   (`response.output_text.delta`, `.function_call_arguments.delta`, `.reasoning_text.delta`,
 *   `.refusal.delta`, `transcript.text.delta`...), unless the event's type ends in
 *   `audio.delta` (base64 audio, not text). The type is looked at only for a delta of 32
 *   bytes or more: a shorter audio delta (a few bytes of sound) counts as text.
 * Characters are Unicode code points of the decoded string (json-bytes `countString`): an
 * escape counts once. Lines are not checked to be `data:` lines (a key in a comment would
 * count); a string is read whole because the watcher hands over whole lines only.
 *
 * Cost: the keys are found in the same pass as `"usage"` (a search for two keys costs about
 * what one costs), then only the delta and its strings are read. Added to the watcher's
 * ~0.15 µs per chunk on a 2.4 GHz EPYC VM (scripts/bench/sse-watch.mjs, vLLM-shaped chunks
 * of 215–275 bytes): ~0.1 µs for a chat content or reasoning delta, ~0.13 µs for a
 * tool-call delta, ~0.1 µs for a completions chunk, ~0.05 µs for a Responses event.
 */
import { B, countString, find, findEither, keyPair, needle, skipSpace, startsWith, stringEnd, valueStart } from './json-bytes.js';

/** What a pass over a chunk looks for: `"usage"` (read by usage.ts) and where text is. */
const DELTA_KEYS = keyPair('"usage"', '"delta"');
const COMPLETIONS_KEYS = keyPair('"usage"', '"text"');
/** After a delta's nested value, to the end of its line: its tool calls' arguments. */
const ARGUMENTS_KEYS = keyPair('"usage"', '"arguments"');
const OBJECT_KEY = needle('"object"');
const TYPE_KEY = needle('"type"');
const TEXT_COMPLETION = Buffer.from('"text_completion"');
const EVENT = Buffer.from('event:');
const AUDIO_DELTA = Buffer.from('audio.delta');
const CONTENT = Buffer.from('content');
const REFUSAL = Buffer.from('refusal');
const REASONING = Buffer.from('reasoning');
const REASONING_CONTENT = Buffer.from('reasoning_content');
/** Chunks looked at for `"object"` before settling for the delta shape. */
const KIND_SCAN_CHUNKS = 8;
/** A string `delta` this long (bytes, quotes included) or longer has its event's type checked for audio. */
const AUDIO_CHECK_BYTES = 32;

const enum Kind { Unknown, Delta, Completions }
const enum Field { None, Text, Reasoning }
const D = 0x64; // `d`: the byte after the quote of `"delta"`
const T = 0x74; // `t`: of `"text"`

export class SseTextCounter {
  #chars = 0;
  #kind = Kind.Unknown;
  #kindScans = 0;
  /** A delta held a nested value: tool-call arguments are looked for, up to #argumentsEnd (its line's end). */
  #arguments = false;
  #argumentsEnd = 0;
  /** Where countString leaves the characters of the string it read. */
  readonly #string = { chars: 0 };

  /** Characters of generated text seen so far. */
  chars(): number {
    return this.#chars;
  }

  /** Begins a scan of the complete lines buf[from, to); learns the stream's shape from its first chunks. */
  begin(buf: Buffer, from: number, to: number): void {
    if (this.#kind === Kind.Unknown) this.#learnKind(buf, from, to);
    this.#arguments = false;
  }

  /**
   * The start of the next key in buf[at, to) that is `"usage"` (for the caller) or may hold
   * text (for countAt), or -1: one pass over the chunk for both.
   */
  nextKey(buf: Buffer, at: number, to: number): number {
    if (this.#arguments) {
      const hit = findEither(buf, ARGUMENTS_KEYS, at, this.#argumentsEnd);
      if (hit !== -1) return hit;
      this.#arguments = false; // that event is read: the next ones are deltas again
      at = Math.max(at, this.#argumentsEnd);
    }
    return this.#kind === Kind.Completions ? findEither(buf, COMPLETIONS_KEYS, at, to) : findEither(buf, DELTA_KEYS, at, to);
  }

  /** At `hit`, a key from nextKey other than `"usage"`: counts the text it holds; returns where to search on. */
  countAt(buf: Buffer, hit: number, from: number, to: number): number {
    // `"delta"`, `"text"` or `"arguments"`, told apart by their first letter
    const keyEnd = hit + (buf[hit + 1] === D ? 6 : buf[hit + 1] === T ? 5 : 10);
    const value = valueStart(buf, keyEnd + 1, to);
    if (value === -1) return keyEnd + 1;
    if (buf[value] !== B.Quote) {
      return buf[value] === B.OpenBrace && buf[hit + 1] === D ? this.#readDelta(buf, value, to) : keyEnd + 1;
    }
    const close = countString(buf, value + 1, to, this.#string);
    if (close === -1) return to;
    const audio = buf[hit + 1] === D && close - value + 1 >= AUDIO_CHECK_BYTES && isAudioEvent(buf, from, hit, to);
    if (!audio) this.#chars += this.#string.chars;
    return close + 1;
  }

  /**
   * A chat delta object opened at `open`, read key by key: the common one is flat
   * (`{"content":"Hi"}`, SGLang's `{"role":null,"content":"Hi","tool_calls":null}`). A
   * nested value (tool calls) ends the reading: `"arguments"` is looked for from there.
   * Returns where to search on.
   */
  #readDelta(buf: Buffer, open: number, to: number): number {
    let text = 0;
    let reasoning = 0;
    let i = skipSpace(buf, open + 1, to);
    while (i < to && buf[i] === B.Quote) {
      const keyEnd = stringEnd(buf, i + 1, to);
      const value = keyEnd === -1 ? -1 : valueStart(buf, keyEnd + 1, to);
      if (value === -1) break;
      const v = buf[value];
      let end = value;
      if (v === B.Quote) {
        end = countString(buf, value + 1, to, this.#string);
        if (end === -1) break;
        const field = fieldOf(buf, i + 1, keyEnd);
        if (field === Field.Text) text += this.#string.chars;
        else if (field === Field.Reasoning) reasoning = Math.max(reasoning, this.#string.chars);
        end++;
      } else if (v === B.OpenBrace || v === B.OpenBracket) {
        this.#arguments = true;
        const lf = buf.indexOf(B.LF, value);
        this.#argumentsEnd = lf === -1 || lf > to ? to : lf;
        i = value;
        break;
      } else {
        while (end < to && buf[end] !== B.Comma && buf[end] !== B.CloseBrace) end++; // null, a number, true, false
      }
      i = skipSpace(buf, end, to);
      if (i >= to || buf[i] !== B.Comma) break;
      i = skipSpace(buf, i + 1, to);
    }
    this.#chars += text + reasoning;
    return i;
  }

  /** A completions stream names itself in its chunks' first `object`; any other (or none in the first chunks) means deltas. */
  #learnKind(buf: Buffer, from: number, to: number): void {
    const hit = find(buf, OBJECT_KEY, from, to);
    if (hit !== -1) {
      const value = valueStart(buf, hit + OBJECT_KEY.bytes.length, to);
      this.#kind = value !== -1 && startsWith(buf, value, TEXT_COMPLETION) ? Kind.Completions : Kind.Delta;
    } else if (++this.#kindScans >= KIND_SCAN_CHUNKS) {
      this.#kind = Kind.Delta;
    }
  }
}

/** What the key buf[from, to) (its letters) makes of a string value in a chat delta. */
function fieldOf(buf: Buffer, from: number, to: number): Field {
  switch (to - from) {
    case 7:
      return startsWith(buf, from, CONTENT) || startsWith(buf, from, REFUSAL) ? Field.Text : Field.None;
    case 9:
      return startsWith(buf, from, REASONING) ? Field.Reasoning : Field.None;
    case 17:
      return startsWith(buf, from, REASONING_CONTENT) ? Field.Reasoning : Field.None;
    default:
      return Field.None;
  }
}

/**
 * Whether the event whose `"delta"` key is at `hit` is an audio one (`response.audio.delta`:
 * base64, not text). Its `event:` line, just before its `data:` line, says so cheaply (OpenAI
 * and vLLM send both in one write); without it, the first `"type"` string of the data line.
 */
function isAudioEvent(buf: Buffer, from: number, hit: number, to: number): boolean {
  let start = hit;
  while (start > from && buf[start - 1] !== B.LF) start--;
  if (start > from) {
    let eventEnd = start - 1; // the LF ending the line before
    if (eventEnd > from && buf[eventEnd - 1] === B.CR) eventEnd--;
    let eventStart = eventEnd;
    while (eventStart > from && buf[eventStart - 1] !== B.LF) eventStart--;
    if (startsWith(buf, eventStart, EVENT)) return endsWith(buf, eventEnd, AUDIO_DELTA);
  }
  let end = hit;
  while (end < to && buf[end] !== B.LF) end++;
  const type = find(buf, TYPE_KEY, start, end);
  if (type === -1) return false;
  const value = valueStart(buf, type + TYPE_KEY.bytes.length, end);
  if (value === -1 || buf[value] !== B.Quote) return false;
  const close = stringEnd(buf, value + 1, end);
  return close !== -1 && close - value > AUDIO_DELTA.length && endsWith(buf, close, AUDIO_DELTA);
}

/** Whether buf[..end) ends with `bytes`. */
function endsWith(buf: Buffer, end: number, bytes: Buffer): boolean {
  return end >= bytes.length && startsWith(buf, end - bytes.length, bytes);
}
