// Configuration at the edge: a bad value stops the process before it listens, exit 2,
// one line per bad variable naming it, its value and what is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('a bad UPSTREAMS_FILE exits 2 with every problem on its own line, naming the file and the entry', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'oproxy-upstreams-')), 'upstreams.json');
  writeFileSync(file, JSON.stringify([
    { url: 'http://127.0.0.1:9', name: 'gpu-a' },
    { url: 'http://127.0.0.1:10', name: 'gpu-b', weight: 0 },
    { url: 'ftp://127.0.0.1:11' },
    { url: 'http://127.0.0.1:12', name: 'gpu-a', max_concurrent: -1 },
  ]));
  const r = await runProxy({ UPSTREAMS_FILE: file });
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `config error: UPSTREAMS_FILE=${file}: entry 2 (gpu-b): weight must be a number > 0, got 0`,
    `config error: UPSTREAMS_FILE=${file}: entry 3: url must be an http:// or https:// URL without credentials, query or fragment, got "ftp://127.0.0.1:11"`,
    `config error: UPSTREAMS_FILE=${file}: entry 4 (gpu-a): max_concurrent must be an integer >= 0 (0 = no cap), got -1`,
    `config error: UPSTREAMS_FILE=${file}: entry 4 (gpu-a): name gpu-a is already the name of entry 1`,
  ]);
  assert.equal(r.stdout, '', 'it never started listening');
});

test('UPSTREAMS_FILE beside a list in UPSTREAM_URL, or a missing file, exits 2', async () => {
  const missing = join(tmpdir(), 'oproxy-no-such-dir', 'upstreams.json');
  const r = await runProxy({ UPSTREAMS_FILE: missing, UPSTREAM_URL: 'http://127.0.0.1:9,http://127.0.0.1:10' });
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^config error: UPSTREAMS_FILE=.* is set together with a list of upstreams in UPSTREAM_URL/);
  assert.match(lines[1], /^config error: UPSTREAMS_FILE=.*upstreams\.json: cannot be read: ENOENT/);
  assert.equal(r.stdout, '');
});

test('a list in UPSTREAM_URL with a duplicate exits 2 naming the element', async () => {
  const r = await runProxy({ UPSTREAM_URL: 'http://127.0.0.1:9,http://127.0.0.1:9/v2' });
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n'), ['config error: UPSTREAM_URL="http://127.0.0.1:9,http://127.0.0.1:9/v2": element 2 "http://127.0.0.1:9/v2" has the name 127.0.0.1:9 (host:port) of element 1; each upstream of the list needs its own host:port (UPSTREAMS_FILE can name them)']);
});

test('a good UPSTREAMS_FILE (with the default UPSTREAM_URL) starts', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'oproxy-upstreams-')), 'upstreams.json');
  writeFileSync(file, '[{"url": "http://127.0.0.1:9", "name": "gpu-a", "models": ["m"]}, {"url": "http://[::1]:9"}]');
  const proxy = await startProxy({ UPSTREAMS_FILE: file, BALANCE: 'affinity', HEALTH_CHECK_INTERVAL: '0' });
  const { code } = await proxy.stop();
  assert.equal(code, 0);
});

test('--help lists every variable with its default', async () => {
  const r = await runProxy({}, ['--help']);
  assert.equal(r.code, 0);
  for (const name of ['UPSTREAM_URL', 'UPSTREAMS_FILE', 'BALANCE', 'HEALTH_CHECK_PATH', 'MODEL_DISCOVERY_INTERVAL', 'TIMEOUT', 'UPSTREAM_HTTP2', 'MAX_REQUEST_BODY', 'POOL_SIZE']) assert.match(r.stdout, new RegExp(`^  ${name} `, 'm'));
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
