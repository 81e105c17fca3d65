/**
 * How long each client waited for a slot, for /stats ("is the fair queue fair?"): for each
 * client key seen recently, the admissions counted and the percentiles of its last
 * `samplesPerClient` waits. At most `maxClients` keys are held; a new key past that evicts
 * the least recently admitted one. Memory: maxClients × samplesPerClient numbers.
 */
import { LatencyWindow } from './latency-window.js';

export interface WaitSummary {
  /** Admissions recorded since the client entered the table. */
  readonly count: number;
  /** Percentiles and maximum over its last samplesPerClient waits, in ms (rounded to 0.1). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

interface Entry {
  count: number;
  readonly window: LatencyWindow;
}

export class ClientWaits {
  private readonly maxClients: number;
  private readonly samplesPerClient: number;
  /** Least recently admitted first: a key moves to the end on every record. */
  private readonly entries = new Map<string, Entry>();

  /**
   * @param maxClients most client keys held (default 100).
   * @param samplesPerClient waits kept per client for its percentiles (default 256).
   */
  constructor(maxClients = 100, samplesPerClient = 256) {
    if (!(Number.isInteger(maxClients) && maxClients > 0)) throw new RangeError(`maxClients must be a positive integer, got ${maxClients}`);
    if (!(Number.isInteger(samplesPerClient) && samplesPerClient > 0)) throw new RangeError(`samplesPerClient must be a positive integer, got ${samplesPerClient}`);
    this.maxClients = maxClients;
    this.samplesPerClient = samplesPerClient;
  }

  /** One admission of `key` after waiting `waitMs`. */
  record(key: string, waitMs: number): void {
    if (!Number.isFinite(waitMs)) return;
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= this.maxClients) this.entries.delete(this.entries.keys().next().value as string);
      entry = { count: 0, window: new LatencyWindow(this.samplesPerClient) };
    } else {
      this.entries.delete(key);
    }
    this.entries.set(key, entry);
    entry.count++;
    entry.window.record(waitMs);
  }

  /** Per client key, sorted by key; a plain JSON-ready object. */
  snapshot(): Record<string, WaitSummary> {
    const keys = [...this.entries.keys()].sort();
    return Object.fromEntries(
      keys.map((key) => {
        const { count, window } = this.entries.get(key)!;
        const p = window.percentiles();
        return [key, { count, p50Ms: p.p50 ?? 0, p99Ms: p.p99 ?? 0, maxMs: p.max ?? 0 }];
      }),
    );
  }
}
