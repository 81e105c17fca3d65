// Shared by the compatibility suite: the client libraries from the scratch install, the
// real compiled proxy in front of the real fake upstream (127.0.0.1 only), a fetch that
// records what each client put on the wire and refuses anything but loopback, what reached
// the proxy (/stats and requests.log), and the measurements the run prints as a table.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { startProxy, request, logLines, waitFor, deadPort } from '../e2e/helpers.mjs';
import { compatDir } from './install.mjs';

export { waitFor };
export const COMPAT_DIR = compatDir();

/** The client libraries (COMPAT_DIR/clients.mjs, a copy of entry.mjs). */
export async function loadClients() {
  guardLoopback();
  try {
    return await import(pathToFileURL(join(COMPAT_DIR, 'clients.mjs')).href);
  } catch (err) {
    throw new Error(`the client libraries are not installed in ${COMPAT_DIR}: run \`npm run test:compat\` (it installs them first)`, { cause: err });
  }
}

/** Whatever a library fetches on its own (token tables, telemetry) stays on 127.0.0.1 too. */
function guardLoopback() {
  const real = globalThis.fetch;
  if (/** @type {any} */ (real).loopbackOnly) return;
  const guarded = (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url);
    if (url.hostname !== '127.0.0.1') return Promise.reject(new Error(`compat suite: a fetch of ${url.origin} was refused; only 127.0.0.1 is allowed`));
    return real(input, init);
  };
  guarded.loopbackOnly = true;
  globalThis.fetch = guarded;
}

/** Every client adapter, in table order. */
export async function loadAdapters() {
  const libs = await loadClients();
  const mods = await Promise.all(['./openai.mjs', './vercel-ai.mjs', './langchain.mjs'].map((m) => import(m)));
  return mods.map((m) => m.adapter(libs));
}

/**
 * A fetch for a client: passes the call to the global fetch, refuses any host but
 * 127.0.0.1, and records each call (method, path, parsed JSON body, status, the headers
 * that steer retries, when it was sent and answered).
 */
export function recorder() {
  /** @type {Array<{method: string, path: string, body: any, sentAt: number, status: number|null, answeredAt: number|null, headers: Record<string, string|null>, error: string|null}>} */
  const calls = [];
  /** @type {typeof fetch} */
  const recordingFetch = async (input, init) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? String(input) : input.url);
    if (url.hostname !== '127.0.0.1') throw new Error(`compat suite: a client tried to reach ${url.origin}; only 127.0.0.1 is allowed`);
    let body = null;
    if (typeof init?.body === 'string') {
      try {
        body = JSON.parse(init.body);
      } catch {
        body = init.body;
      }
    }
    const call = { method: init?.method ?? 'GET', path: url.pathname, body, sentAt: performance.now(), status: null, answeredAt: null, headers: {}, error: null };
    calls.push(call);
    try {
      const res = await fetch(input, init);
      call.status = res.status;
      call.answeredAt = performance.now();
      for (const h of ['x-request-id', 'x-should-retry', 'retry-after', 'retry-after-ms', 'content-type']) call.headers[h] = res.headers.get(h);
      return res;
    } catch (err) {
      call.error = String(/** @type {Error} */ (err)?.message ?? err);
      throw err;
    }
  };
  return { fetch: recordingFetch, calls };
}

/** Env for every proxy of the suite: short waits, real defaults for what a scenario measures. */
export const PROXY_ENV = { TIMEOUT: '2', CONNECT_TIMEOUT: '1', RETRY_DELAY: '0.01', RETRY_MAX_DELAY: '0.05', SHUTDOWN_TIMEOUT: '1' };

/**
 * The proxy in front of the fake upstream (or of a dead port: `upstreamDown`).
 * @param {{env?: Record<string,string>, upstreamDown?: boolean, fake?: object}} [opts]
 */
export async function startRig({ env = {}, upstreamDown = false, fake: fakeOpts = {} } = {}) {
  const fake = upstreamDown ? null : await startFakeUpstream({ chunks: 5, chunkDelayMs: 2, ...fakeOpts });
  const upstream = fake ? fake.url : `http://127.0.0.1:${await deadPort()}`;
  const proxy = await startProxy({ ...PROXY_ENV, UPSTREAM_URL: upstream, ...env });
  return {
    fake,
    proxy,
    baseURL: `${proxy.url}/v1`,
    /** /stats of the proxy. */
    async stats() {
      return JSON.parse((await request(`${proxy.url}/stats`)).body.toString());
    },
    /** The requests.log line of the request the proxy answered with this x-request-id. */
    async line(requestId) {
      const find = () => logLines(proxy.logDir, 'requests.log').find((l) => l.request_id === requestId);
      return waitFor(find, 2000);
    },
    /** requests.log lines once every request that reached the proxy has ended and been logged. */
    async settled() {
      await waitFor(async () => (await this.stats()).in_flight === 0, 5000);
      const total = (await this.stats()).requests.total;
      await waitFor(() => logLines(proxy.logDir, 'requests.log').length >= total, 2000);
      return logLines(proxy.logDir, 'requests.log');
    },
    async close() {
      await proxy.stop();
      await fake?.close();
    },
  };
}

/** What the client threw, in a few words for the table and the assertions. */
export function describeError(err) {
  if (err == null) return null;
  const e = /** @type {any} */ (err);
  return {
    name: e.constructor?.name ?? e.name,
    errName: e.name,
    status: e.status ?? e.statusCode ?? e.lastError?.statusCode ?? e.cause?.status ?? null,
    code: e.code ?? e.error?.code ?? e.data?.code ?? null,
    message: String(e.message ?? e).split('\n')[0].slice(0, 200),
    causeMessage: e.cause ? String(e.cause.message ?? e.cause).slice(0, 120) : null,
  };
}

/** Runs `fn` and returns [result, null] or [null, error]. */
export async function settle(fn) {
  try {
    return [await fn(), null];
  } catch (err) {
    return [null, err];
  }
}

/**
 * One measurement for the table printed at the end of the run (run.mjs reads the files).
 * @param {{scenario: string, client: string, setting?: string} & Record<string, unknown>} m
 */
export function record(m) {
  const dir = process.env.COMPAT_RESULTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify(m)}\n`);
}
