// A 429 from the proxy's own limiter (with Retry-After): with their default settings the
// clients back off by themselves and their retry waits at least Retry-After; with the
// setting that turns their retries off (maxRetries: 0), the 429 reaches the caller at once.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadAdapters, startRig, recorder, describeError, settle, record } from './harness.mjs';

const adapters = await loadAdapters();
const keyFor = (a, setting) => `sk-429-${a.name}-${setting}`;
let rig;
before(async () => {
  // one request per 2 s per client key: the second request at once gets 429, Retry-After: 2
  // (2 s rather than 1 leaves a slow machine room between the two calls)
  // the limiter keys on the client key's id (without keys, on the address, which all tests
  // share): each test gets a key of its own, hence a bucket of its own
  const keys = adapters.flatMap((a) => ['d', '0'].map((s) => `${a.name}-${s}=${keyFor(a, s)}`)).join(',');
  rig = await startRig({ env: { RATE_LIMIT_REQUESTS: '1', RATE_LIMIT_WINDOW: '2', PROXY_API_KEYS: keys } });
});
after(() => rig?.close());

describe('a 429 from the proxy limiter', { concurrency: true }, () => {
  for (const a of adapters) {
    for (const setting of ['default', 'maxRetries: 0']) {
      test(`${a.label}, ${setting}`, async () => {
        const rec = recorder();
        const c = a.make({ baseURL: rig.baseURL, apiKey: keyFor(a, setting === 'default' ? 'd' : '0'), fetch: rec.fetch, ...(setting === 'default' ? {} : { maxRetries: 0 }) });
        await a.chat(c, 'first');
        const [r, err] = await settle(() => a.chat(c, 'second'));
        const statuses = rec.calls.map((x) => x.status);
        const limited = rec.calls[1];
        assert.equal(limited.status, 429);
        const retryAfterS = Number(limited.headers['retry-after']);
        assert.ok(retryAfterS >= 1 && retryAfterS <= 2, `Retry-After: ${limited.headers['retry-after']}`);
        for (const call of rec.calls) assert.equal((await rig.line(call.headers['x-request-id']))?.status, call.status, 'the proxy logged each request the client sent');
        if (setting === 'default') {
          assert.equal(err, null, `the client retried the 429 by itself: ${JSON.stringify(describeError(err))}`);
          assert.equal(r.text, 'tok0 tok1 tok2 tok3 tok4 ');
          assert.deepEqual(statuses, [200, 429, 200]);
          const waitedMs = rec.calls[2].sentAt - limited.answeredAt;
          assert.ok(waitedMs >= retryAfterS * 1000 - 50, `the retry waited Retry-After (${retryAfterS} s): ${waitedMs.toFixed(0)} ms`);
          record({ scenario: 'rate_limited', client: a.name, setting, summary: `waits ${(waitedMs / 1000).toFixed(1)} s (Retry-After: ${retryAfterS}), retries, gets 200` });
        } else {
          assert.deepEqual(statuses, [200, 429]);
          const e = describeError(err);
          assert.equal(e.status, 429);
          record({ scenario: 'rate_limited', client: a.name, setting, summary: `throws ${e.errName && e.errName !== 'Error' ? e.errName : e.name} (429) at once` });
        }
      });
    }
  }
});
