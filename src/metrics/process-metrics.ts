/**
 * Process and Node.js runtime metrics under the names prom-client's
 * `collectDefaultMetrics()` uses (Prometheus "standard exports"), so dashboards built for
 * prom-client work unchanged. Every value is read at scrape time through an `onCollect`
 * hook: nothing polls between scrapes except the event-loop delay monitor, which is a
 * libuv timer inside Node that does not keep the process alive.
 */

import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Registry } from './registry.js';

/** Milliseconds between event-loop delay samples: coarse enough to cost nothing. */
const EVENT_LOOP_RESOLUTION_MS = 20;

export interface ProcessMetricsOptions {
  /** Process start as Unix time in seconds; default: `performance.timeOrigin`, the process start. */
  startTimeSec?: number;
}

export interface ProcessMetrics {
  /** Stops the event-loop delay monitor and the scrape-time reads; idempotent. */
  close(): void;
}

export function registerProcessMetrics(registry: Registry, opts: ProcessMetricsOptions = {}): ProcessMetrics {
  const cpu = registry.counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.');
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.');
  const start = registry.gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.');
  const lag = registry.gauge(
    'nodejs_eventloop_lag_seconds',
    'Mean event loop delay beyond the sampling interval since the previous scrape, in seconds.',
  );
  const heapUsed = registry.gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.');

  start.set(opts.startTimeSec ?? performance.timeOrigin / 1000);

  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();

  // process.cpuUsage() is cumulative since the process started, while a counter only
  // accepts increments: add the growth since the last scrape.
  let cpuSecondsSeen = 0;

  const collect = (): void => {
    const usage = process.cpuUsage();
    const cpuSeconds = (usage.user + usage.system) / 1e6;
    if (cpuSeconds > cpuSecondsSeen) {
      cpu.inc(cpuSeconds - cpuSecondsSeen);
      cpuSecondsSeen = cpuSeconds;
    }

    // One memoryUsage() call gives both values; it walks the heap spaces, which is fine
    // once per scrape but not per request.
    const mem = process.memoryUsage();
    rss.set(mem.rss);
    heapUsed.set(mem.heapUsed);

    lag.set(meanLagSeconds(delay.count, delay.mean));
    delay.reset();
  };
  const removeHook = registry.onCollect(collect);

  return {
    close() {
      removeHook();
      delay.disable();
    },
  };
}

/**
 * The monitor records the time between its timer's firings, so an idle loop reports the
 * sampling interval itself (about 20 ms). Subtracting the interval leaves the delay the
 * loop actually added, which is what "lag" means; with no sample yet (mean is NaN) it is 0.
 *
 * @param count samples since the last reset.
 * @param meanNs their mean, in nanoseconds.
 */
export function meanLagSeconds(count: number, meanNs: number): number {
  if (count === 0 || !Number.isFinite(meanNs)) return 0;
  return Math.max(0, meanNs / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1000;
}
