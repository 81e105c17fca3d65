/**
 * The upstreams as main builds them: one Upstream per spec (its own transport and pool,
 * its own breaker whose transitions are logged and exported), the UpstreamSet with the
 * BALANCE policy, and, while there are several, the active health checks and model
 * discovery. With one upstream both stay idle: there is nowhere else to route, and a
 * passive breaker is what it always had. `reload` takes a new list (SIGHUP).
 */
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { Logger } from './logging/logger.js';
import type { Telemetry } from './observe/telemetry.js';
import { CircuitBreaker } from './resilience/circuit-breaker.js';
import { createBalancer } from './upstream/balancer.js';
import { HealthChecker } from './upstream/health-checker.js';
import { Http1Transport } from './upstream/http1-transport.js';
import { Http2Transport } from './upstream/http2-transport.js';
import { ModelDiscovery } from './upstream/model-discovery.js';
import type { Transport } from './upstream/transport.js';
import { Upstream } from './upstream/upstream.js';
import { UpstreamSet, type ReloadResult } from './upstream/upstream-set.js';
import type { UpstreamSpec } from './upstream/upstreams-config.js';

export interface Fleet {
  readonly upstreams: UpstreamSet;
  reload(specs: readonly UpstreamSpec[]): ReloadResult;
  /** Stops the probes and closes every connection (shutdown). */
  close(): Promise<void>;
}

function makeTransport(config: Config, url: URL, clock: Clock): Transport {
  const common = { origin: url, connectTimeoutMs: config.connectTimeoutMs, clock };
  return config.upstreamHttp2 ? new Http2Transport({ ...common, maxSessions: config.poolSize }) : new Http1Transport({ ...common, poolSize: config.poolSize });
}

export function buildFleet(specs: readonly UpstreamSpec[], config: Config, clock: Clock, telemetry: Telemetry, logger: Logger, random: () => number = Math.random): Fleet {
  const make = (spec: UpstreamSpec): Upstream => {
    const breaker = config.breakerEnabled
      ? new CircuitBreaker({
          threshold: config.breakerThreshold,
          openMs: config.breakerOpenMs,
          onTransition: (from, to) => {
            telemetry.breakerState(spec.name, to);
            logger.warn('circuit breaker state changed', { upstream: spec.name, from, to });
          },
        })
      : null;
    telemetry.upstreamAdded(spec.name);
    telemetry.breakerState(spec.name, 'closed'); // a new upstream under a kept name starts afresh
    return new Upstream(spec, makeTransport(config, spec.url, clock), breaker);
  };
  const upstreams: UpstreamSet = new UpstreamSet(specs, make, createBalancer(config.balance, { random, loadFactor: config.affinityLoadFactor }), (u) => {
    // a name kept with a new URL is a new upstream under the same name: its series stay
    if (upstreams.find(u.name) === undefined) telemetry.upstreamRemoved(u.name);
    logger.info('removed upstream finished what it carried; its connections are closed', { upstream: u.name, url: u.url.href });
  });
  // with one upstream there is nowhere else to route: no probes, and it is never marked down
  const several = (): readonly Upstream[] => (upstreams.several ? upstreams.all : []);
  const health = config.healthCheckIntervalMs > 0 ? new HealthChecker(several, clock, logger, { intervalMs: config.healthCheckIntervalMs, path: config.healthCheckPath, http2: config.upstreamHttp2 }) : null;
  const discovery =
    config.modelDiscoveryIntervalMs > 0
      ? new ModelDiscovery(several, clock, logger, { intervalMs: config.modelDiscoveryIntervalMs, http2: config.upstreamHttp2, headers: config.upstreamApiKey === null ? {} : { authorization: `Bearer ${config.upstreamApiKey}` } })
      : null;
  health?.start();
  discovery?.start();
  return {
    upstreams,
    reload(next) {
      const result = upstreams.replace(next);
      if (!upstreams.several) for (const u of upstreams.all) u.healthy = true;
      // the new ones are probed and listed now rather than at the next round
      for (const name of result.added) {
        const u = upstreams.find(name)!;
        if (upstreams.several) {
          void health?.probe(u);
          if (u.models === null) void discovery?.discover(u);
        }
      }
      return result;
    },
    async close() {
      health?.stop();
      discovery?.stop();
      await upstreams.close();
    },
  };
}
