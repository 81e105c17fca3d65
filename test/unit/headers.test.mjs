// Header hygiene, both directions (RFC 9110 §7.6.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toUpstreamHeaders, toClientHeaders, connectionTokens } from '../../dist/http/headers.js';

const ctx = { clientIp: '127.0.0.9', trustProxy: false, requestId: 'rid-1', upstreamHost: 'llm.internal:8000', http2: false, credentials: 'pass' };

test('hop-by-hop headers and those named in Connection do not go upstream', () => {
  const out = toUpstreamHeaders({ connection: 'keep-alive, X-Custom-Hop', 'x-custom-hop': '1', 'keep-alive': 'timeout=5', te: 'trailers', trailer: 'x', 'transfer-encoding': 'chunked', upgrade: 'h2c', 'proxy-authorization': 'Basic x', 'proxy-connection': 'keep-alive', authorization: 'Bearer k', 'content-type': 'application/json' }, ctx);
  assert.deepEqual(Object.keys(out).sort(), ['authorization', 'content-type', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id']);
  assert.equal(out.host, 'llm.internal:8000');
});

test("the client's credentials pass, are stripped, or are replaced by the upstream key", () => {
  const incoming = { authorization: 'Bearer client-key', 'api-key': 'client-key', accept: '*/*' };
  assert.equal(toUpstreamHeaders(incoming, ctx).authorization, 'Bearer client-key');
  const stripped = toUpstreamHeaders(incoming, { ...ctx, credentials: 'strip' });
  assert.equal(stripped.authorization, undefined);
  assert.equal(stripped['api-key'], undefined);
  const replaced = toUpstreamHeaders(incoming, { ...ctx, credentials: { authorization: 'Bearer upstream-key' } });
  assert.equal(replaced.authorization, 'Bearer upstream-key');
  assert.equal(replaced['api-key'], undefined);
  assert.equal(replaced.accept, '*/*');
});

test('an untrusted client cannot forge X-Forwarded-*', () => {
  const out = toUpstreamHeaders({ host: 'proxy.example', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil' }, ctx);
  assert.equal(out['x-forwarded-for'], '127.0.0.9');
  assert.equal(out['x-forwarded-proto'], 'http');
  assert.equal(out['x-forwarded-host'], 'proxy.example');
});

test('behind a trusted balancer the chain is extended', () => {
  const out = toUpstreamHeaders({ host: 'p', 'x-forwarded-for': '198.51.100.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example' }, { ...ctx, trustProxy: true });
  assert.equal(out['x-forwarded-for'], '198.51.100.1, 127.0.0.9');
  assert.equal(out['x-forwarded-proto'], 'https');
  assert.equal(out['x-forwarded-host'], 'api.example');
});

test('over HTTP/2 no Host header is sent (it becomes :authority)', () => {
  const out = toUpstreamHeaders({ host: 'p', accept: '*/*' }, { ...ctx, http2: true });
  assert.equal(out.host, undefined);
  assert.equal(out.accept, '*/*');
});

test('answers lose hop-by-hop and pseudo headers, keep the rest, and carry our id', () => {
  const out = toClientHeaders({ ':status': '200', connection: 'close, x-hop', 'x-hop': 'y', 'transfer-encoding': 'chunked', 'content-type': 'text/event-stream', 'set-cookie': ['a=1', 'b=2'], 'x-request-id': 'upstream-7' }, 'rid-1');
  assert.deepEqual(out, { 'content-type': 'text/event-stream', 'set-cookie': ['a=1', 'b=2'], 'x-upstream-request-id': 'upstream-7', 'x-request-id': 'rid-1' });
});

test('connection tokens are parsed case-insensitively, repeated headers joined', () => {
  assert.deepEqual([...connectionTokens(['Keep-Alive, X-A', ' x-b '])], ['keep-alive', 'x-a', 'x-b']);
  assert.equal(connectionTokens(undefined), null);
});
