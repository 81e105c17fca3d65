/**
 * Entry point: parse the config (exit 2 on any bad variable, one line each), build the
 * parts, listen, and drain on SIGTERM/SIGINT: stop accepting, answer /health with 503
 * `draining`, close idle keep-alive connections, tell busy ones `Connection: close`, let
 * in-flight requests finish until SHUTDOWN_TIMEOUT, then end the rest (503 `draining`, or a
 * stream's error event), flush logs, exit 0.
 * A second signal exits at once. SIGHUP reopens the log files (logrotate).
 *
 * WORKERS > 1: this process becomes the primary of a node:cluster (cluster/primary.ts) and
 * each worker runs `serve` below with its cluster side: logs through the primary, /metrics
 * and /stats summed by it, drain and reload on its word. WORKERS = 1 never loads the cluster.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { systemClock } from './clock.js';
import { SHUTDOWN } from './cancel.js';
import { ConfigError, helpText, parseConfig, type Config } from './config.js';
import { JsonlFile } from './logging/jsonl-file.js';
import { Logger, stdoutSink } from './logging/logger.js';
import { RequestLog } from './logging/request-log.js';
import { ProxyHandler } from './proxy/handler.js';
import { BatchingPrimaryLink } from './cluster/batching-link.js';
import { sharedLimitsFor } from './cluster/shared-limits.js';
import { RetryBudget } from './resilience/retry-budget.js';
import { createProxyServer } from './server.js';
import { createAdminServer, statsReport } from './own-endpoints.js';
import { KeyRing, KeysFileError } from './security/key-ring.js';
import { ProxyStats } from './stats.js';
import { Registry } from './metrics/registry.js';
import { ProxyMetrics } from './metrics/proxy-metrics.js';
import { registerProcessMetrics } from './metrics/process-metrics.js';
import { Telemetry } from './observe/telemetry.js';
import { buildFleet } from './fleet.js';
import type { UpstreamSet } from './upstream/upstream-set.js';
import { parseUpstreamsFile, upstreamSpecs, UpstreamsConfigError, type UpstreamSpec } from './upstream/upstreams-config.js';
import { workerCount } from './cluster/cpus.js';
import type { WorkerSide } from './cluster/worker.js';
import type { LineFile } from './logging/request-log.js';

/** After SHUTDOWN_TIMEOUT, how long the ended requests get to write their last answer. */
const SHUTDOWN_GRACE_MS = 500;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function main(): void {
  const version = packageVersion();
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  if (process.argv.includes('--version')) {
    process.stdout.write(version + '\n');
    return;
  }
  let config: Config;
  try {
    config = parseConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(err.problems.join('\n') + '\n');
    process.exit(2);
  }
  let keyRing: KeyRing;
  let specs: UpstreamSpec[];
  try {
    keyRing = new KeyRing(config.proxyApiKeys, config.proxyApiKeysFile);
    specs = upstreamSpecs(config);
  } catch (err) {
    const lines = err instanceof UpstreamsConfigError || err instanceof KeysFileError ? err.problems : [`config error: ${(err as Error).message}`];
    process.stderr.write(lines.join('\n') + '\n');
    process.exit(2);
  }
  const workers = workerCount(config.workers);
  if (workers === 1) {
    serve(config, version, keyRing, specs, null);
    return;
  }
  void import('./cluster/start.js').then(({ startCluster }) => startCluster(config, workers, version, (side) => serve(config, version, keyRing, specs, side)));
}

/** The proxy itself: one process, or one worker of a cluster (`side`). */
function serve(config: Config, version: string, keyRing: KeyRing, specs: UpstreamSpec[], side: WorkerSide | null): void {
  const clock = systemClock;
  const rotation = { maxBytes: config.logMaxBytes, maxFiles: config.logMaxFiles };
  // a worker's lines go to the primary, the one writer of both files (and of stdout)
  const appFile: LineFile = side?.logs.file('proxy') ?? new JsonlFile(join(config.logDir, 'proxy.log'), { ...rotation, onError: (err) => process.stderr.write(`cannot write ${join(config.logDir, 'proxy.log')}: ${err.message}\n`) });
  const logger = new Logger(config.logLevel, config.logStdout && side === null ? [stdoutSink, appFile] : [appFile], Date.now, side === null ? {} : { worker: side.id });
  const requestFile = (): LineFile => side?.logs.file('requests') ?? new JsonlFile(join(config.logDir, 'requests.log'), { ...rotation, onError: (err) => logger.error('cannot write the request log', { err }) });
  const requestLog = config.requestLogEnabled ? new RequestLog(requestFile(), Date.now, side?.id ?? null) : null;
  // a single process keeps its limits and gate here; a worker asks the primary's, which all
  // workers share (limits hold across workers, never multiplied by their number), its calls
  // of one event-loop turn in one IPC message
  // (the number of workers sizes a client's request leases: limits-protocol.ts)
  const shared = sharedLimitsFor(config, side === null ? null : new BatchingPrimaryLink(side.link), clock, { workers: workerCount(config.workers) });
  if (side !== null) process.once('disconnect', shared.linkLost);
  const gate = shared.gate;
  const requestLogDropped = (): number => requestLog?.dropped ?? 0;
  const registry = new Registry();
  let upstreams: UpstreamSet | null = null;
  const upstreamGauges = function* (): Generator<{ name: string; inFlight: number; up: boolean }> {
    const now = clock.now();
    for (const u of upstreams?.all ?? []) yield { name: u.name, inFlight: u.inFlight, up: u.routable(now) };
  };
  const proxyMetrics = config.metricsEnabled ? new ProxyMetrics(registry, {}, { queueDepth: () => gate?.queued ?? 0, requestLogDropped, upstreams: upstreamGauges }) : null;
  const processMetrics = config.metricsEnabled ? registerProcessMetrics(registry) : null;
  const telemetry = new Telemetry(new ProxyStats(), proxyMetrics, requestLog);
  const fleet = buildFleet(specs, config, clock, telemetry, logger);
  upstreams = fleet.upstreams;
  const handler = new ProxyHandler({
    config,
    upstreams,
    clock,
    logger,
    telemetry,
    gate,
    limits: shared.limits,
    budget: new RetryBudget({ ratio: config.retryBudgetRatio }),
    apiKeys: () => keyRing.current(),
  });

  let draining = false;
  const base = { config, version, telemetry, upstreams, gate, lifetimes: handler.lifetimes, limits: handler.limits, requestLogDropped, logger, clock, metrics: proxyMetrics === null ? null : () => registry.render(), isDraining: () => draining };
  // a worker's requests let through without the primary's limits (it was silent or gone)
  const failedOpen = side !== null && proxyMetrics !== null ? registry.counter('openai_proxy_limits_failed_open_total', 'Requests admitted without the shared client limits because the primary did not answer within 1 s (WORKERS > 1).') : null;
  const workerSnapshot = (): ReturnType<Registry['snapshot']> => {
    if (failedOpen !== null && shared.failedOpen() > failedOpen.get()) failedOpen.inc(shared.failedOpen() - failedOpen.get());
    return registry.snapshot();
  };
  const own = side === null ? base : { ...base, summed: side.summed(clock, { metrics: workerSnapshot, stats: () => ({ report: statsReport(base), samples: { latency: telemetry.stats.durationMs.values(), ttfb: telemetry.stats.ttfbMs.values() } }) }) };
  const server = createProxyServer({ ...own, handler });
  const admin = config.adminPort > 0 ? createAdminServer(own) : null;
  admin?.on('error', (err) => {
    process.stderr.write(`cannot listen on 127.0.0.1:${config.adminPort} (ADMIN_PORT): ${err.message}\n`);
    process.exit(1);
  });
  admin?.listen(config.adminPort, '127.0.0.1', () => logger.info('admin endpoints listening', { host: '127.0.0.1', port: config.adminPort }));
  server.on('error', (err) => {
    logger.error('cannot listen', { err, host: config.host, port: config.port });
    process.stderr.write(`cannot listen on ${config.host}:${config.port}: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(config.port, config.host, () => {
    const addr = server.address() as AddressInfo;
    logger.info('listening', { host: addr.address, port: addr.port, upstreams: upstreams!.all.map((u) => `${u.name}=${u.url.href}`), balance: upstreams!.several ? config.balance : undefined, protocol: config.upstreamHttp2 ? 'h2' : 'http/1.1', version, client_keys: keyRing.current()?.size ?? 'off' });
    if (keyRing.current() === null) logger.info('no PROXY_API_KEYS: every client that reaches this port is served');
  });

  const closeLogs = async (): Promise<void> => {
    processMetrics?.close();
    await requestLog?.close();
    await appFile.close();
  };
  /**
   * `bySignal` false: the primary's drain message. It may come before or after the same
   * signal sent to the whole process group (Ctrl-C, supervisord's stopasgroup), so only a
   * second signal exits at once, never a signal and the message.
   */
  let signals = 0;
  const shutdown = (signal: string, bySignal = true): void => {
    if (bySignal) signals++;
    if (draining && signals < 2) return;
    if (draining) {
      logger.warn('second signal: exiting now', { signal, in_flight: telemetry.stats.inFlight });
      process.exit(1);
    }
    draining = true;
    const started = clock.now();
    logger.info('draining', { signal, in_flight: telemetry.stats.inFlight, timeout_s: config.shutdownTimeoutMs / 1000 });
    server.close();
    admin?.close();
    server.closeIdleConnections();
    const finish = (left: number): void => {
      clearInterval(poll);
      if (left > 0) logger.warn('closing the connections of requests that did not end', { left });
      server.closeAllConnections();
      admin?.closeAllConnections();
      void fleet
        .close()
        .catch(() => {})
        .then(() => {
          logger.info('stopped', { drained_ms: Math.round(clock.now() - started) });
          return closeLogs();
        })
        .finally(() => process.exit(0));
    };
    // at SHUTDOWN_TIMEOUT every request still alive is ended like a client that left or a
    // deadline, in whatever phase: one not yet answering gets 503 `draining`, a stream its
    // error event; they get a moment to write that and their record before connections close
    let endedAt: number | null = null;
    const poll = setInterval(() => {
      server.closeIdleConnections();
      if (telemetry.stats.inFlight === 0) finish(0);
      else if (endedAt === null && clock.now() - started >= config.shutdownTimeoutMs) {
        endedAt = clock.now();
        logger.warn('shutdown timeout: ending the requests still in flight', { in_flight: handler.lifetimes.endAll(SHUTDOWN) });
      } else if (endedAt !== null && clock.now() - endedAt >= SHUTDOWN_GRACE_MS) finish(telemetry.stats.inFlight);
    }, 25);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  side?.onControl('drain', () => shutdown('drain', false));
  const reload = (): void => {
    void appFile.reopen();
    void requestLog?.reopen();
    if (side === null) logger.info('log files reopened');
    if (config.proxyApiKeysFile !== null) {
      try {
        logger.info('client keys reloaded', { keys: keyRing.reload() });
      } catch (err) {
        logger.error('client keys file could not be reloaded; the previous keys stay in force', { problems: err instanceof KeysFileError ? err.problems : [(err as Error).message] });
      }
    }
    if (config.upstreamsFile !== null) {
      try {
        const r = fleet.reload(parseUpstreamsFile(config.upstreamsFile, readFileSync(config.upstreamsFile, 'utf8')));
        logger.info('upstreams reloaded', { added: r.added, removed: r.removed, kept: r.kept });
      } catch (err) {
        const problems = err instanceof UpstreamsConfigError ? err.problems : [(err as Error).message];
        logger.error('upstreams file could not be reloaded; the previous upstreams stay in force', { problems });
      }
    }
  };
  process.on('SIGHUP', reload);
  side?.onControl('reload', reload);
}

main();
