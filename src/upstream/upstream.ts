/**
 * One upstream LLM server as the proxy sees it: where it is (target), how to reach it (its
 * own transport and connection pool), whether to send it anything (its own circuit
 * breaker, its last active health probe, its `max_concurrent`), how busy it is (requests in
 * flight), and what it serves (the configured `models`, else what discovery found). The
 * balancer, the health checker and model discovery only read or flip this state; the
 * breaker sits below this seam: an attempt reports its verdict to the upstream that answered.
 *
 * Routable = not retiring (removed by a reload), its last probe passed, its breaker would let
 * a request through now (closed, or half-open with the probe slot free), and under
 * `max_concurrent`. Nothing here does I/O.
 */
import type { CircuitBreaker } from '../resilience/circuit-breaker.js';
import { upstreamTarget, type UpstreamTarget } from './target.js';
import type { Transport } from './transport.js';
import type { UpstreamSpec } from './upstreams-config.js';

/** How /health shows an upstream: `up` = routable. */
export type UpstreamState = 'up' | 'down' | 'breaker_open' | 'full';

/** Most model ids kept from one upstream's discovery: a listing cannot grow our memory. */
export const MAX_DISCOVERED_MODELS = 1000;

export class Upstream {
  readonly name: string;
  readonly url: URL;
  readonly target: UpstreamTarget;
  weight: number;
  maxConcurrent: number;
  /** The `models` the config gives it; null = whatever discovery finds (or every model). */
  models: ReadonlySet<string> | null;
  /** Requests (attempts, and the answers they are relaying) on it now. */
  inFlight = 0;
  /** Its last active health probe passed (true until one fails; always true without probes). */
  healthy = true;
  /** What its last health probe said, for /health. */
  lastProbe: { readonly status: number | null; readonly error: string | null } | null = null;
  /** What `GET /v1/models` on it returned last; null before any answer. */
  discovered: ReadonlySet<string> | null = null;
  /** Removed by a reload: it finishes what it carries and takes nothing new. */
  retiring = false;

  constructor(
    spec: UpstreamSpec,
    readonly transport: Transport,
    readonly breaker: CircuitBreaker | null,
  ) {
    this.name = spec.name;
    this.url = spec.url;
    this.target = upstreamTarget(spec.url);
    this.weight = spec.weight;
    this.maxConcurrent = spec.maxConcurrent;
    this.models = spec.models === null ? null : new Set(spec.models);
  }

  /** A reload kept it (same name and URL): the rest of its spec may have changed. */
  update(spec: UpstreamSpec): void {
    this.weight = spec.weight;
    this.maxConcurrent = spec.maxConcurrent;
    this.models = spec.models === null ? null : new Set(spec.models);
  }

  /** The models it is known to serve: configured, else discovered; null when unknown. */
  get served(): ReadonlySet<string> | null {
    return this.models ?? this.discovered;
  }

  state(now: number): UpstreamState {
    if (!this.healthy) return 'down';
    // open, or half-open with its one probe already out
    if (this.breaker !== null && this.breaker.waitMs(now) > 0) return 'breaker_open';
    if (this.maxConcurrent > 0 && this.inFlight >= this.maxConcurrent) return 'full';
    return 'up';
  }

  routable(now: number): boolean {
    return !this.retiring && this.state(now) === 'up';
  }

  /**
   * How long until it could take a request again, for a `Retry-After`: the breaker's own
   * wait, the health-check interval for one that is down, a second for one that is full.
   */
  waitMs(now: number, healthIntervalMs: number): number {
    switch (this.state(now)) {
      case 'up':
        return 0;
      case 'breaker_open':
        return this.breaker!.waitMs(now);
      case 'down':
        return healthIntervalMs > 0 ? healthIntervalMs : 1000;
      case 'full':
        return 1000;
    }
  }
}
