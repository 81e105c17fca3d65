// The HTTP/1.1 response parser: framing, keep-alive, header rules, HPE_* errors, and any way the bytes are split.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser, HttpParseError, MAX_HEAD_BYTES } from '../../dist/upstream/http1-response-parser.js';

/** A sink that records every event, and a parser writing into it. */
function recorder(maxHeadBytes) {
  const events = [];
  const sink = {
    onHead: (head) => events.push({ type: 'head', head }),
    onBody: (chunk) => events.push({ type: 'body', chunk }),
    onComplete: (clean) => events.push({ type: 'complete', clean }),
  };
  const parser = maxHeadBytes === undefined ? new ResponseParser(sink) : new ResponseParser(sink, maxHeadBytes);
  return {
    events,
    sink,
    parser,
    get heads() {
      return events.filter((e) => e.type === 'head').map((e) => e.head);
    },
    get body() {
      return Buffer.concat(events.filter((e) => e.type === 'body').map((e) => e.chunk));
    },
    get completes() {
      return events.filter((e) => e.type === 'complete').map((e) => e.clean);
    },
  };
}

const bytes = (s) => Buffer.from(s, 'latin1');

/** Feeds `raw` in the pieces cut at `cuts` (ascending offsets). */
function feedCut(parser, raw, cuts) {
  let from = 0;
  for (const c of cuts) {
    parser.execute(raw.subarray(from, c));
    from = c;
  }
  parser.execute(raw.subarray(from));
}

function feedBytewise(parser, raw) {
  for (let i = 0; i < raw.length; i++) parser.execute(raw.subarray(i, i + 1));
}

/** Parses `raw` as the answer to one request, all in one buffer. */
function parse(raw, { head = false, max } = {}) {
  const r = recorder(max);
  r.parser.expect(head);
  r.parser.execute(typeof raw === 'string' ? bytes(raw) : raw);
  return r;
}

/** The one head of a response that has none following it. */
function headOf(raw, opts) {
  const r = parse(raw, opts);
  assert.equal(r.heads.length, 1);
  return r.heads[0];
}

/** Asserts that parsing fails with `code`, whether the bytes come at once or one at a time. */
function assertParseError(raw, code, { head = false, max } = {}) {
  const buf = typeof raw === 'string' ? bytes(raw) : raw;
  const matches = (err) => err instanceof HttpParseError && err.code === code;
  const whole = recorder(max);
  whole.parser.expect(head);
  assert.throws(() => whole.parser.execute(buf), matches, `whole: ${JSON.stringify(buf.toString('latin1').slice(0, 80))}`);
  const bytewise = recorder(max);
  bytewise.parser.expect(head);
  assert.throws(() => feedBytewise(bytewise.parser, buf), matches, `bytewise: ${JSON.stringify(buf.toString('latin1').slice(0, 80))}`);
}

/** A chunked body from its pieces, with optional extensions and trailer lines. */
function chunked(pieces, { ext = [], trailers = [] } = {}) {
  let out = '';
  pieces.forEach((p, i) => {
    out += `${Buffer.byteLength(p, 'latin1').toString(16)}${ext[i] ?? ''}\r\n${p}\r\n`;
  });
  return `${out}0\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`;
}

/** Checks one complete, clean response whose body is `body`. */
function assertOneResponse(r, status, body) {
  assert.equal(r.heads.length, 1);
  assert.equal(r.heads[0].status, status);
  assert.equal(r.body.toString('latin1'), body);
  assert.deepEqual(r.completes, [true]);
  assert.equal(r.parser.busy, false);
  // the head comes first and the completion last
  assert.equal(r.events[0].type, 'head');
  assert.equal(r.events.at(-1).type, 'complete');
}

// ---- content-length ----

const LENGTH_BODY = 'The quick brown fox\r\n\r\njumps over 0\r\n\r\n';
const LENGTH_RESPONSE = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${LENGTH_BODY.length}\r\n\r\n${LENGTH_BODY}`;

test('a content-length body in one buffer', () => {
  const r = parse(LENGTH_RESPONSE);
  assertOneResponse(r, 200, LENGTH_BODY);
  const head = r.heads[0];
  assert.equal(head.framing, 'length');
  assert.equal(head.keepAlive, true);
  assert.equal(head.keepAliveTimeoutMs, null);
  assert.equal(head.headers['content-length'], String(LENGTH_BODY.length));
  assert.equal(head.headers['content-type'], 'text/plain');
});

test('a content-length body fed one byte at a time', () => {
  const r = recorder();
  r.parser.expect(false);
  feedBytewise(r.parser, bytes(LENGTH_RESPONSE));
  assertOneResponse(r, 200, LENGTH_BODY);
});

test('a content-length response split in two at every index', () => {
  const raw = bytes(LENGTH_RESPONSE);
  for (let i = 0; i <= raw.length; i++) {
    const r = recorder();
    r.parser.expect(false);
    feedCut(r.parser, raw, [i]);
    assert.equal(r.body.toString('latin1'), LENGTH_BODY, `split at ${i}`);
    assert.deepEqual(r.completes, [true], `split at ${i}`);
    assert.equal(r.heads.length, 1, `split at ${i}`);
  }
});

test('body chunks are views of the buffer they arrived in, not copies', () => {
  const src = bytes(LENGTH_RESPONSE);
  const raw = Buffer.alloc(src.length); // not from the shared pool, so its memory is its own
  src.copy(raw);
  const r = parse(raw);
  assert.equal(r.body.toString('latin1'), LENGTH_BODY);
  for (const e of r.events.filter((ev) => ev.type === 'body')) {
    assert.equal(e.chunk.buffer, raw.buffer);
    assert.ok(e.chunk.byteOffset >= raw.byteOffset && e.chunk.byteOffset + e.chunk.length <= raw.byteOffset + raw.length);
  }
});

test('content-length 0 completes at the end of the head', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assertOneResponse(r, 200, '');
  assert.equal(r.events.filter((e) => e.type === 'body').length, 0);
});

test('a large content-length body arriving in many buffers is passed through whole', () => {
  const body = Buffer.alloc(200_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
  const raw = Buffer.concat([bytes(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  const r = recorder();
  r.parser.expect(false);
  const cuts = [];
  for (let c = 13; c < raw.length; c += 16_381) cuts.push(c);
  feedCut(r.parser, raw, cuts);
  assert.ok(r.body.equals(body));
  assert.deepEqual(r.completes, [true]);
});

// ---- chunked ----

const PIECES = ['hello', ' ', 'wor\r\nld', 'x'.repeat(300), '!'];
const CHUNKED_BODY = PIECES.join('');
const CHUNKED_RESPONSE =
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
  chunked(PIECES, { ext: ['', ';name=value', ';a;b="c;d"', ' ; spaced', ''], trailers: ['X-Checksum: abc', 'Expires: never'] });

test('a chunked body with extensions and trailers', () => {
  const r = parse(CHUNKED_RESPONSE);
  assertOneResponse(r, 200, CHUNKED_BODY);
  const head = r.heads[0];
  assert.equal(head.framing, 'chunked');
  assert.equal(head.keepAlive, true);
  // trailers are dropped: they never become headers
  assert.equal(head.headers['x-checksum'], undefined);
  assert.equal(head.headers.trailer, 'X-Checksum');
});

test('a chunked body fed one byte at a time', () => {
  const r = recorder();
  r.parser.expect(false);
  feedBytewise(r.parser, bytes(CHUNKED_RESPONSE));
  assertOneResponse(r, 200, CHUNKED_BODY);
});

test('a chunked response split in two at every index', () => {
  const raw = bytes(CHUNKED_RESPONSE);
  for (let i = 0; i <= raw.length; i++) {
    const r = recorder();
    r.parser.expect(false);
    feedCut(r.parser, raw, [i]);
    assert.equal(r.body.toString('latin1'), CHUNKED_BODY, `split at ${i}`);
    assert.deepEqual(r.completes, [true], `split at ${i}`);
  }
});

test('a short chunked response with trailers split in three at every pair of indices', () => {
  const body = ['ab', 'cde'];
  const raw = bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(body, { ext: [';e=1', ''], trailers: ['T: 1'] }));
  for (let i = 0; i <= raw.length; i++) {
    for (let j = i; j <= raw.length; j++) {
      const r = recorder();
      r.parser.expect(false);
      feedCut(r.parser, raw, [i, j]);
      assert.equal(r.body.toString('latin1'), body.join(''), `split at ${i}, ${j}`);
      assert.deepEqual(r.completes, [true], `split at ${i}, ${j}`);
      assert.equal(r.heads.length, 1);
    }
  }
});

test('a chunked body without trailers, split everywhere', () => {
  const raw = bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(['0123456789abcdef0', 'z']));
  for (let i = 0; i <= raw.length; i++) {
    const r = recorder();
    r.parser.expect(false);
    feedCut(r.parser, raw, [i]);
    assert.equal(r.body.toString('latin1'), '0123456789abcdef0z', `split at ${i}`);
    assert.deepEqual(r.completes, [true], `split at ${i}`);
  }
});

test('a chunked body with upper- and lower-case hex sizes', () => {
  const data = 'y'.repeat(0x1a);
  const r = parse(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A\r\n${data}\r\n1a\r\n${data}\r\n0\r\n\r\n`);
  assertOneResponse(r, 200, data + data);
});

test('a zero-length chunked body', () => {
  const raw = bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  for (let i = 0; i <= raw.length; i++) {
    const r = recorder();
    r.parser.expect(false);
    feedCut(r.parser, raw, [i]);
    assertOneResponse(r, 200, '');
    assert.equal(r.heads[0].framing, 'chunked');
  }
});

// ---- read until close, and finish() ----

test('a body without length is read until close and completed by finish()', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst ');
  assert.equal(r.heads[0].framing, 'close');
  assert.equal(r.heads[0].keepAlive, false);
  assert.equal(r.parser.readingUntilClose, true);
  assert.equal(r.parser.busy, true);
  r.parser.execute(bytes('second '));
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\n\r\n')); // looks like a head, is just body
  assert.deepEqual(r.completes, []);
  assert.equal(r.parser.finish(), true);
  assertOneResponse(r, 200, 'first second HTTP/1.1 200 OK\r\n\r\n');
  assert.equal(r.parser.readingUntilClose, false);
  // a second close reports nothing more
  assert.equal(r.parser.finish(), true);
  assert.deepEqual(r.completes, [true]);
});

test('finish() is false for a cut content-length body, and reports nothing', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  assert.equal(r.parser.finish(), false);
  assert.deepEqual(r.completes, []);
  assert.equal(r.body.toString(), 'abc');
});

test('finish() is false for a cut chunked body, wherever it is cut', () => {
  const raw = bytes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(['abc', 'de'], { trailers: ['T: x'] }));
  // every proper prefix that has the head is a cut response
  const headEnd = raw.indexOf('\r\n\r\n') + 4;
  for (let i = headEnd; i < raw.length; i++) {
    const r = parse(raw.subarray(0, i));
    assert.equal(r.heads.length, 1);
    assert.equal(r.parser.finish(), false, `cut at ${i}`);
    assert.deepEqual(r.completes, [], `cut at ${i}`);
  }
});

test('finish() is false while the head is awaited, true when nothing is under way', () => {
  const r = recorder();
  assert.equal(r.parser.finish(), true); // idle: nothing was asked
  r.parser.expect(false);
  assert.equal(r.parser.finish(), false); // asked, no answer yet
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Le'));
  assert.equal(r.parser.finish(), false); // half a head
  const done = parse('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
  assert.equal(done.parser.finish(), true); // completed response
  assert.deepEqual(done.completes, [true]);
});

// ---- responses without a body ----

test('the answer to a HEAD request has no body, whatever its length says', () => {
  for (const framing of ['Content-Length: 1234', 'Transfer-Encoding: chunked', 'Content-Type: text/plain']) {
    const r = parse(`HTTP/1.1 200 OK\r\n${framing}\r\n\r\n`, { head: true });
    assertOneResponse(r, 200, '');
    assert.equal(r.heads[0].framing, 'none');
    assert.equal(r.heads[0].keepAlive, true, framing);
  }
});

test('204 and 304 have no body', () => {
  for (const status of [204, 304]) {
    const r = parse(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`);
    assertOneResponse(r, status, '');
    assert.equal(r.heads[0].framing, 'none');
    assert.equal(r.heads[0].keepAlive, true);
  }
});

test('the same status with a GET does have a body', () => {
  // control for the HEAD case: it is the request method that removes the body
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc', { head: false });
  assertOneResponse(r, 200, 'abc');
});

// ---- 1xx ----

const INTERIM =
  'HTTP/1.1 100 Continue\r\n\r\n' +
  'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
  'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok';

test('1xx interim responses are skipped before the real head', () => {
  const r = parse(INTERIM);
  assertOneResponse(r, 201, 'ok');
  assert.equal(r.heads[0].headers.link, undefined);
});

test('1xx interim responses are skipped however the bytes are split', () => {
  const raw = bytes(INTERIM);
  for (let i = 0; i <= raw.length; i++) {
    const r = recorder();
    r.parser.expect(false);
    feedCut(r.parser, raw, [i]);
    assertOneResponse(r, 201, 'ok');
  }
});

test('101 Switching Protocols is refused', () => {
  assertParseError('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n', 'HPE_UNEXPECTED_UPGRADE');
});

// ---- keep-alive ----

test('keep-alive by default for HTTP/1.1 with a framed body', () => {
  assert.equal(headOf('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
  assert.equal(headOf('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
  // only the whole token counts
  for (const value of ['closed-captions', 'not-close', 'x-close, foo', 'enclose']) {
    assert.equal(headOf(`HTTP/1.1 200 OK\r\nConnection: ${value}\r\nContent-Length: 0\r\n\r\n`).keepAlive, true, value);
  }
  assert.equal(headOf('HTTP/1.1 200 OK\r\nX-Note: close\r\nContent-Length: 0\r\n\r\n').keepAlive, true);
});

test('no keep-alive for HTTP/1.0', () => {
  const head = headOf('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal(head.status, 200);
  assert.equal(head.keepAlive, false);
});

test('no keep-alive after Connection: close, in any case and in a list', () => {
  for (const value of ['close', 'Close', 'CLOSE', 'foo, close', 'close, foo', 'foo,close', 'keep-alive,  Close ']) {
    assert.equal(headOf(`HTTP/1.1 200 OK\r\nConnection: ${value}\r\nContent-Length: 0\r\n\r\n`).keepAlive, false, value);
  }
  // on a second Connection line
  assert.equal(headOf('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive, false);
});

test('no keep-alive for a body read until close', () => {
  const head = headOf('HTTP/1.1 200 OK\r\n\r\n');
  assert.equal(head.framing, 'close');
  assert.equal(head.keepAlive, false);
});

test('no keep-alive when both Transfer-Encoding and Content-Length are present', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(['hello']));
  assertOneResponse(r, 200, 'hello'); // chunked wins over the length
  assert.equal(r.heads[0].framing, 'chunked');
  assert.equal(r.heads[0].keepAlive, false);
});

test('Keep-Alive: timeout=N gives keepAliveTimeoutMs', () => {
  assert.equal(headOf('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs, 5000);
  assert.equal(headOf('HTTP/1.1 200 OK\r\nKeep-Alive: max=100, Timeout=30\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs, 30_000);
  assert.equal(headOf('HTTP/1.1 200 OK\r\nKeep-Alive: max=100\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs, null);
  assert.equal(headOf('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs, null);
});

// ---- framing choices ----

test('Transfer-Encoding chunked wins over Content-Length, in either order', () => {
  for (const headers of ['Transfer-Encoding: chunked\r\nContent-Length: 3', 'Content-Length: 3\r\nTransfer-Encoding: chunked']) {
    const r = parse(`HTTP/1.1 200 OK\r\n${headers}\r\n\r\n${chunked(['abcdefgh'])}`);
    assertOneResponse(r, 200, 'abcdefgh');
  }
});

test('chunked as the last of several codings is chunked', () => {
  const r = parse(`HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n${chunked(['zz'])}`);
  assertOneResponse(r, 200, 'zz');
  assert.equal(r.heads[0].framing, 'chunked');
});

test('a final transfer coding other than chunked is read until close', () => {
  for (const te of ['gzip', 'chunked, gzip']) {
    const r = parse(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\nContent-Length: 2\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    assert.equal(r.heads[0].framing, 'close', te);
    assert.equal(r.heads[0].keepAlive, false, te);
    assert.equal(r.parser.readingUntilClose, true);
    assert.deepEqual(r.completes, []);
    assert.equal(r.parser.finish(), true);
    // the bytes are passed through as they came, not de-chunked, not cut at the length
    assertOneResponse(r, 200, '5\r\nhello\r\n0\r\n\r\n');
  }
});

// ---- headers ----

test('set-cookie is kept as an array', () => {
  const head = headOf('HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX: y\r\nset-cookie: b=2, c=3\r\nContent-Length: 0\r\n\r\n');
  assert.deepEqual(head.headers['set-cookie'], ['a=1; Path=/', 'b=2, c=3']);
  const one = headOf('HTTP/1.1 200 OK\r\nSet-Cookie: only=1\r\nContent-Length: 0\r\n\r\n');
  assert.deepEqual(one.headers['set-cookie'], ['only=1']);
});

test('other repeated headers are joined with a comma', () => {
  const head = headOf('HTTP/1.1 200 OK\r\nVary: Accept\r\nX-Thing: 1\r\nvary: Origin\r\nX-THING: 2\r\nX-Thing: 3\r\nContent-Length: 0\r\n\r\n');
  assert.equal(head.headers.vary, 'Accept, Origin');
  assert.equal(head.headers['x-thing'], '1, 2, 3');
});

test('header names are lower-cased and values trimmed', () => {
  const head = headOf('HTTP/1.1 200 OK\r\nX-Request-ID:  abc \t\r\nCONTENT-TYPE:\tapplication/json\r\nX-Empty:\r\nX-Inner: a  b\r\nContent-Length: 0\r\n\r\n');
  assert.equal(head.headers['x-request-id'], 'abc');
  assert.equal(head.headers['content-type'], 'application/json');
  assert.equal(head.headers['x-empty'], '');
  assert.equal(head.headers['x-inner'], 'a  b');
  assert.equal(head.headers['X-Request-ID'], undefined);
  assert.deepEqual(Object.keys(head.headers).sort(), ['content-length', 'content-type', 'x-empty', 'x-inner', 'x-request-id']);
});

test('obs-text bytes in a value are kept, even at its ends', () => {
  const head = headOf(Buffer.concat([bytes('HTTP/1.1 200 OK\r\nX-Name: '), Buffer.from([0xa0, 0x63, 0x61, 0x66, 0xe9, 0xa0]), bytes('\r\nContent-Length: 0\r\n\r\n')]));
  assert.equal(head.headers['x-name'], '\u00a0caf\u00e9\u00a0');
});

test('a status line without a reason phrase, or with an empty one', () => {
  assert.equal(headOf('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n').status, 404);
  assert.equal(headOf('HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n').status, 503);
  assert.equal(headOf('HTTP/1.1 418 I am a teapot\r\nContent-Length: 0\r\n\r\n').status, 418);
});

// ---- errors ----

test('a malformed status line is HPE_INVALID_CONSTANT', () => {
  for (const line of ['HTP/1.1 200 OK', 'HTTP/1.1 20 OK', 'HTTP/2 200 OK', 'HTTP/1.2 200 OK', 'HTTP/1.1  200 OK', 'HTTP/1.1 2000 OK', 'http/1.1 200 OK', 'garbage', '']) {
    assertParseError(`${line}\r\nContent-Length: 0\r\n\r\n`, 'HPE_INVALID_CONSTANT');
  }
});

test('a status below 100 is HPE_INVALID_STATUS', () => {
  assertParseError('HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_STATUS');
  assertParseError('HTTP/1.1 000 Zero\r\n\r\n', 'HPE_INVALID_STATUS');
});

test('a header line without a colon is HPE_INVALID_HEADER_TOKEN', () => {
  assertParseError('HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  assertParseError('HTTP/1.1 200 OK\r\n: empty name\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
});

test('a header name that is not a token is HPE_INVALID_HEADER_TOKEN', () => {
  for (const name of ['Bad Name', 'Name ', 'X(y)', 'X\ty', 'X@Y']) {
    assertParseError(`HTTP/1.1 200 OK\r\n${name}: value\r\nContent-Length: 0\r\n\r\n`, 'HPE_INVALID_HEADER_TOKEN');
  }
});

test('a control character in a value is HPE_INVALID_HEADER_TOKEN, wherever it sits', () => {
  for (const value of ['a\x01b', 'a\x7fb', 'a\x00b', 'a\rb', 'a\nb', 'ab\x0b', '\x0cab', 'ab\x1f']) {
    assertParseError(`HTTP/1.1 200 OK\r\nX-Bad: ${value}\r\nContent-Length: 0\r\n\r\n`, 'HPE_INVALID_HEADER_TOKEN');
  }
  // a tab inside is fine
  assert.equal(headOf('HTTP/1.1 200 OK\r\nX-Tab: a\tb\r\nContent-Length: 0\r\n\r\n').headers['x-tab'], 'a\tb');
});

test('an obs-fold continuation line is refused', () => {
  assertParseError('HTTP/1.1 200 OK\r\nX-Long: first\r\n second\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
  assertParseError('HTTP/1.1 200 OK\r\nX-Long: first\r\n\tx: second\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN');
});

test('an invalid Content-Length is HPE_INVALID_CONTENT_LENGTH', () => {
  for (const value of ['abc', '-1', '+5', '1.5', '0x10', '5 5', '', '1234567890123456']) {
    assertParseError(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`, 'HPE_INVALID_CONTENT_LENGTH');
  }
});

test('conflicting Content-Length values are HPE_INVALID_CONTENT_LENGTH', () => {
  assertParseError('HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!', 'HPE_INVALID_CONTENT_LENGTH');
  assertParseError('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 'HPE_INVALID_CONTENT_LENGTH');
  assertParseError('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 6\r\n\r\nhello!', 'HPE_INVALID_CONTENT_LENGTH');
});

test('equal repeated Content-Length values are accepted as one', () => {
  for (const headers of ['Content-Length: 5, 5', 'Content-Length: 5\r\nContent-Length: 5', 'Content-Length: 5,5\r\ncontent-length: 5']) {
    const r = parse(`HTTP/1.1 200 OK\r\n${headers}\r\n\r\nhello`);
    assertOneResponse(r, 200, 'hello');
    assert.equal(r.heads[0].headers['content-length'], '5');
  }
});

test('a head larger than maxHeadBytes is HPE_HEADER_OVERFLOW, with or without its end', () => {
  const max = 256;
  const big = `HTTP/1.1 200 OK\r\nX-Pad: ${'p'.repeat(400)}\r\nContent-Length: 0\r\n\r\n`;
  assertParseError(big, 'HPE_HEADER_OVERFLOW', { max }); // terminator present
  assertParseError(big.slice(0, 300), 'HPE_HEADER_OVERFLOW', { max }); // terminator never came
  // the same head passes with the default limit
  assert.equal(headOf(big).headers['x-pad'].length, 400);
  assert.ok(MAX_HEAD_BYTES >= 16 * 1024);
});

test('the head size limit does not depend on how the bytes are split', () => {
  const max = 128;
  const headOfSize = (n) => {
    const start = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ';
    return `${start}${'p'.repeat(n - start.length)}`;
  };
  // the largest head accepted when it comes whole is accepted byte by byte too, and one more byte is refused both ways
  let largest = -1;
  for (let n = max - 8; n <= max + 8; n++) {
    const raw = bytes(`${headOfSize(n)}\r\n\r\nok`);
    let whole;
    try {
      whole = parse(raw, { max }).heads.length === 1;
    } catch (err) {
      assert.equal(err.code, 'HPE_HEADER_OVERFLOW');
      whole = false;
    }
    const r = recorder(max);
    r.parser.expect(false);
    let bytewise;
    try {
      feedBytewise(r.parser, raw);
      bytewise = r.heads.length === 1 && r.body.toString() === 'ok';
    } catch (err) {
      assert.equal(err.code, 'HPE_HEADER_OVERFLOW');
      bytewise = false;
    }
    assert.equal(bytewise, whole, `head of ${n} bytes, limit ${max}`);
    if (whole) largest = n;
  }
  assert.ok(largest >= max - 8 && largest < max + 8, `some sizes pass and some fail around the limit (largest ${largest})`);
});

test('chunk sizes in either hex case, with leading zeros, extensions or spaces, whole or split: the same body', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  const data = 'x'.repeat(0x1a);
  for (const line of ['1a', '1A', '001a', '00000000001A', '1a;name=value', '1a ', '1a\t;x']) {
    const raw = bytes(`${head}${line}\r\n${data}\r\n3\r\nend\r\n0\r\n\r\n`);
    for (let cut = head.length; cut <= head.length + line.length + 2; cut++) {
      const r = recorder();
      r.parser.expect(false);
      feedCut(r.parser, raw, [cut]);
      assert.equal(r.body.toString(), data + 'end', `${JSON.stringify(line)} cut at ${cut}`);
      assert.deepEqual(r.completes, [true]);
    }
  }
});

test('a bad chunk size is HPE_INVALID_CHUNK_SIZE', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  for (const line of ['zz', '', '-5', '0x5', ';ext', '1234567890abc']) {
    assertParseError(`${head}${line}\r\nhello\r\n0\r\n\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  }
  // a bare LF ends no chunk-size line
  assertParseError(`${head}5\nhello\r\n0\r\n\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  assertParseError(`${head}5;x\nhello\r\n0\r\n\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  assertParseError(`${head}5\r\nhello\r\n0\n\r\n`, 'HPE_INVALID_CHUNK_SIZE');
});

test('a chunk size line that is too long is HPE_INVALID_CHUNK_SIZE, with or without its end', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  const ext = `;${'e'.repeat(2000)}`;
  assertParseError(`${head}5${ext}\r\nhello\r\n0\r\n\r\n`, 'HPE_INVALID_CHUNK_SIZE');
  assertParseError(`${head}5${ext}`, 'HPE_INVALID_CHUNK_SIZE');
  // a modest extension is fine
  assertOneResponse(parse(`${head}5;${'e'.repeat(100)}\r\nhello\r\n0\r\n\r\n`), 200, 'hello');
});

test('chunk data not followed by CRLF is HPE_STRICT', () => {
  const head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
  assertParseError(`${head}5\r\nhelloX\r\n0\r\n\r\n`, 'HPE_STRICT');
  assertParseError(`${head}5\r\nhello\rX0\r\n\r\n`, 'HPE_STRICT');
  assertParseError(`${head}5\r\nhello\n0\r\n\r\n`, 'HPE_STRICT');
});

test('bytes before expect() are HPE_UNEXPECTED_DATA', () => {
  const r = recorder();
  assert.equal(r.parser.busy, false);
  assert.throws(() => r.parser.execute(bytes('HTTP/1.1 200 OK\r\n\r\n')), { name: 'HttpParseError', code: 'HPE_UNEXPECTED_DATA' });
  assert.deepEqual(r.events, []);
  r.parser.execute(Buffer.alloc(0)); // nothing is not something
});

test('bytes after a completed response are HPE_UNEXPECTED_DATA', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  assert.deepEqual(r.completes, [true]);
  assert.throws(() => r.parser.execute(bytes('x')), { name: 'HttpParseError', code: 'HPE_UNEXPECTED_DATA' });
  assert.equal(r.events.length, 3); // head, body, complete: nothing more
});

test('HttpParseError is an Error with its code and a message', () => {
  try {
    parse('nonsense\r\n\r\n');
    assert.fail('should have thrown');
  } catch (err) {
    assert.ok(err instanceof Error);
    assert.ok(err instanceof HttpParseError);
    assert.equal(err.name, 'HttpParseError');
    assert.equal(err.code, 'HPE_INVALID_CONSTANT');
    assert.ok(err.message.length > 0);
  }
});

// ---- bytes after a response ----

test('extra bytes after a complete response in the same buffer make it unclean', () => {
  const cases = [
    ['content-length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', false, 'ok'],
    ['chunked', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['ok'])}`, false, 'ok'],
    ['chunked with trailers', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['ok'], { trailers: ['T: 1'] })}`, false, 'ok'],
    ['content-length 0', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', false, ''],
    ['204', 'HTTP/1.1 204 No Content\r\n\r\n', false, ''],
    ['304', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', false, ''],
    ['HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', true, ''],
  ];
  const smuggled = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil';
  for (const [name, response, head, body] of cases) {
    const clean = parse(response, { head });
    assert.deepEqual(clean.completes, [true], `${name} alone`);
    const r = parse(response + smuggled, { head });
    assert.equal(r.heads.length, 1, name);
    assert.equal(r.body.toString(), body, name);
    assert.deepEqual(r.completes, [false], name);
    assert.equal(r.parser.busy, false, name);
  }
});

test('extra bytes arriving in a later buffer are an error, not an unclean completion', () => {
  const r = recorder();
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  assert.deepEqual(r.completes, [true]);
  assert.throws(() => r.parser.execute(bytes('HTTP/1.1 200 OK\r\n')), { code: 'HPE_UNEXPECTED_DATA' });
});

test('bytes after a response are not parsed, even when the sink expects the next one at once', () => {
  // a pool may hand the connection to the next request from inside onComplete
  const r = recorder();
  const onComplete = r.sink.onComplete;
  let rearmed = false;
  r.sink.onComplete = (clean) => {
    onComplete(clean);
    if (!rearmed) {
      rearmed = true;
      r.parser.expect(false);
    }
  };
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil'));
  assert.equal(r.heads.length, 1);
  assert.equal(r.body.toString(), 'ok');
  assert.deepEqual(r.completes, [false]);
});

// ---- stop() ----

test('stop() from onHead: nothing more of that buffer is reported', () => {
  for (const response of ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['hello'])}`, 'HTTP/1.1 200 OK\r\n\r\nhello']) {
    const r = recorder();
    r.sink.onHead = (head) => {
      r.events.push({ type: 'head', head });
      r.parser.stop();
    };
    r.parser.expect(false);
    r.parser.execute(bytes(response));
    assert.deepEqual(r.events.map((e) => e.type), ['head'], response);
    assert.equal(r.parser.busy, false);
    assert.equal(r.parser.readingUntilClose, false);
  }
});

test('stop() from onBody: nothing more is reported, not even the completion', () => {
  const responses = [
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', // stop on the last body bytes
    'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello', // stop with body still to come
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(['hello', 'world'])}`, // stop at the end of a chunk
  ];
  for (const response of responses) {
    const r = recorder();
    r.sink.onBody = (chunk) => {
      r.events.push({ type: 'body', chunk });
      r.parser.stop();
    };
    r.parser.expect(false);
    r.parser.execute(bytes(response));
    assert.deepEqual(r.events.map((e) => e.type), ['head', 'body'], response);
    assert.equal(r.body.toString(), 'hello');
    assert.equal(r.parser.busy, false);
  }
});

test('after stop() the parser is idle: finish() is true and new bytes are unexpected', () => {
  const r = parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  assert.equal(r.parser.busy, true);
  r.parser.stop();
  assert.equal(r.parser.busy, false);
  assert.equal(r.parser.finish(), true);
  assert.throws(() => r.parser.execute(bytes('defg')), { code: 'HPE_UNEXPECTED_DATA' });
  assert.deepEqual(r.completes, []);
});

test('a parser stopped in the middle of a head forgets it', () => {
  const r = recorder();
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 500 Half\r\nX: '));
  r.parser.stop();
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  assertOneResponse(r, 200, 'ok');
});

// ---- reuse and state ----

test('the parser reads a second response after expect() again', () => {
  const r = recorder();
  r.parser.expect(false);
  r.parser.execute(bytes(CHUNKED_RESPONSE));
  r.parser.expect(true);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n'));
  r.parser.expect(false);
  feedBytewise(r.parser, bytes(LENGTH_RESPONSE));
  assert.deepEqual(r.heads.map((h) => h.framing), ['chunked', 'none', 'length']);
  assert.deepEqual(r.completes, [true, true, true]);
  assert.equal(r.body.toString('latin1'), CHUNKED_BODY + LENGTH_BODY);
});

test('expect() again forgets half a head of the previous answer', () => {
  const r = recorder();
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 502 Bad Gateway\r\nX-Half: '));
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
  assertOneResponse(r, 200, 'ok');
  assert.equal(r.heads[0].headers['x-half'], undefined);
});

test('busy, started and readingUntilClose follow the response', () => {
  const r = recorder();
  const state = () => ({ busy: r.parser.busy, started: r.parser.started, untilClose: r.parser.readingUntilClose });
  assert.deepEqual(state(), { busy: false, started: false, untilClose: false });
  r.parser.expect(false);
  assert.deepEqual(state(), { busy: true, started: false, untilClose: false });
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\n'));
  assert.deepEqual(state(), { busy: true, started: true, untilClose: false });
  r.parser.execute(bytes('Content-Length: 4\r\n\r\nab'));
  assert.deepEqual(state(), { busy: true, started: true, untilClose: false });
  r.parser.execute(bytes('cd'));
  assert.deepEqual(state(), { busy: false, started: true, untilClose: false });
  // the next request starts fresh
  r.parser.expect(false);
  assert.deepEqual(state(), { busy: true, started: false, untilClose: false });
  r.parser.execute(bytes('HTTP/1.1 200 OK\r\n\r\nstream'));
  assert.deepEqual(state(), { busy: true, started: true, untilClose: true });
  assert.equal(r.parser.finish(), true);
  assert.deepEqual(state(), { busy: false, started: true, untilClose: false });
  assert.deepEqual(r.completes, [true, true]);
});

test('started turns true with an interim response, before the real head', () => {
  const r = recorder();
  r.parser.expect(false);
  r.parser.execute(bytes('HTTP/1.1 100 Continue\r\n\r\n'));
  assert.equal(r.parser.started, true);
  assert.equal(r.parser.busy, true);
  assert.equal(r.heads.length, 0);
});
