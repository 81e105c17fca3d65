// Who gets in, what the upstream sees of credentials, admin endpoints, slow clients, and
// secrets that must never show up anywhere.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, runProxy, request, json, logLines, waitFor } from './helpers.mjs';

const KEY_A = 'sk-proxy-alice-0123456789';
const KEY_B = 'sk-proxy-bob-9876543210';
const UPSTREAM_KEY = 'sk-upstream-SECRET-55555';
const ADMIN = 'admin-token-SECRET-777';
const CHAT = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };

describe('client keys, upstream key, admin token', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeUpstream();
    proxy = await startProxy({ UPSTREAM_URL: fake.url, PROXY_API_KEYS: `alice=${KEY_A},bob=${KEY_B}`, UPSTREAM_API_KEY: UPSTREAM_KEY, ADMIN_TOKEN: ADMIN, RATE_LIMIT_REQUESTS: '3' });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  test('no key or a wrong key: 401 invalid_api_key in the OpenAI shape, upstream untouched', async () => {
    const seen = fake.stats.attempts;
    for (const headers of [{}, { authorization: 'Bearer sk-wrong-key-000' }, { authorization: `Basic ${KEY_A}` }, { 'api-key': 'nope-nope-nope' }]) {
      const r = await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers });
      assert.equal(r.status, 401);
      const err = JSON.parse(r.body).error;
      assert.equal(err.code, 'invalid_api_key');
      assert.equal(err.type, 'invalid_request_error');
    }
    assert.equal(fake.stats.attempts, seen);
  });

  test('a good key (Bearer or api-key) gets through, and the upstream sees only its own key', async () => {
    const r = await request(`${proxy.url}/v1/echo/x`, { headers: { authorization: `Bearer ${KEY_A}` } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body).headers;
    assert.equal(seen.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(seen['api-key'], undefined);
    const azure = await request(`${proxy.url}/v1/echo/y`, { headers: { 'api-key': KEY_B } });
    assert.equal(azure.status, 200);
    assert.equal(JSON.parse(azure.body).headers['api-key'], undefined);
    assert.ok(!r.body.toString().includes(KEY_A));
  });

  test('the limiter keys on the key id: alice spending her bucket does not touch bob', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(`${proxy.url}/v1/models`, { headers: { authorization: `Bearer ${KEY_A}` } })).status);
    assert.deepEqual(statuses.slice(-1), [429]);
    assert.equal((await request(`${proxy.url}/v1/models`, { headers: { authorization: `Bearer ${KEY_B}` } })).status, 200);
  });

  test('/metrics and /stats need the admin token; / and /health stay open', async () => {
    for (const path of ['/metrics', '/stats']) {
      const denied = await request(`${proxy.url}${path}`);
      assert.equal(denied.status, 401);
      assert.equal(JSON.parse(denied.body).error.code, 'invalid_api_key');
      assert.equal((await request(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${KEY_A}` } })).status, 401, 'a client key is not an admin token');
      assert.equal((await request(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200);
    }
    assert.equal((await request(`${proxy.url}/`)).status, 200);
    assert.equal((await request(`${proxy.url}/health`)).status, 200);
  });

  test('a websocket upgrade needs a key too', async () => {
    const raw = await new Promise((resolve) => {
      const sock = net.connect(proxy.port, '127.0.0.1', () => sock.write('GET /v1/realtime HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d));
      sock.on('close', () => resolve(got));
    });
    assert.match(raw, /^HTTP\/1\.1 401 /);
  });

  test('no secret appears in any log file, /stats, /metrics or stdout', async () => {
    await json(`${proxy.url}/v1/chat/completions`, CHAT, { headers: { authorization: `Bearer ${KEY_B}` } });
    await waitFor(() => logLines(proxy.logDir, 'requests.log').length > 3);
    const places = [proxy.stdout(), proxy.stderr(), (await request(`${proxy.url}/stats`, { headers: { authorization: `Bearer ${ADMIN}` } })).body.toString(), (await request(`${proxy.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).body.toString()];
    for (const f of readdirSync(proxy.logDir)) places.push(readFileSync(join(proxy.logDir, f), 'utf8'));
    for (const secret of [KEY_A, KEY_B, UPSTREAM_KEY, ADMIN]) for (const text of places) assert.ok(!text.includes(secret), `a secret leaked`);
  });
});

test('keys from a file rotate on SIGHUP without a restart', async () => {
  const fake = await startFakeUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'keys-'));
  const file = join(dir, 'keys');
  writeFileSync(file, `# team keys\nalice=${KEY_A}\n`);
  const proxy = await startProxy({ UPSTREAM_URL: fake.url, PROXY_API_KEYS_FILE: file });
  try {
    const status = async (key) => (await request(`${proxy.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status;
    assert.equal(await status(KEY_A), 200);
    assert.equal(await status(KEY_B), 401);
    writeFileSync(file, `bob=${KEY_B}\n`);
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'client keys reloaded'));
    assert.equal(await status(KEY_B), 200);
    assert.equal(await status(KEY_A), 401);
    writeFileSync(file, 'short\n'); // a broken file keeps the keys that worked
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg.startsWith('client keys file could not be reloaded')));
    assert.equal(await status(KEY_B), 200);

    // keys with limits reload like any others
    writeFileSync(file, `bob=${KEY_B} rpm=60 max_parallel=2 weight=0.5\n`);
    proxy.proc.kill('SIGHUP');
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').filter((l) => l.msg === 'client keys reloaded').length === 2);
    assert.equal(await status(KEY_B), 200);

    // a bad limit rejects the whole file, even the good line before it: alice stays out,
    // bob stays in, and the log names each problem by line and id, never a key
    writeFileSync(file, `alice=${KEY_A}\nbob=${KEY_B} rpm=0 weight=heavy\n`);
    proxy.proc.kill('SIGHUP');
    const failed = await waitFor(() => logLines(proxy.logDir, 'proxy.log').filter((l) => l.msg.startsWith('client keys file could not be reloaded'))[1]);
    assert.deepEqual(failed.problems, [
      `config error: PROXY_API_KEYS_FILE=${file}: line 2 (bob): rpm must be an integer >= 1, got "0" (leave rpm out for RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW)`,
      `config error: PROXY_API_KEYS_FILE=${file}: line 2 (bob): weight must be a number > 0, got "heavy"`,
    ]);
    assert.equal(failed.level, 'ERROR');
    assert.equal(await status(KEY_B), 200);
    assert.equal(await status(KEY_A), 401);
    const log = readFileSync(join(proxy.logDir, 'proxy.log'), 'utf8') + proxy.stdout() + proxy.stderr();
    assert.ok(!log.includes(KEY_A) && !log.includes(KEY_B), 'no key in the logs');
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

test('bad key settings stop the process with one line that does not echo the secret', async () => {
  const r = await runProxy({ PROXY_API_KEYS: 'tiny', UPSTREAM_API_KEY: 'has space inside' });
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 2);
  assert.match(r.stderr, /PROXY_API_KEYS=\(value hidden\)/);
  assert.ok(!r.stderr.includes('tiny') && !r.stderr.includes('has space'));
  const missing = await runProxy({ PROXY_API_KEYS_FILE: '/nonexistent/keys' });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^config error: .*\/nonexistent\/keys/);
});

test('a keys file with a bad limit stops the process: exit 2, one line per problem naming the file and line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'keys-'));
  const file = join(dir, 'keys');
  writeFileSync(file, `# team keys\nalice=${KEY_A} rpm=60 weight=2\nbob=${KEY_B} max_parallel=0 burst=${KEY_B}\n${KEY_A}x tpm=1000\n`);
  const r = await runProxy({ PROXY_API_KEYS_FILE: file });
  assert.equal(r.code, 2);
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `config error: PROXY_API_KEYS_FILE=${file}: line 3 (bob): max_parallel must be an integer >= 1, got "0" (leave max_parallel out for no cap)`,
    `config error: PROXY_API_KEYS_FILE=${file}: line 3 (bob): word 2 after the key names no known limit; accepted: rpm, tpm, max_parallel, weight (the word is not shown: it could be part of a key)`,
    `config error: PROXY_API_KEYS_FILE=${file}: line 4 (key-3): limits need a named key: write <id>=<key> before them (key-3 counts entries, so it would pass to another key when a line is added above)`,
  ]);
  assert.ok(!r.stderr.includes(KEY_A) && !r.stderr.includes(KEY_B) && !r.stdout.includes(KEY_A));
  assert.doesNotMatch(r.stdout, /"msg":"listening"/);
});

test('ADMIN_PORT serves the admin endpoints on loopback without the token', async () => {
  const fake = await startFakeUpstream();
  // ADMIN_PORT has no "pick one" value (0 is off), so the test picks a port. It takes
  // them below the ephemeral range (Linux: 32768-60999), where the listen(0) servers
  // and outgoing sockets of the tests running beside it never land, and tries another
  // on the rare EADDRINUSE from anything else on the machine.
  let proxy;
  let adminPort;
  for (let attempt = 1; !proxy; attempt++) {
    adminPort = 20000 + Math.floor(Math.random() * 12000);
    try {
      proxy = await startProxy({ UPSTREAM_URL: fake.url, ADMIN_TOKEN: ADMIN, ADMIN_PORT: String(adminPort) });
    } catch (err) {
      if (attempt === 5 || !/EADDRINUSE/.test(err.message)) throw err;
    }
  }
  try {
    await waitFor(() => logLines(proxy.logDir, 'proxy.log').some((l) => l.msg === 'admin endpoints listening'));
    const m = await request(`http://127.0.0.1:${adminPort}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.body.toString(), /openai_proxy_in_flight_requests/);
    assert.equal((await request(`http://127.0.0.1:${adminPort}/v1/models`)).status, 404, 'the admin port forwards nothing');
    assert.equal((await request(`${proxy.url}/metrics`)).status, 401);
  } finally {
    await proxy.stop();
    await fake.close();
  }
});

describe('slow clients', () => {
  let fake;
  let proxy;
  before(async () => {
    fake = await startFakeUpstream();
    proxy = await startProxy({ UPSTREAM_URL: fake.url, CLIENT_TIMEOUT: '0.5' });
  });
  after(async () => {
    await proxy?.stop();
    await fake?.close();
  });

  /** Sends `parts` on a raw socket; resolves with what came back when the proxy closes it. */
  const slow = (parts) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const sock = net.connect(proxy.port, '127.0.0.1', () => parts.forEach((p) => sock.write(p)));
      let got = '';
      sock.on('data', (d) => (got += d));
      sock.on('error', () => {});
      sock.on('close', () => resolve({ got, ms: performance.now() - t0 }));
    });

  test('headers that never finish are cut with 408 (slow loris)', async () => {
    const r = await slow(['GET /v1/models HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n']);
    assert.match(r.got, /^HTTP\/1\.1 408 /);
    assert.ok(r.ms < 3000, `cut after ${r.ms} ms`);
  });

  test('a body that stalls is given up with 408 and the upstream is not asked', async () => {
    const seen = fake.stats.attempts;
    const r = await slow(['POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":']);
    assert.match(r.got, /^HTTP\/1\.1 408 /);
    assert.match(r.got, /"code":"request_timeout"/);
    assert.ok(r.ms < 3000);
    assert.equal(fake.stats.attempts, seen);
  });
});
