/**
 * What main builds for the client limits and the concurrency gate, by process role:
 * - a single process (WORKERS=1, `link` null): LocalLimits and a ConcurrencyGate, here;
 * - a worker (`link` to the primary): RemoteLimits and a RemoteGate, whose state is in the
 *   primary, where `new LimitsHost(workersLink, config, clock)` answers them.
 * Either way the handler gets a LimitStore and a Gate (null when MAX_CONCURRENT_REQUESTS is 0),
 * and the close of the link is passed on with `linkLost` (RemoteLimits fails open from then,
 * RemoteGate closed).
 */
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { ConcurrencyGate } from '../resilience/concurrency-gate.js';
import type { Gate } from '../resilience/gate.js';
import type { LimitStore } from '../resilience/limit-store.js';
import { LocalLimits } from '../resilience/local-limits.js';
import type { PrimaryLink } from './link.js';
import { RemoteGate } from './remote-gate.js';
import { RemoteLimits, type RemoteLimitsOptions } from './remote-limits.js';

export interface SharedLimits {
  readonly limits: LimitStore;
  readonly gate: Gate | null;
  /** The link to the primary is gone (a worker's IPC channel closed); nothing for a single process. */
  linkLost(): void;
  /** Requests let through without the shared limits (the primary silent past the timeout, or gone); 0 for a single process. */
  failedOpen(): number;
}

export function sharedLimitsFor(config: Pick<Config, 'maxConcurrentRequests' | 'queueSize' | 'queueTimeoutMs' | 'queueOrder'>, link: PrimaryLink | null, clock: Clock, options: RemoteLimitsOptions = {}): SharedLimits {
  if (link === null) {
    const gate = config.maxConcurrentRequests > 0 ? new ConcurrencyGate({ maxConcurrent: config.maxConcurrentRequests, queueSize: config.queueSize, queueTimeoutMs: config.queueTimeoutMs, order: config.queueOrder, clock }) : null;
    return { limits: new LocalLimits(clock), gate, linkLost: () => {}, failedOpen: () => 0 };
  }
  const limits = new RemoteLimits(link, clock, options);
  const gate = config.maxConcurrentRequests > 0 ? new RemoteGate(link, clock, { queueTimeoutMs: config.queueTimeoutMs }) : null;
  return {
    limits,
    gate,
    linkLost: () => {
      limits.close();
      gate?.close();
    },
    failedOpen: () => limits.failedOpen,
  };
}
