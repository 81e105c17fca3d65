/**
 * Active health checks: every HEALTH_CHECK_INTERVAL, a `GET HEALTH_CHECK_PATH` on each
 * upstream's origin (never a completion: a probe must not spend GPU time). A 2xx keeps or
 * brings it into rotation; anything else (llama.cpp's 503 while it loads a model, vLLM's
 * 503 when its engine died, no answer within the probe timeout) takes it out until a probe
 * passes. Passive health is each upstream's own breaker; this only flips `healthy`. The
 * upstreams are read afresh at each round, so a reload needs nothing here. Timers run on the
 * injected clock.
 */
import { every, type Clock } from '../clock.js';
import type { Logger } from '../logging/logger.js';
import { getFromUpstream } from './upstream-get.js';
import type { Upstream } from './upstream.js';

export interface HealthCheckOptions {
  readonly intervalMs: number;
  readonly path: string;
  readonly http2: boolean;
}

/** A probe gets at most this long, and never longer than the interval. */
const MAX_PROBE_MS = 5000;

export class HealthChecker {
  private stopRounds: (() => void) | null = null;

  constructor(
    private readonly upstreams: () => readonly Upstream[],
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly opts: HealthCheckOptions,
  ) {}

  /** Probes every upstream now, then every interval. */
  start(): void {
    this.stopRounds = every(this.clock, this.opts.intervalMs, () => {
      for (const u of this.upstreams()) void this.probe(u);
    });
  }

  stop(): void {
    this.stopRounds?.();
    this.stopRounds = null;
  }

  /** One probe of one upstream; resolves when its verdict is in. */
  async probe(u: Upstream): Promise<void> {
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = (await getFromUpstream(u, this.opts.path, { clock: this.clock, timeoutMs: Math.min(MAX_PROBE_MS, this.opts.intervalMs), maxBytes: 1024, http2: this.opts.http2 })).status;
    } catch (err) {
      error = (err as Error).message;
    }
    const healthy = status !== null && status >= 200 && status < 300;
    u.lastProbe = { status, error };
    if (healthy !== u.healthy && !u.retiring) {
      if (healthy) this.logger.info('upstream back in rotation: its health check passed', { upstream: u.name, status });
      else this.logger.warn('upstream out of rotation: its health check failed', { upstream: u.name, status, error });
    }
    u.healthy = healthy;
  }
}
