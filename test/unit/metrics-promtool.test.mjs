// Our scrape, checked by Prometheus' own parser and linter: `promtool check metrics`
// exits 1 on a parse error and 3 on a lint problem (missing HELP, counter without
// `_total`, non-base units, ...), so exit 0 means Prometheus reads every line and finds
// nothing to complain about. promtool comes with the Debian package `prometheus`; without
// it the test says so and skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Registry } from '../../dist/metrics/registry.js';
import { ProxyMetrics } from '../../dist/metrics/proxy-metrics.js';
import { registerProcessMetrics } from '../../dist/metrics/process-metrics.js';

/** A registry with every proxy and process metric populated, label values chosen to break naive output. */
function populatedScrape() {
  const registry = new Registry();
  const metrics = new ProxyMetrics(registry, { maxModels: 3 });
  const proc = registerProcessMetrics(registry, { startTimeSec: 1700000000.25 });
  try {
    const endpoints = ['/v1/chat/completions', '/v1/files/{id}', 'weird "quoted" \\ path\nwith newline'];
    const methods = ['GET', 'POST', 'DELETE', 'BREW'];
    const statuses = [200, 400, 429, 499, 502, 503, 504];
    let i = 0;
    for (const endpoint of endpoints) {
      for (const method of methods) {
        for (const status of statuses) {
          i++;
          metrics.requestFinished(method, endpoint, status, (i % 40) * 0.37, i % 3 === 0 ? null : (i % 11) * 0.09);
        }
      }
    }
    metrics.requestFinished('POST', '/v1/completions', 200, 900, 400); // beyond the last bounds
    for (const outcome of ['ok', 'connect_error', 'timeout', 'reset', 'http_5xx']) metrics.attempt('gpu-a', outcome);
    metrics.attempt('[::1]:8000', 'ok');
    for (const reason of ['connect_error', 'timeout', 'http_5xx', 'reason "with" \\ and\nnewline']) metrics.retry(reason);
    metrics.rateLimited('tokens');
    metrics.clientTokens('alice', 10, 20);
    metrics.inFlightInc();
    metrics.breakerState('gpu-a', 'half_open');
    for (const model of ['llama-3.1-70b', 'Qwen/Qwen2.5 "instruct"', 'modèle\\ünicode ✓', 'fourth-over-cap', null]) {
      metrics.tokens(model, 123, 456);
    }
    return registry.render();
  } finally {
    proc.close();
  }
}

test('the scrape has unique series and every line is a comment or a sample', () => {
  const text = populatedScrape();
  const seen = new Set();
  for (const line of text.split('\n').slice(0, -1)) {
    if (line.startsWith('# ')) continue;
    // name, optional {labels} (quotes escaped inside), one space, a value Go's ParseFloat reads
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})?) (\S+)$/.exec(line);
    assert.ok(m, `malformed sample line: ${JSON.stringify(line)}`);
    assert.ok(/^(?:[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?)|\+Inf|-Inf|NaN)$/.test(m[2]), `bad value in ${line}`);
    assert.ok(!seen.has(m[1]), `duplicate series ${m[1]}`);
    seen.add(m[1]);
  }
});

test('promtool check metrics accepts the scrape without a lint warning', (t) => {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.skip('promtool not installed (Debian package prometheus)');
    return;
  }
  const text = populatedScrape();
  const res = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  const said = `${res.stdout}${res.stderr}`.trim();
  if (said !== '') t.diagnostic(`promtool said: ${said}`);
  assert.equal(res.error, undefined);
  assert.equal(res.status, 0, `promtool exit ${res.status}: ${said}`);
});
