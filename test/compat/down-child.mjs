// One client call against a proxy whose upstream is down, in its own process under
// timelapse.mjs (see there). Prints one JSON line: what the client threw, what it saw on
// the wire, and the long waits it made (real length). Args: client name, base URL, api key,
// maxRetries ('default' or a number).
import { loadAdapters, recorder, describeError, settle } from './harness.mjs';

const [name, baseURL, apiKey, retries] = process.argv.slice(2);
const a = (await loadAdapters()).find((x) => x.name === name);
if (!a) throw new Error(`unknown client ${name}`);
const rec = recorder();
const c = a.make({ baseURL, apiKey, fetch: rec.fetch, ...(retries === 'default' ? {} : { maxRetries: Number(retries) }) });
const [result, err] = await settle(() => a.chat(c, 'hello'));
process.stdout.write(
  `${JSON.stringify({
    result,
    error: describeError(err),
    calls: rec.calls.map((x) => ({ status: x.status, shouldRetry: x.headers['x-should-retry'] ?? null, retryAfter: x.headers['retry-after'] ?? null })),
    waitsMs: globalThis.__compatWaits ?? [],
  })}\n`,
);
