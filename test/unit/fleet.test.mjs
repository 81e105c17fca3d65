// The fleet as main builds it: one breaker per upstream whose transitions reach the metrics
// under its name, and reloads that add and remove series with the upstreams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFleet } from '../../dist/fleet.js';
import { parseConfig } from '../../dist/config.js';
import { Telemetry } from '../../dist/observe/telemetry.js';
import { ProxyStats } from '../../dist/stats.js';
import { ProxyMetrics } from '../../dist/metrics/proxy-metrics.js';
import { Registry } from '../../dist/metrics/registry.js';
import { Logger } from '../../dist/logging/logger.js';
import { FakeClock } from './orchestration-fakes.mjs';

const spec = (name, host = name) => ({ name, url: new URL(`http://${host}.internal:8000`), weight: 1, models: null, maxConcurrent: 0 });
const series = (registry, name) => registry.render().split('\n').filter((l) => l.startsWith('openai_proxy_circuit_breaker_state{') && l.includes(`upstream="${name}"`));

test('each upstream has its own breaker, exported under its name; a reload adds and removes series, and a name kept with a new URL keeps them', async () => {
  const registry = new Registry();
  const telemetry = new Telemetry(new ProxyStats(), new ProxyMetrics(registry), null);
  const lines = [];
  const logger = new Logger('INFO', [{ writeLine: (l) => lines.push(JSON.parse(l)) }]);
  const config = parseConfig({ HEALTH_CHECK_INTERVAL: '0', MODEL_DISCOVERY_INTERVAL: '0', CIRCUIT_BREAKER_THRESHOLD: '1' });
  const fleet = buildFleet([spec('a'), spec('b')], config, new FakeClock(), telemetry, logger, () => 0.5);
  fleet.upstreams.find('a').breaker.recordFailure(0, false);
  assert.ok(series(registry, 'a').includes('openai_proxy_circuit_breaker_state{upstream="a",state="open"} 1'));
  assert.ok(series(registry, 'b').includes('openai_proxy_circuit_breaker_state{upstream="b",state="closed"} 1'));
  assert.ok(lines.some((l) => l.msg === 'circuit breaker state changed' && l.upstream === 'a' && l.to === 'open'));
  const r = fleet.reload([spec('a', 'a-moved'), spec('c')]);
  assert.deepEqual(r, { added: ['a', 'c'], removed: ['a', 'b'], kept: [] });
  assert.equal(series(registry, 'b').length, 0, 'b is gone with its series');
  assert.equal(series(registry, 'a').length, 3, 'a (now elsewhere) keeps its series');
  assert.ok(series(registry, 'a').includes('openai_proxy_circuit_breaker_state{upstream="a",state="closed"} 1'), 'with the state of its new breaker');
  assert.equal(series(registry, 'c').length, 3);
  await fleet.close();
});
