/**
 * The upstream side of HTTP/1.1 (RFC 9112), responses only, as a pure state machine: bytes
 * in, head / body slices / completion out. It holds no socket and allocates nothing per
 * body byte: a body chunk is a slice of the buffer it arrived in. What it accepts is narrow
 * on purpose (CRLF line ends, no obs-fold, token header names, bounded head and chunk
 * lines); anything else is an HttpParseError with an `HPE_*` code, which the transport
 * reports as a protocol error.
 *
 * Framing (§6.3): no body after HEAD, 1xx, 204 and 304; `Transfer-Encoding` ending in
 * chunked wins over `Content-Length`; a length must be digits and agree with itself when
 * repeated; anything else is read until the peer closes, and that connection is not reused.
 * 1xx interim answers (100 Continue, 103 Early Hints) are skipped; 101 is refused, since
 * nothing here asked for an upgrade.
 */
import type { IncomingHttpHeaders } from 'node:http';

export class HttpParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpParseError';
  }
}

export type BodyFraming = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly framing: BodyFraming;
  /** The connection may carry another request once this response is complete. */
  readonly keepAlive: boolean;
  /** `Keep-Alive: timeout=N` from the server, in ms (null when not said). */
  readonly keepAliveTimeoutMs: number | null;
}

export interface ResponseSink {
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  /** The response ended. `clean` is false when bytes followed it that nobody asked for. */
  onComplete(clean: boolean): void;
}

const enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Done,
}

export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;
const CRLF = 0x0d0a;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/;
const HEX = /^[0-9A-Fa-f]{1,12}$/;
const DIGITS = /^\d{1,15}$/;

export class ResponseParser {
  private state = State.Idle;
  private headRequest = false;
  /** Bytes of an unfinished head, chunk-size line or trailer section. */
  private partial: Buffer | null = null;
  private remaining = 0;
  /** Responses completed so far: one execute() parses no further than the end of a response. */
  private completions = 0;
  /** Any byte of the current response has arrived. */
  started = false;

  constructor(
    private readonly sink: ResponseSink,
    private readonly maxHeadBytes = MAX_HEAD_BYTES,
  ) {}

  /** Begin reading the answer to a request just sent (`head`: it was a HEAD request). */
  expect(head: boolean): void {
    this.state = State.Head;
    this.headRequest = head;
    this.partial = null;
    this.started = false;
  }

  /** Waiting for a head, or reading a body: bytes are expected. */
  get busy(): boolean {
    return this.state !== State.Idle && this.state !== State.Done;
  }

  /** A body that runs until the connection closes is being read. */
  get readingUntilClose(): boolean {
    return this.state === State.UntilClose;
  }

  execute(data: Buffer): void {
    if (data.length > 0 && (this.state === State.Idle || this.state === State.Done)) {
      throw new HttpParseError('HPE_UNEXPECTED_DATA', 'the upstream sent bytes nobody asked for');
    }
    this.started = true;
    let at = 0;
    // stops at the end of a response (bytes after it are reported, not parsed, even when the
    // sink expects the next response from inside onComplete) or when a sink callback gave up
    // on it (stop())
    const completions = this.completions;
    while (at < data.length && this.busy && this.completions === completions) {
      switch (this.state) {
        case State.Head:
          at = this.readHead(data, at);
          break;
        case State.Length:
        case State.ChunkData: {
          const state = this.state;
          at = this.passBody(data, at);
          if (this.remaining > 0 || this.state !== state) break; // more to come, or onBody stopped the parser
          if (state === State.Length) this.complete(at < data.length);
          else {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
          }
          break;
        }
        case State.ChunkSize:
          at = this.readChunkSize(data, at);
          break;
        case State.ChunkDataEnd: {
          const expected = this.remaining === 2 ? 0x0d : 0x0a;
          if (data[at] !== expected) throw new HttpParseError('HPE_STRICT', 'chunk data not followed by CRLF');
          at++;
          if (--this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.Trailers:
          at = this.readTrailers(data, at);
          break;
        default: // State.UntilClose
          this.sink.onBody(at === 0 ? data : data.subarray(at));
          at = data.length;
      }
    }
  }

  /** Hands on up to `remaining` body bytes from `at` (a slice, no copy); returns where it stopped. */
  private passBody(data: Buffer, at: number): number {
    const n = Math.min(this.remaining, data.length - at);
    this.remaining -= n;
    this.sink.onBody(at === 0 && n === data.length ? data : data.subarray(at, at + n));
    return at + n;
  }

  /** Forget the response under way (its exchange was given up): nothing more is reported. */
  stop(): void {
    this.state = State.Idle;
    this.partial = null;
  }

  /**
   * The peer closed. Completes a body read until close; true when that ended a response
   * cleanly (or none was under way), false when a response was cut short.
   */
  finish(): boolean {
    if (this.state === State.UntilClose) {
      this.state = State.Done;
      this.sink.onComplete(true);
      return true;
    }
    return !this.busy;
  }

  private complete(trailing: boolean): void {
    this.completions++;
    this.state = State.Done;
    this.partial = null;
    this.sink.onComplete(!trailing);
  }

  /** Joins held bytes with new ones; returns the buffer and where the new part starts in it. */
  private gather(data: Buffer, at: number): Buffer {
    const fresh = at === 0 ? data : data.subarray(at);
    if (this.partial === null) return fresh;
    const joined = Buffer.concat([this.partial, fresh]);
    this.partial = null;
    return joined;
  }

  private readHead(data: Buffer, at: number): number {
    const held = this.partial === null ? 0 : this.partial.length;
    const buf = this.gather(data, at);
    // start the search a little before the new bytes: the terminator may straddle them
    const end = buf.indexOf('\r\n\r\n', Math.max(0, held - 3), 'latin1');
    if (end < 0) {
      // its last 3 bytes may be the start of the terminator, which the limit does not count
      if (buf.length - 3 > this.maxHeadBytes) throw new HttpParseError('HPE_HEADER_OVERFLOW', `response head larger than ${this.maxHeadBytes} bytes`);
      this.partial = buf;
      return data.length;
    }
    if (end > this.maxHeadBytes) throw new HttpParseError('HPE_HEADER_OVERFLOW', `response head larger than ${this.maxHeadBytes} bytes`);
    const next = at + end + 4 - held; // `data` up to here belonged to the head
    this.parseHead(buf.toString('latin1', 0, end), next < data.length);
    return next;
  }

  /** `trailing`: more bytes follow the head in the buffer it arrived in. */
  private parseHead(text: string, trailing: boolean): void {
    const lines = text.split('\r\n');
    const m = STATUS_LINE.exec(lines[0]!);
    if (m === null) throw new HttpParseError('HPE_INVALID_CONSTANT', 'malformed status line');
    const minor = m[1] === '1';
    const status = Number(m[2]);
    if (status < 100) throw new HttpParseError('HPE_INVALID_STATUS', `invalid status ${m[2]}`);
    const headers: IncomingHttpHeaders = {};
    let length: string | null = null;
    let chunked = false;
    let transferEncoding = false;
    let connection = '';
    let keepAliveHeader: string | null = null;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'malformed header line');
      const rawName = line.slice(0, colon);
      const name = headerName(rawName);
      const value = trimOws(line.slice(colon + 1));
      if (BAD_VALUE.test(value)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', `invalid character in header ${rawName}`);
      switch (name) {
        case 'content-length':
          if (length === null && DIGITS.test(value)) {
            length = value; // the usual case: one plain length
            headers[name] = length;
            continue;
          }
          for (const part of value.split(',')) {
            const v = part.trim();
            if (!DIGITS.test(v) || (length !== null && length !== v)) throw new HttpParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid or conflicting Content-Length');
            length = v;
          }
          headers[name] = length!;
          continue;
        case 'transfer-encoding': {
          transferEncoding = true;
          const codings = value.toLowerCase().split(',');
          chunked = codings[codings.length - 1]!.trim() === 'chunked';
          break;
        }
        case 'connection':
          connection += `${value.toLowerCase()},`;
          break;
        case 'keep-alive':
          keepAliveHeader = value;
          break;
        case 'set-cookie':
          (headers['set-cookie'] ??= []).push(value);
          continue;
      }
      const prior = headers[name];
      headers[name] = prior === undefined ? value : `${prior as string}, ${value}`;
    }
    if (status < 200) {
      if (status === 101) throw new HttpParseError('HPE_UNEXPECTED_UPGRADE', 'the upstream switched protocols unasked');
      return; // interim answer: the real one follows
    }
    let framing: BodyFraming;
    if (this.headRequest || status === 204 || status === 304) framing = 'none';
    else if (transferEncoding) framing = chunked ? 'chunked' : 'close';
    else if (length !== null) framing = 'length';
    else framing = 'close';
    // a message framed both ways was smuggling-shaped: answer it, then drop the connection
    const keepAlive = minor && framing !== 'close' && !(transferEncoding && length !== null) && !/(^|[\s,])close\s*,/.test(connection);
    const head: ResponseHead = { status, headers, framing, keepAlive, keepAliveTimeoutMs: keepAliveTimeout(keepAliveHeader) };
    this.sink.onHead(head);
    if (this.state !== State.Head) return; // onHead stopped the parser
    if (framing === 'none') this.complete(trailing);
    else if (framing === 'length') {
      this.remaining = Number(length);
      this.state = State.Length;
      if (this.remaining === 0) this.complete(trailing);
    } else if (framing === 'chunked') this.state = State.ChunkSize;
    else this.state = State.UntilClose;
  }

  private readChunkSize(data: Buffer, at: number): number {
    if (this.partial === null) {
      const next = this.plainChunkSize(data, at);
      if (next !== -1) return next;
    }
    const held = this.partial === null ? 0 : this.partial.length;
    const buf = this.gather(data, at);
    const nl = buf.indexOf(0x0a, Math.max(0, held));
    if (nl < 0) {
      if (buf.length > MAX_CHUNK_LINE) throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size line too long');
      this.partial = buf;
      return data.length;
    }
    if (nl === 0 || buf[nl - 1] !== 0x0d || nl > MAX_CHUNK_LINE) throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'malformed chunk size line');
    const line = buf.toString('latin1', 0, nl - 1);
    const semi = line.indexOf(';');
    const hex = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (!HEX.test(hex)) throw new HttpParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
    this.chunkStarts(parseInt(hex, 16));
    return at + nl + 1 - held;
  }

  /** A chunk of `size` bytes begins (0: the last one, the trailers follow). */
  private chunkStarts(size: number): void {
    this.state = size === 0 ? State.Trailers : State.ChunkData;
    this.remaining = size;
  }

  /**
   * The usual size line, whole in `data` from `at`: hex digits and CRLF, read off the bytes
   * (one per SSE event: no string, no regex). Returns where the chunk's data starts, or -1
   * for anything else (an extension, spaces, a line split across reads), which readChunkSize
   * then reads the general way.
   */
  private plainChunkSize(data: Buffer, at: number): number {
    let size = 0;
    let i = at;
    const end = Math.min(data.length, at + 12);
    for (; i < end; i++) {
      const c = data[i]!;
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (d === -1) break;
      size = size * 16 + d;
    }
    if (i === at || i + 1 >= data.length || data[i] !== 0x0d || data[i + 1] !== 0x0a) return -1;
    this.chunkStarts(size);
    return i + 2;
  }

  /** Trailer fields after the last chunk: read and dropped, up to the blank line. */
  private readTrailers(data: Buffer, at: number): number {
    const held = this.partial === null ? 0 : this.partial.length;
    const buf = this.gather(data, at);
    // no trailers: the blank line comes at once
    if (buf.length >= 2 && buf.readUInt16BE(0) === CRLF) {
      const next = at + 2 - held;
      this.complete(next < data.length);
      return next;
    }
    const end = buf.indexOf('\r\n\r\n', Math.max(0, held - 3), 'latin1');
    if (end < 0) {
      if (buf.length > this.maxHeadBytes) throw new HttpParseError('HPE_HEADER_OVERFLOW', 'trailers too large');
      this.partial = buf;
      return data.length;
    }
    const next = at + end + 4 - held;
    this.complete(next < data.length);
    return next;
  }
}

/**
 * The lower-case form of a raw header name, checked to be a token. Upstreams send the same
 * few names on every response: those come from a small cache, skipping the check and the
 * lower-casing (the cache stops growing at its bound, so odd names cannot grow it).
 */
const NAME_CACHE = new Map<string, string>();
const NAME_CACHE_MAX = 512;

function headerName(raw: string): string {
  const cached = NAME_CACHE.get(raw);
  if (cached !== undefined) return cached;
  if (!TOKEN.test(raw)) throw new HttpParseError('HPE_INVALID_HEADER_TOKEN', 'invalid header name');
  const name = raw.toLowerCase();
  if (NAME_CACHE.size < NAME_CACHE_MAX) NAME_CACHE.set(raw, name);
  return name;
}

/** Strips optional whitespace (SP and HTAB only, RFC 9110 §5.6.3) from both ends of a field value. */
function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** `timeout=N` (seconds) from a Keep-Alive header, in ms. */
function keepAliveTimeout(value: string | null): number | null {
  if (value === null) return null;
  const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(value);
  return m === null ? null : Number(m[1]) * 1000;
}
