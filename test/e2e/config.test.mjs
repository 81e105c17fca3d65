// Configuration at the edge: a bad value stops the process before it listens, exit 2,
// one line per bad variable naming it, its value and what is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProxy, startProxy, request } from './helpers.mjs';

test('a bad value exits 2 with one line naming the variable, the value and what is accepted', async () => {
  const r = await runProxy({ TIMEOUT: 'soon' });
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1);
  assert.match(lines[0], /TIMEOUT="soon".*seconds > 0/);
  assert.equal(r.stdout, '', 'it never started listening');
});

test('every bad variable is reported at once', async () => {
  const r = await runProxy({ PORT: '70000', LOG_LEVEL: 'loud', UPSTREAM_URL: 'ftp://llm.internal', RATE_LIMIT_ENABLED: 'maybe', MAX_RETRIES: '-1' });
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 5);
  for (const name of ['PORT="70000"', 'LOG_LEVEL="loud"', 'UPSTREAM_URL="ftp://llm.internal"', 'RATE_LIMIT_ENABLED="maybe"', 'MAX_RETRIES="-1"']) {
    assert.ok(lines.some((l) => l.includes(name)), name);
  }
});

test('--help lists every variable with its default', async () => {
  const r = await runProxy({}, ['--help']);
  assert.equal(r.code, 0);
  for (const name of ['UPSTREAM_URL', 'TIMEOUT', 'UPSTREAM_HTTP2', 'MAX_REQUEST_BODY', 'POOL_SIZE']) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
});

test('PORT=0 binds a free port and the log says which; / answers ok', async () => {
  const proxy = await startProxy({});
  try {
    assert.ok(proxy.port > 0);
    const r = await request(`${proxy.url}/`);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
  } finally {
    const { code } = await proxy.stop();
    assert.equal(code, 0);
  }
});
