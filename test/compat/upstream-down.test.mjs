// The upstream is down (nothing listens): how many requests each client sends to the proxy
// for one call, and how long it makes its caller wait, with its default retry settings and
// with retries turned off (maxRetries: 0), for the first caller (the breaker still closed:
// the proxy spends its own retries, then answers 503 with x-should-retry: false) and for a
// caller that comes while the breaker is open (503 with Retry-After until the probe).
//
// Counted at the proxy (/stats). The client runs in a child under timelapse.mjs: its long
// backoff timers run 50 times faster and are reported with their real length, so
// LangChain's six retries (63–126 s of backoff) take a few seconds here and the waits in
// the table are what a caller would really sit through. The proxy keeps real time: in real
// time one of those late retries would be the breaker's half-open probe (one more upstream
// attempt); the number of requests is the same.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadAdapters, startRig, record } from './harness.mjs';
import { json } from '../e2e/helpers.mjs';

const adapters = await loadAdapters();
const CHILD = fileURLToPath(new URL('./down-child.mjs', import.meta.url));
const TIMELAPSE = fileURLToPath(new URL('./timelapse.mjs', import.meta.url));

/**
 * Requests one call makes, as read in each client's source (docs/clients.md). A change
 * here after an upgrade is a finding: update docs/clients.md with it.
 */
const EXPECTED = {
  openai: { first: 1, open: 3 }, // obeys x-should-retry: false; waits out a Retry-After of ≤ 60 s
  'vercel-ai': { first: 3, open: 3 }, // retries any 5xx twice, reads no x-should-retry; waits out a Retry-After < 60 s
  langchain: { first: 7, open: 7 }, // six retries of any 5xx; reads Retry-After on 429 only
};

function runChild(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', TIMELAPSE, CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COMPAT_TIMELAPSE: '50' } });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`child exited ${code}: ${err}${out}`))));
  });
}

const totalAttempts = (s) => Object.values(s.upstream_attempts).reduce((n, v) => n + v, 0);

describe('the upstream is down', { concurrency: 4 }, () => {
  for (const a of adapters) {
    for (const setting of ['default', 'maxRetries: 0']) {
      for (const phase of ['first', 'open']) {
        test(`${a.label}, ${setting}, ${phase === 'first' ? 'first caller' : 'while the breaker is open'}`, async () => {
          // open phase: CIRCUIT_BREAKER_TIMEOUT=30 keeps Retry-After clearly under the clients'
          // 60 s cap (with the default 60 it is "60" only in the breaker's first second open,
          // which openai honours and Vercel does not: a race this suite must not measure)
          const rig = await startRig({ upstreamDown: true, env: phase === 'open' ? { CIRCUIT_BREAKER_TIMEOUT: '30' } : {} });
          try {
            if (phase === 'open') {
              // two plain requests spend the proxy's attempts (4 + 1) and open the breaker (threshold 5)
              for (let i = 0; i < 2; i++) await json(`${rig.proxy.url}/v1/chat/completions`, { model: 'fake-model', messages: [] }, { headers: { authorization: 'Bearer sk-opener' } });
              assert.equal((await rig.stats()).circuit_breaker.state, 'open');
            }
            const before = await rig.stats();
            const out = await runChild([a.name, rig.baseURL, `sk-down-${a.name}`, setting === 'default' ? 'default' : '0']);
            await rig.settled();
            const after = await rig.stats();
            const requests = after.requests.total - before.requests.total;
            const attempts = totalAttempts(after) - totalAttempts(before);
            assert.ok(out.error, 'the call fails');
            assert.equal(out.error.status, 503);
            assert.equal(out.calls.length, requests, 'every request the client sent reached the proxy');
            const first = out.calls[0];
            if (phase === 'first') assert.deepEqual([first.status, first.shouldRetry], [503, 'false']);
            else assert.deepEqual([first.status, first.shouldRetry, Number(first.retryAfter) > 0], [503, null, true]);
            const expected = setting === 'default' ? EXPECTED[a.name][phase] : 1;
            assert.equal(requests, expected, `${a.name} sent ${requests} requests for one call (expected ${expected}: update docs/clients.md if a client changed)`);
            const waitedS = out.waitsMs.reduce((n, ms) => n + ms, 0) / 1000;
            if (setting !== 'default') assert.equal(waitedS, 0, 'no backoff without retries');
            assert.equal(out.waitsMs.length, requests - 1, 'one backoff before each retry, nothing else counted as one');
            // openai and Vercel wait exactly what Retry-After says while the breaker is open
            if (setting === 'default' && phase === 'open' && a.name !== 'langchain') {
              assert.deepEqual(out.waitsMs, out.calls.slice(0, -1).map((x) => Number(x.retryAfter) * 1000), 'each wait is the Retry-After of the answer before it');
            }
            record({ scenario: 'upstream_down', client: a.name, setting, phase, requests, upstreamAttempts: attempts, waitedS, waits: out.waitsMs, statuses: out.calls.map((x) => x.status), error: out.error.name });
          } finally {
            await rig.close();
          }
        });
      }
    }
  }
});
