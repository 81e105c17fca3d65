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

test('several upstreams: defaults, and each new variable parsed', () => {
  const d = parseConfig({});
  assert.deepEqual(d.upstreamUrls.map((u) => u.href), ['http://127.0.0.1:8001/']);
  assert.equal(d.upstreamUrl, d.upstreamUrls[0]);
  assert.ok(Object.isFrozen(d.upstreamUrls));
  assert.equal(d.upstreamsFile, null);
  assert.equal(d.balance, 'least-requests');
  assert.equal(d.affinityLoadFactor, 1.25);
  assert.equal(d.healthCheckIntervalMs, 10_000);
  assert.equal(d.healthCheckPath, '/health');
  assert.equal(d.modelDiscoveryIntervalMs, 30_000);

  const c = parseConfig({ UPSTREAMS_FILE: ' /etc/llm.json ', BALANCE: ' Round-Robin', AFFINITY_LOAD_FACTOR: '1.5', HEALTH_CHECK_INTERVAL: '0', HEALTH_CHECK_PATH: '/v1/models', MODEL_DISCOVERY_INTERVAL: '0.5' });
  assert.equal(c.upstreamsFile, '/etc/llm.json');
  assert.equal(c.balance, 'round-robin');
  assert.equal(c.affinityLoadFactor, 1.5);
  assert.equal(c.healthCheckIntervalMs, 0);
  assert.equal(c.healthCheckPath, '/v1/models');
  assert.equal(c.modelDiscoveryIntervalMs, 500);
  assert.equal(parseConfig({ BALANCE: 'affinity', MODEL_DISCOVERY_INTERVAL: '0' }).modelDiscoveryIntervalMs, 0);
  assert.equal(parseConfig({ UPSTREAMS_FILE: '' }).upstreamsFile, null);
});

test('UPSTREAM_URL takes a comma-separated list; upstreamUrl stays the first', () => {
  const c = parseConfig({ UPSTREAM_URL: 'http://127.0.0.1:8000 , https://gpu-b.internal/openai,http://[::1]:8001' });
  assert.deepEqual(c.upstreamUrls.map((u) => u.href), ['http://127.0.0.1:8000/', 'https://gpu-b.internal/openai', 'http://[::1]:8001/']);
  assert.equal(c.upstreamUrl.href, 'http://127.0.0.1:8000/');
});

test('a bad element or a duplicate host:port in the list is one line naming that element', () => {
  const value = 'http://a:1,ftp://b,http://a:1/other,,http://c,https://c:443';
  assert.throws(() => parseConfig({ UPSTREAM_URL: value, TIMEOUT: '0' }), (err) => {
    assert.ok(err instanceof ConfigError);
    const shown = `config error: UPSTREAM_URL=${JSON.stringify(value)}`;
    assert.deepEqual(err.problems.filter((p) => p.startsWith('config error: UPSTREAM_URL=')), [
      `${shown}: element 2 "ftp://b" is not accepted; expected an http:// or https:// URL without credentials, query or fragment`,
      `${shown}: element 3 "http://a:1/other" has the name a:1 (host:port) of element 1; each upstream of the list needs its own host:port (UPSTREAMS_FILE can name them)`,
      `${shown}: element 4 "" is not accepted; expected an http:// or https:// URL without credentials, query or fragment`,
    ]);
    assert.ok(err.problems.some((p) => p.startsWith('config error: TIMEOUT="0"')), 'the other variables are still checked');
    return true;
  });
  assert.throws(() => parseConfig({ UPSTREAM_URL: 'http://a:1,http://A:1' }), /element 2 "http:\/\/A:1" has the name a:1 \(host:port\) of element 1/);
  assert.throws(() => parseConfig({ UPSTREAM_URL: 'http://a:1,http://b"c:1' }), /element 2 "http:\/\/b\\"c:1": its name "b\\"c:1" \(host:port of its url\) has characters outside/);
  // distinct default ports are distinct names
  assert.equal(parseConfig({ UPSTREAM_URL: 'http://c,https://c' }).upstreamUrls.length, 2);
  // a single URL is taken as it always was, whatever its host looks like
  assert.equal(parseConfig({ UPSTREAM_URL: `http://${'a'.repeat(70)}.internal:8000` }).upstreamUrls.length, 1);
});

test('bad values of the new variables are named like any other', () => {
  const bad = { BALANCE: 'sticky', AFFINITY_LOAD_FACTOR: '1', HEALTH_CHECK_INTERVAL: '-1', HEALTH_CHECK_PATH: 'health', MODEL_DISCOVERY_INTERVAL: 'often' };
  assert.throws(() => parseConfig(bad), (err) => {
    assert.equal(err.problems.length, Object.keys(bad).length);
    for (const [name, value] of Object.entries(bad)) assert.ok(err.problems.some((p) => p.startsWith(`config error: ${name}=${JSON.stringify(value)} is not accepted; expected `)), name);
    return true;
  });
  for (const path of ['//evil.example/health', '/he alth', '/health#x', '', '/x\u0000']) assert.throws(() => parseConfig({ HEALTH_CHECK_PATH: path }), /HEALTH_CHECK_PATH=/, JSON.stringify(path));
  for (const f of ['0.9', 'x', '', 'Infinity']) assert.throws(() => parseConfig({ AFFINITY_LOAD_FACTOR: f }), /AFFINITY_LOAD_FACTOR=/, f);
  assert.equal(parseConfig({ HEALTH_CHECK_PATH: '/ready?full=1' }).healthCheckPath, '/ready?full=1');
});

test('the README configuration table lists every variable with the same default', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const v of VARIABLES) {
    const def = v.def === '' ? '\\(unset\\)' : `\`${v.def.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\``;
    assert.match(readme, new RegExp(`^\\| \`${v.name}\` \\| ${def} \\|`, 'm'), v.name);
  }
  assert.match(helpText(), /UPSTREAM_URL/);
});

test('per-client limits: TOKEN_LIMIT_TPM, MAX_TOKENS_ESTIMATE and QUEUE_ORDER, defaults and values', () => {
  const d = parseConfig({});
  assert.equal(d.tokenLimitTpm, 0);
  assert.equal(d.maxTokensEstimate, 1024);
  assert.equal(d.queueOrder, 'fair');
  const c = parseConfig({ TOKEN_LIMIT_TPM: '100000', MAX_TOKENS_ESTIMATE: ' 256 ', QUEUE_ORDER: 'FIFO' });
  assert.equal(c.tokenLimitTpm, 100_000);
  assert.equal(c.maxTokensEstimate, 256);
  assert.equal(c.queueOrder, 'fifo');
  assert.equal(parseConfig({ QUEUE_ORDER: ' fair' }).queueOrder, 'fair');
  const bad = { TOKEN_LIMIT_TPM: '-1', MAX_TOKENS_ESTIMATE: '0', QUEUE_ORDER: 'lifo' };
  assert.throws(() => parseConfig(bad), (err) => {
    assert.deepEqual(err.problems, [
      'config error: TOKEN_LIMIT_TPM="-1" is not accepted; expected an integer >= 0 (0 = off)',
      'config error: MAX_TOKENS_ESTIMATE="0" is not accepted; expected an integer >= 1',
      'config error: QUEUE_ORDER="lifo" is not accepted; expected fair or fifo',
    ]);
    return true;
  });
  for (const v of ['1.5', 'lots', '', '1e5']) assert.throws(() => parseConfig({ TOKEN_LIMIT_TPM: v }), /TOKEN_LIMIT_TPM=/, v);
  for (const v of ['0.5', '-2', '']) assert.throws(() => parseConfig({ MAX_TOKENS_ESTIMATE: v }), /MAX_TOKENS_ESTIMATE=/, v);
  for (const name of ['TOKEN_LIMIT_TPM', 'MAX_TOKENS_ESTIMATE', 'QUEUE_ORDER']) assert.match(helpText(), new RegExp(`^  ${name} `, 'm'));
});

test('PROXY_API_KEYS may carry limits; a bad entry is one line each, the value still hidden', () => {
  const c = parseConfig({ PROXY_API_KEYS: 'alice=sk-alice-0123456789 rpm=60 weight=2,bob=sk-bob-9876543210' });
  assert.equal(c.proxyApiKeys.match('sk-alice-0123456789'), 'alice');
  assert.deepEqual(c.proxyApiKeys.limits('alice'), { rpm: 60, tpm: null, maxParallel: null, weight: 2 });
  assert.throws(() => parseConfig({ PROXY_API_KEYS: 'alice=sk-alice-0123456789 rpm=0, sk-SECRET-4444 SECRETtail, tiny', TIMEOUT: '0' }), (err) => {
    assert.deepEqual(err.problems.filter((p) => p.includes('PROXY_API_KEYS')), [
      'config error: PROXY_API_KEYS=(value hidden): entry 1 (alice): rpm must be an integer >= 1, got "0" (leave rpm out for RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW)',
      'config error: PROXY_API_KEYS=(value hidden): entry 2 (key-2): word 1 after the key is not name=value: limits are rpm, tpm, max_parallel, weight, and a key has no spaces (the word is not shown: it could be part of a key)',
      'config error: PROXY_API_KEYS=(value hidden): entry 3 (key-3): the key must be at least 8 characters (not shown)',
    ]);
    assert.ok(err.problems.some((p) => p.startsWith('config error: TIMEOUT=')));
    assert.ok(!err.message.includes('SECRET') && !err.message.includes('tiny') && !err.message.includes('0123456789'));
    return true;
  });
});
