// Shared by the end-to-end tests: start the real compiled proxy (dist/main.js) as a child
// process on 127.0.0.1 with a port chosen by the OS, and speak to it over real sockets.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';
import http2 from 'node:http2';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = join(ROOT, 'dist', 'main.js');

/** Env for a proxy in a test: short timeouts, no backoff waits worth speaking of. */
export const FAST = {
  TIMEOUT: '2',
  CONNECT_TIMEOUT: '1',
  RETRY_DELAY: '0.01',
  RETRY_MAX_DELAY: '0.05',
  SHUTDOWN_TIMEOUT: '2',
  LOG_LEVEL: 'WARNING',
};

/**
 * Starts the proxy; resolves once it logged its port. `env` overrides FAST.
 * `baseEnv` replaces this process's environment plus FAST (the ops tests start it as an
 * operator would, with nothing but PATH); `nodeArgs` go before dist/main.js.
 * Returns { url, port, logDir, proc, stdout(), stop() }.
 */
export async function startProxy(env = {}, { baseEnv = { ...process.env, ...FAST, LOG_LEVEL: 'INFO' }, nodeArgs = [], cwd } = {}) {
  const logDir = env.LOG_DIR ?? mkdtempSync(join(tmpdir(), 'oproxy-'));
  const proc = spawn(process.execPath, [...nodeArgs, MAIN], {
    cwd,
    env: { ...baseEnv, HOST: '127.0.0.1', PORT: '0', LOG_DIR: logDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`the proxy did not log "listening" within 10 s: ${err}${out}`));
    }, 10_000);
    const onData = () => {
      const m = /"msg":"listening"[^\n]*"port":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    proc.stdout.on('data', onData);
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`proxy exited with ${code} before listening: ${err}${out}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    logDir,
    proc,
    exited,
    stdout: () => out,
    stderr: () => err,
    /** SIGTERM and wait for the exit (so coverage is written). */
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs the proxy to completion (for config errors): resolves { code, stdout, stderr }. */
export function runProxy(env, args = []) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, NODE_V8_COVERAGE: process.env.NODE_V8_COVERAGE ?? '', HOST: '127.0.0.1', PORT: '0', LOG_DIR: mkdtempSync(join(tmpdir(), 'oproxy-')), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGTERM'), 5000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * One HTTP/1.1 request. Resolves { status, headers, body: Buffer, chunks: Buffer[] (as they
 * arrived) }. `agent: false` gives a fresh connection.
 */
export function request(url, { method = 'GET', headers = {}, body, agent } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), chunks, complete: true }));
      res.on('error', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), chunks, complete: false }));
      res.on('aborted', () => {});
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export function json(url, payload, { headers = {}, method = 'POST', agent } = {}) {
  const body = Buffer.from(JSON.stringify(payload));
  return request(url, { method, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers }, body, agent });
}

/** Parses an SSE body into events: [{ event, data }]. */
export function sseEvents(buf) {
  const events = [];
  for (const block of buf.toString('utf8').split(/\r?\n\r?\n/)) {
    if (block.trim() === '') continue;
    const ev = { event: null, data: [] };
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) ev.event = line.slice(6).trim();
      else if (line.startsWith('data:')) ev.data.push(line.slice(5).replace(/^ /, ''));
    }
    events.push({ event: ev.event, data: ev.data.join('\n') });
  }
  return events;
}

/**
 * A port on which nothing listens (bound, then released). Taken below the ephemeral range
 * (Linux: 32768-60999), where the listen(0) servers and outgoing sockets of the test files
 * running beside this one never land, so it stays dead while the test uses it.
 */
export async function deadPort() {
  for (let attempt = 1; ; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    const free = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
    if (attempt === 20) throw new Error('no free port in 20000-31999 after 20 tries');
  }
}

/** Polls `check` every 10 ms until it returns truthy or `ms` pass. */
export async function waitFor(check, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The proxy's GET /stats, parsed. */
export async function stats(proxy) {
  return JSON.parse((await request(`${proxy.url}/stats`)).body);
}

/** The proxy's GET /health, parsed (its status code aside). */
export async function health(proxy) {
  return JSON.parse((await request(`${proxy.url}/health`)).body);
}

/**
 * Polls /stats until `predicate(stats)` holds or `ms` pass; resolves the last stats seen,
 * so the caller asserts on what it waited for (a wait that timed out then fails there).
 */
export async function waitForStats(proxy, predicate, ms = 10_000) {
  let last;
  await waitFor(async () => predicate((last = await stats(proxy))), ms);
  return last;
}

/** Polls /health until the breaker reports `state` or `ms` pass; resolves the last state seen. */
export async function waitForBreaker(proxy, state, ms = 10_000) {
  let last;
  await waitFor(async () => (last = (await health(proxy)).circuit_breaker.state) === state, ms);
  return last;
}

/** The JSON lines of a log file in the proxy's LOG_DIR. */
export function logLines(logDir, name) {
  const p = join(logDir, name);
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Builds a multipart/form-data body: fields {name: string} and one file part. */
export function multipart(fields, file) {
  const boundary = '----oproxy' + Math.random().toString(16).slice(2);
  const parts = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${file.name}"\r\ncontent-type: application/octet-stream\r\n\r\n`));
  parts.push(file.data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** One request over h2c prior knowledge (to talk to the fake in h2c mode directly). */
export function h2request(url, { method = 'GET', headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const session = http2.connect(u.origin);
    session.on('error', reject);
    const stream = session.request({ ':method': method, ':path': u.pathname + u.search, ...headers });
    const chunks = [];
    let status = 0;
    let resHeaders = {};
    stream.on('response', (h) => {
      status = Number(h[':status']);
      resHeaders = h;
    });
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve({ status, headers: resHeaders, body: Buffer.concat(chunks), chunks, complete: true });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

/** request() or h2request() depending on the fake's mode: the direct reference for comparisons. */
export function direct(fake, path, payload) {
  const send = fake.h2c ? h2request : request;
  if (payload === undefined) return send(`${fake.url}${path}`);
  const body = Buffer.from(JSON.stringify(payload));
  return send(`${fake.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}
