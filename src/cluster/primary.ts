/**
 * The primary of WORKERS > 1, the thin node:cluster shell around the Supervisor: it forks,
 * tells the supervisor what happened to each worker, forwards SIGTERM/SIGINT (as a drain
 * message) and SIGHUP (reload, and it reopens its own files), writes the one requests.log
 * and proxy.log from the workers' lines, and answers the summed /metrics and /stats.
 *
 * Scheduling: round-robin (node's default outside Windows, set here explicitly unless
 * NODE_CLUSTER_SCHED_POLICY says otherwise): the primary accepts each connection and hands
 * it to the next worker. With the OS left to choose (SCHED_NONE), Linux wakes the same
 * few processes for most accepts, and clients that keep their connections alive for hours
 * (SDKs) would stay unevenly spread for good; one handle per new connection is a small
 * price next to a request that lasts seconds.
 *
 * A worker counts as gone once it has both exited and closed its IPC channel: its last log
 * lines are read before the primary decides anything, so no line is lost at shutdown.
 */
import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import { systemClock } from '../clock.js';
import type { Config } from '../config.js';
import { JsonlFile } from '../logging/jsonl-file.js';
import { Logger, stdoutSink } from '../logging/logger.js';
import { registerProcessMetrics } from '../metrics/process-metrics.js';
import { Registry } from '../metrics/registry.js';
import type { FamilySnapshot } from '../metrics/snapshot.js';
import { BatchingWorkersLink } from './batching-link.js';
import { workersLinkOverCluster } from './ipc-link.js';
import { LimitsHost } from './limits-host.js';
import { writeWorkerLogs } from './log-writer.js';
import { MetricsSum } from './metrics-sum.js';
import { ScrapeCollector } from './scrape.js';
import { sumStats, type StatsPart } from './stats-sum.js';
import { Supervisor } from './supervisor.js';
import { CONTROL_CHANNEL, SCRAPE_TIMEOUT_MS } from './worker.js';

/** After a worker's exit, how long its channel may take to close before it counts as gone anyway. */
const EXIT_GRACE_MS = 500;

/** Beyond SHUTDOWN_TIMEOUT, what a worker gets to end its last requests and exit before it is killed. */
const DRAIN_MARGIN_MS = 5000;

export function runPrimary(config: Config, workers: number, version: string): void {
  if (process.env['NODE_CLUSTER_SCHED_POLICY'] === undefined) cluster.schedulingPolicy = cluster.SCHED_RR;
  const clock = systemClock;
  const rotation = { maxBytes: config.logMaxBytes, maxFiles: config.logMaxFiles };
  const appFile = new JsonlFile(join(config.logDir, 'proxy.log'), { ...rotation, onError: (err) => process.stderr.write(`cannot write ${join(config.logDir, 'proxy.log')}: ${err.message}\n`) });
  const proxySinks = config.logStdout ? [stdoutSink, appFile] : [appFile];
  const logger = new Logger(config.logLevel, proxySinks);
  const requestsFile = config.requestLogEnabled ? new JsonlFile(join(config.logDir, 'requests.log'), { ...rotation, onError: (err) => logger.error('cannot write the request log', { err }) }) : null;

  const link = workersLinkOverCluster(cluster);
  writeWorkerLogs(link, { requests: requestsFile, proxy: proxySinks });
  // the one table of client limits and the one concurrency gate that every worker asks
  const limitsHost = new LimitsHost(new BatchingWorkersLink(link), config, clock, undefined, {
    onError: (err, worker) => logger.error('a shared-limits call could not be answered (the worker fails open)', { err, worker }),
  });

  const listening = new Set<number>();
  const sup: Supervisor = new Supervisor({
    workers,
    clock,
    drainTimeoutMs: config.shutdownTimeoutMs + DRAIN_MARGIN_MS,
    effects: {
      fork: () => {
        const w = cluster.fork();
        watchErrors(w);
        return w.id;
      },
      drain: (id) => link.sendTo(id, { ch: CONTROL_CHANNEL, cmd: 'drain' }),
      kill: (id) => cluster.workers?.[id]?.process.kill('SIGKILL'),
      exit: (code) => {
        clearInterval(keepAlive);
        void Promise.all([requestsFile?.close(), appFile.close()]).finally(() => process.exit(code));
      },
      log: (level, msg, fields) => logger.log(level, msg, fields),
    },
  });

  // own metrics: the primary's process, and the workers
  const registry = new Registry();
  const processMetrics = config.metricsEnabled ? registerProcessMetrics(registry) : null;
  registry.gauge('openai_proxy_workers', 'Worker processes alive (WORKERS).', [], (g) => g.set(sup.alive().length));
  const restarts = registry.counter('openai_proxy_worker_restarts_total', 'Workers replaced after they exited unasked (crash, kill).');
  const missingGauge = registry.gauge('openai_proxy_scrape_missing_workers', 'Workers that did not answer this scrape in time: their gauges are left out, their counters are from their previous answer.');
  const dropped = registry.counter('openai_proxy_request_log_dropped_total', 'Request-log lines lost because the disk could not keep up.');
  const ownSnapshot = (missing: number): FamilySnapshot[] => {
    const lost = (requestsFile?.dropped ?? 0) - dropped.get();
    if (lost > 0) dropped.inc(lost);
    if (sup.restarts > restarts.get()) restarts.inc(sup.restarts - restarts.get());
    missingGauge.set(missing);
    return registry.snapshot();
  };
  const metricsSum = new MetricsSum();
  new ScrapeCollector(link, clock, SCRAPE_TIMEOUT_MS, () => sup.alive().filter((id) => listening.has(id)), {
    metrics: (parts, missing) => {
      if (missing.length > 0) logger.warn('workers did not answer the metrics scrape in time', { workers: missing });
      return metricsSum.render(parts as ReadonlyMap<number, FamilySnapshot[]>, ownSnapshot(missing.length));
    },
    stats: (parts, missing) => {
      const answered = [...parts.keys()].sort((a, b) => a - b);
      const report = sumStats(parts as ReadonlyMap<number, StatsPart>, { alive: sup.alive().length, answered, missing, restarts: sup.restarts });
      // the limits and the queue live here, not in the workers: their figures are the primary's
      const hostGate = limitsHost.gate;
      const queue = { ...(report['queue'] as Record<string, unknown> | undefined), depth: hostGate?.queued ?? 0, slots_in_use: hostGate?.inFlight ?? 0 };
      const clientLimits = { clients_tracked: limitsHost.limits.size, tokens_reserved: limitsHost.limits.outstanding() };
      return { ...report, queue, client_limits: clientLimits, request_log: { enabled: config.requestLogEnabled, dropped_lines: ((report['request_log'] as { dropped_lines?: number } | undefined)?.dropped_lines ?? 0) + (requestsFile?.dropped ?? 0) } };
    },
  });

  // a worker is gone when it exited and its channel closed (its last messages are read)
  const ended = new Map<number, { exit?: { code: number | null; signal: string | null }; disconnected?: boolean }>();
  const goneIfBoth = (w: Worker): void => {
    const e = ended.get(w.id);
    if (e?.exit === undefined || e.disconnected !== true) return;
    ended.delete(w.id);
    listening.delete(w.id);
    metricsSum.exited(w.id);
    sup.exited(w.id, e.exit.code, e.exit.signal);
  };
  cluster.on('exit', (w, code, signal) => {
    ended.set(w.id, { ...ended.get(w.id), exit: { code, signal } });
    goneIfBoth(w);
    // A worker killed while messages to it were in flight may never get its 'disconnect' (the
    // write fails first: measured under load, SIGKILL every 0.5 s, 1 disconnect for 5 exits);
    // waiting for it forever would leave its slot empty for good. Its last lines were in the
    // pipe before it died: a moment is enough to read them
    if (ended.has(w.id)) {
      clock.timer(EXIT_GRACE_MS, () => {
        const e = ended.get(w.id);
        if (e === undefined) return;
        e.disconnected = true;
        goneIfBoth(w);
      });
    }
  });
  cluster.on('disconnect', (w) => {
    ended.set(w.id, { ...ended.get(w.id), disconnected: true });
    goneIfBoth(w);
  });
  cluster.on('listening', (w) => {
    listening.add(w.id);
    sup.listening(w.id);
  });
  cluster.on('online', (w) => logger.info('worker started', { worker: w.id, pid: w.process.pid }));
  // an unheard 'error' on a worker would crash the primary, and the whole service with it;
  // heard from its fork on (a spawn error comes a tick later, before cluster's 'fork' event)
  const watchErrors = (w: Worker): void => {
    w.on('error', (err: Error) => {
      if (w.process.pid !== undefined) {
        logger.warn('worker IPC error', { worker: w.id, err: err.message }); // its exit, if it is dying, follows
        return;
      }
      // it could not be spawned (EAGAIN, EMFILE, ENOENT): no exit event comes, it is gone now
      logger.error('could not start a worker', { worker: w.id, err: err.message });
      ended.delete(w.id);
      listening.delete(w.id);
      sup.exited(w.id, 1, null);
    });
  };

  process.on('SIGTERM', () => sup.stopSignal('SIGTERM'));
  process.on('SIGINT', () => sup.stopSignal('SIGINT'));
  process.on('SIGHUP', () => {
    void appFile.reopen();
    void requestsFile?.reopen();
    logger.info('log files reopened');
    for (const id of sup.alive()) link.sendTo(id, { ch: CONTROL_CHANNEL, cmd: 'reload' });
  });
  process.on('exit', () => processMetrics?.close());

  logger.info('starting workers', { workers, version, pid: process.pid, scheduling: cluster.schedulingPolicy === cluster.SCHED_RR ? 'round-robin' : 'os' });
  // The primary's own life: its timers are the injected clock's (unref'd), and a moment with
  // no worker alive (all crashed, replacements waiting out their backoff) leaves it no other
  // handle, so Node would end it, exit code 0, and the service with it. Held until exit.
  const keepAlive = setInterval(() => {}, 1 << 30);
  sup.start();
}
