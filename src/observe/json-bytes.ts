/**
 * Small readers of JSON text in place, byte by byte, for the watchers that look at answers as
 * they pass (usage, streamed text): they find a key and read the value next to it without
 * parsing, or even decoding, the document around it. Each takes the bounds it may look
 * within; none allocates.
 */

export const enum B {
  Tab = 0x09, LF = 0x0a, CR = 0x0d, Space = 0x20, Quote = 0x22, Comma = 0x2c, Colon = 0x3a,
  OpenBracket = 0x5b, Backslash = 0x5c, CloseBracket = 0x5d, OpenBrace = 0x7b, CloseBrace = 0x7d,
}

/**
 * A fixed needle with its Horspool skip table. In JS this scans a 300-byte chunk in ~90 ns;
 * `Buffer#indexOf` with a multi-byte needle costs ~450 ns per call on Node 20 (setup in C++).
 * The table is written once here and only read afterwards.
 */
export type Needle = { readonly bytes: Buffer; readonly skip: Uint8Array };
export function needle(text: string): Needle {
  const bytes = Buffer.from(text, 'latin1');
  const skip = new Uint8Array(256).fill(bytes.length);
  for (let i = 0; i < bytes.length - 1; i++) skip[bytes[i]!] = bytes.length - 1 - i;
  return { bytes, skip };
}

/**
 * First index of `n` in buf[from, to), or -1. A needle that is a quoted key (`"usage"`) only
 * hits keys and whole string values: a `"` inside a JSON string is escaped (`\"`).
 */
export function find(buf: Buffer, n: Needle, from: number, to: number): number {
  const { bytes, skip } = n;
  const last = bytes.length - 1;
  const end = bytes[last];
  for (let i = from + last; i < to; ) {
    const b = buf[i]!;
    if (b === end) {
      let j = last - 1;
      while (j >= 0 && buf[i - last + j] === bytes[j]) j--;
      if (j < 0) return i - last;
    }
    i += skip[b]!;
  }
  return -1;
}

/**
 * Two quoted keys looked for in one pass (`"usage"` and `"delta"`, say): Horspool over the
 * last `m` bytes of each (m the shorter length), shifting by the least either allows. Both
 * end in `"`, so only a `"` is compared further. On a 240-byte chat chunk `"usage"` alone
 * takes 41 steps and with `"delta"` 43: the second key costs next to nothing, a second pass
 * would cost as much again.
 */
export type KeyPair = { readonly a: Buffer; readonly b: Buffer; readonly m: number; readonly skip: Uint8Array };
export function keyPair(a: string, b: string): KeyPair {
  const pair = [Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')] as const;
  const m = Math.min(pair[0].length, pair[1].length);
  const skip = new Uint8Array(256).fill(m);
  for (const k of pair) {
    if (k.length < 3 || k[0] !== B.Quote || k[k.length - 1] !== B.Quote) throw new Error(`keyPair: ${k.toString('latin1')} is no quoted key`);
    for (let i = 0; i < m - 1; i++) {
      const c = k[k.length - m + i]!;
      skip[c] = Math.min(skip[c]!, m - 1 - i);
    }
  }
  return { a: pair[0], b: pair[1], m, skip };
}

/** The start of the first of either key in buf[from, to) (by where it ends), or -1; the caller tells which by its bytes. */
export function findEither(buf: Buffer, k: KeyPair, from: number, to: number): number {
  const { a, b, skip } = k;
  for (let i = from + k.m - 1; i < to; ) {
    const c = buf[i]!;
    if (c === B.Quote) {
      if (endsAt(buf, i, a, from)) return i + 1 - a.length;
      if (endsAt(buf, i, b, from)) return i + 1 - b.length;
    }
    i += skip[c]!;
  }
  return -1;
}

/** Whether `key` ends at `last` (inclusive) and starts at or after `from`; its last byte is known to match. */
function endsAt(buf: Buffer, last: number, key: Buffer, from: number): boolean {
  const start = last + 1 - key.length;
  if (start < from) return false;
  for (let j = key.length - 2; j >= 0; j--) if (buf[start + j] !== key[j]) return false;
  return true;
}

/** After a key: whitespace, `:`, whitespace; the index of the value's first byte, else -1. */
export function valueStart(buf: Buffer, i: number, to: number): number {
  i = skipSpace(buf, i, to);
  if (i >= to || buf[i] !== B.Colon) return -1;
  i = skipSpace(buf, i + 1, to);
  return i < to ? i : -1;
}

/** The index of the `{` opening the object value of the key ending before `i`, else -1. */
export function objectStart(buf: Buffer, i: number, to: number): number {
  const value = valueStart(buf, i, to);
  return value !== -1 && buf[value] === B.OpenBrace ? value : -1;
}

export function skipSpace(buf: Buffer, i: number, to: number): number {
  while (i < to && (buf[i] === B.Space || buf[i] === B.LF || buf[i] === B.CR || buf[i] === B.Tab)) i++;
  return i;
}

/** The index just past the LF before `i`, or `from`. */
export function lineStart(buf: Buffer, i: number, from: number): number {
  const nl = buf.lastIndexOf(B.LF, i);
  return nl < from ? from : nl + 1;
}

/** A byte loop: for five bytes it beats `Buffer#compare`, which crosses into C++. */
export function startsWith(buf: Buffer, at: number, prefix: Buffer): boolean {
  if (at + prefix.length > buf.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[at + i] !== prefix[i]) return false;
  return true;
}

/** The index of the `"` closing the string whose first content byte is at `i`, or -1 before `to`. */
export function stringEnd(buf: Buffer, i: number, to: number): number {
  for (; i < to; i++) {
    const b = buf[i];
    if (b === B.Quote) return i;
    if (b === B.Backslash) i++;
  }
  return -1;
}

/**
 * The characters of the JSON string whose content starts at `from`, counted without decoding
 * it, left in `out.chars`; returns the index of its closing `"` (or -1 before `to`).
 * Characters are Unicode code points: a UTF-8 sequence counts once (its continuation bytes,
 * 10xxxxxx, not at all); an escape counts once (`\n`, `\"`, `\u00e9`), except the high half
 * of an escaped surrogate pair (`\ud83d\ude00` is one emoji, one code point). Exact for valid
 * JSON; a lone escaped high surrogate (invalid Unicode) is not counted.
 */
export function countString(buf: Buffer, from: number, to: number, out: { chars: number }): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const b = buf[i]!;
    if (b === B.Quote) {
      out.chars = n;
      return i;
    }
    if (b === B.Backslash) {
      if (buf[i + 1] === 0x75 /* u */) {
        if (!isHighSurrogate(buf, i + 2)) n++;
        i += 5;
      } else {
        n++;
        i++;
      }
    } else if ((b & 0xc0) !== 0x80) n++;
  }
  return -1;
}

/** `d800`–`dbff` (either case) at `i`: the four hex digits of a `\u` escape. */
function isHighSurrogate(buf: Buffer, i: number): boolean {
  const d = buf[i]! | 0x20; // lower-cases a letter
  const x = buf[i + 1]! | 0x20;
  return d === 0x64 /* d */ && (x === 0x38 || x === 0x39 || x === 0x61 || x === 0x62); /* 8 9 a b */
}
