// parseConfig: defaults, units, and every bad value reported with its name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseConfig, ConfigError, VARIABLES, helpText } from '../../dist/config.js';

test('the defaults are INTERFACE.md\'s, with a loopback upstream', () => {
  const c = parseConfig({});
  assert.equal(c.upstreamUrl.href, 'http://127.0.0.1:8001/');
  assert.equal(c.host, '0.0.0.0');
  assert.equal(c.port, 8000);
  assert.equal(c.timeoutMs, 300_000);
  assert.equal(c.connectTimeoutMs, 30_000);
  assert.equal(c.maxRetries, 3);
  assert.equal(c.retryDelayMs, 1000);
  assert.equal(c.rateLimitEnabled, true);
  assert.equal(c.rateLimitRequests, 100);
  assert.equal(c.rateLimitWindowSec, 60);
  assert.equal(c.breakerThreshold, 5);
  assert.equal(c.breakerOpenMs, 60_000);
  assert.equal(c.logLevel, 'INFO');
  assert.equal(c.shutdownTimeoutMs, 30_000);
  assert.equal(c.logDir, 'logs');
  assert.equal(c.upstreamHttp2, false);
  assert.equal(c.maxReplayBodyBytes, 16 * 1024 * 1024);
  assert.ok(Object.isFrozen(c));
});

test('fractions of seconds, units on sizes, words for booleans and levels', () => {
  const c = parseConfig({ TIMEOUT: '0.5', MAX_REQUEST_BODY: '2MiB', MAX_REPLAY_BODY: '512k', UPSTREAM_HTTP2: 'YES', RATE_LIMIT_ENABLED: 'off', LOG_LEVEL: 'warn', UPSTREAM_URL: 'https://llm.internal:8443/openai/' });
  assert.equal(c.timeoutMs, 500);
  assert.equal(c.maxRequestBodyBytes, 2 * 1024 * 1024);
  assert.equal(c.maxReplayBodyBytes, 512 * 1024);
  assert.equal(c.upstreamHttp2, true);
  assert.equal(c.rateLimitEnabled, false);
  assert.equal(c.logLevel, 'WARNING');
  assert.equal(c.upstreamUrl.pathname, '/openai/');
});

test('each bad value is named with its value and what is accepted, all at once', () => {
  const bad = { TIMEOUT: '0', PORT: '65536', MAX_RETRIES: '1.5', RETRY_DELAY: '-1', UPSTREAM_URL: 'http://user:pw@llm.internal', MAX_REQUEST_BODY: '10 parsecs', RETRY_BUDGET: '2', HOST: ' ', LOG_LEVEL: 'TRACE', METRICS_ENABLED: '' };
  try {
    parseConfig(bad);
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, Object.keys(bad).length);
    for (const [name, value] of Object.entries(bad)) assert.ok(err.problems.some((p) => p.startsWith(`config error: ${name}=${JSON.stringify(value)} is not accepted; expected `)), name);
  }
});

test('the README configuration table lists every variable with the same default', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const v of VARIABLES) {
    const def = v.def === '' ? '\\(unset\\)' : `\`${v.def.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\``;
    assert.match(readme, new RegExp(`^\\| \`${v.name}\` \\| ${def} \\|`, 'm'), v.name);
  }
  assert.match(helpText(), /UPSTREAM_URL/);
});
