// Small pure helpers: request ids, rate-limit durations, the error renderer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestIdFor } from '../../dist/http/request-id.js';
import { formatDuration } from '../../dist/http/duration.js';
import { ProxyError, renderError } from '../../dist/errors.js';

test('a sane client request id is kept; anything else is replaced', () => {
  assert.equal(requestIdFor('abc-123_XYZ'), 'abc-123_XYZ');
  for (const bad of [undefined, '', 'a b', 'x'.repeat(129), ['a', 'b'], 'bad\u0001']) assert.match(requestIdFor(bad), /^req_[0-9a-f]{32}$/);
});

test('durations are written as Go duration strings, as OpenAI does', () => {
  assert.equal(formatDuration(0), '0ms');
  assert.equal(formatDuration(12.4), '12ms');
  assert.equal(formatDuration(1000), '1s');
  assert.equal(formatDuration(1500), '1.5s');
  assert.equal(formatDuration(360_000), '6m0s');
  assert.equal(formatDuration(3_723_000), '1h2m3s');
  assert.equal(formatDuration(-5), '0ms');
});

test('proxy errors render in the OpenAI shape with the right headers', () => {
  const e = new ProxyError('upstream_timeout', 'slow');
  assert.equal(e.status, 504);
  assert.deepEqual(JSON.parse(renderError(e)), { error: { message: 'slow', type: 'server_error', param: null, code: 'upstream_timeout' } });
  assert.deepEqual(e.responseHeaders(), { 'x-should-retry': 'false' });
  const r = new ProxyError('rate_limited', 'wait', { retryAfterSec: 0.2, headers: { 'x-a': '1' } });
  assert.deepEqual(r.responseHeaders(), { 'x-a': '1', 'retry-after': '1' });
  assert.equal(new ProxyError('circuit_open', 'x', { retryAfterSec: 12.1 }).responseHeaders()['retry-after'], '13');
});

test('one answer for every error: sendError and rawError write the same head and body', async () => {
  const { errorAnswer } = await import('../../dist/errors.js');
  const { rawError } = await import('../../dist/http/raw-error.js');
  const err = new ProxyError('draining', 'The proxy is shutting down.');
  const a = errorAnswer(err, 'req_1', { 'x-ratelimit-limit-requests': '5' });
  assert.equal(a.status, 503);
  assert.equal(a.headers['x-request-id'], 'req_1');
  assert.equal(a.headers['x-ratelimit-limit-requests'], '5');
  assert.equal(a.headers.connection, 'close', 'a draining proxy takes no more requests on the connection');
  assert.equal(a.headers['content-length'], Buffer.byteLength(a.body));
  let wire = '';
  const socket = { writable: true, end: (s) => (wire = s), destroy: () => assert.fail('not destroyed while writable') };
  assert.equal(rawError(socket, err, 'req_1'), 503);
  const [head, body] = wire.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.match(head, /\r\nx-request-id: req_1\r\n/);
  assert.equal(head.match(/connection:/gi).length, 1, 'one Connection header');
  assert.equal(body, a.body);
  let destroyed = false;
  rawError({ writable: false, end: () => assert.fail('nothing written on a dead socket'), destroy: () => (destroyed = true) }, err, 'req_2');
  assert.ok(destroyed);
});

test("the proxy's own bug is a 500 of its own, never an upstream code", () => {
  const e = new ProxyError('internal', 'oops');
  assert.equal(e.status, 500);
  assert.equal(e.code, 'internal_error');
  assert.equal(e.type, 'server_error');
  assert.equal(new ProxyError('headers_too_large', 'big').status, 431);
});

test('the upstream target: base path without trailing slashes, Host as written, an IPv6 literal without brackets to connect to', async () => {
  const { upstreamTarget } = await import('../../dist/upstream/target.js');
  const t = upstreamTarget(new URL('http://[::1]:8080/openai/'));
  assert.deepEqual({ basePath: t.basePath, host: t.host, connectHost: t.connectHost, port: t.port, tls: t.tls }, { basePath: '/openai', host: '[::1]:8080', connectHost: '::1', port: 8080, tls: false });
  const s = upstreamTarget(new URL('https://llm.internal'));
  assert.deepEqual({ basePath: s.basePath, host: s.host, connectHost: s.connectHost, port: s.port, tls: s.tls }, { basePath: '', host: 'llm.internal', connectHost: 'llm.internal', port: 443, tls: true });
});

test('the limiter keys on the key id when keys are on, else on the address: never on an unverified token', async () => {
  const { clientKey } = await import('../../dist/http/client-identity.js');
  assert.equal(clientKey('127.0.0.1', 'alice'), 'id:alice');
  assert.equal(clientKey('127.0.0.1', null), 'ip:127.0.0.1');
});

test('the WebSocket handshake is the forwarded headers plus the upgrade pair, in one validated head', async () => {
  const { handshakeFor } = await import('../../dist/upstream/websocket-tunnel.js');
  const req = { method: 'GET', headers: { upgrade: 'websocket' } };
  const head = handshakeFor(req, { path: '/base/v1/realtime?model=m', headers: { host: 'llm.internal:8000', 'x-forwarded-for': '127.0.0.1', 'sec-websocket-key': 'k' } });
  assert.equal(head, 'GET /base/v1/realtime?model=m HTTP/1.1\r\nhost: llm.internal:8000\r\nx-forwarded-for: 127.0.0.1\r\nsec-websocket-key: k\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
  assert.throws(() => handshakeFor(req, { path: '/v1/realtime', headers: { 'x-evil': 'a\r\nb: c' } }), /cannot be forwarded/);
});
