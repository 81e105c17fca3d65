/**
 * /metrics over all workers, on the primary: each scrape sums the snapshots the workers
 * just sent (see metrics/snapshot.ts for how families add up) with the primary's own.
 *
 * Counters must never go down, or Prometheus reads a reset and `rate()` jumps. A worker
 * that dies takes its counts with it, so the primary keeps each worker's last counters and
 * histograms and, when the worker exits, folds them into a `retired` part that every later
 * scrape adds. A worker that does not answer in time is counted in
 * `openai_proxy_scrape_missing_workers`; its counters come from its last answer (stale,
 * never lower), its gauges are left out.
 *
 * A worker can exit in the middle of a round, and its exit reaches this sum (`exited`, once
 * it has exited and disconnected) apart from the round, in either order:
 * - it answered, and is retired before the round renders: its answer is ignored, since its
 *   retired counts are already in the sum (counted twice otherwise, then gone: a spike);
 * - it exited before answering: the round stops waiting for it, so it is neither an answer
 *   nor `missing`; every live worker that did not answer is shown from its last answer,
 *   whatever `missing` says, so its counts do not vanish from that one scrape.
 * Counts a worker made after its last rendered answer die with it. This holds as long as a
 * worker's answers render in the order it made them: the collector keeps one round open per
 * kind (scrape.ts).
 */
import type { FamilySnapshot, SnapshotPart } from '../metrics/snapshot.js';
import { mergeSnapshots } from '../metrics/snapshot.js';

/** Gauges whose sum over the workers means something; every other gauge gets a `worker` label. */
export const SUMMED_GAUGES: ReadonlySet<string> = new Set([
  'openai_proxy_in_flight_requests',
  'openai_proxy_queue_depth',
  'openai_proxy_upstream_in_flight',
  'openai_proxy_workers',
  'openai_proxy_scrape_missing_workers',
]);

export const RULES = { sourceLabel: 'worker', summedGauges: SUMMED_GAUGES };

const monotone = (families: readonly FamilySnapshot[]): FamilySnapshot[] => families.filter((f) => f.type !== 'gauge');

export class MetricsSum {
  /** Each live worker's counters and histograms at its last answer. */
  private readonly last = new Map<number, FamilySnapshot[]>();
  /** The counts of workers that are gone. */
  private retired: FamilySnapshot[] = [];
  /** Workers already in `retired`: a late answer from one is not added again (node:cluster never reuses an id). */
  private readonly retiredIds = new Set<number>();

  /**
   * One scrape's text.
   *
   * @param answers the snapshots of the workers that answered, by worker id.
   *   A worker that did not answer in time is shown from its last answer (see above).
   * @param own the primary's own families (its process, the worker count).
   */
  render(answers: ReadonlyMap<number, readonly FamilySnapshot[] | null>, own: readonly FamilySnapshot[]): string {
    const parts: SnapshotPart[] = [{ source: 'primary', families: own }];
    const fresh = new Set<number>();
    for (const [id, families] of answers) {
      // retired: already summed; not a list: a worker whose part could not be made (sent empty)
      if (this.retiredIds.has(id) || !Array.isArray(families)) continue;
      fresh.add(id);
      this.last.set(id, monotone(families));
      parts.push({ source: String(id), families });
    }
    for (const [id, stale] of this.last) if (!fresh.has(id)) parts.push({ source: String(id), families: stale });
    if (this.retired.length > 0) parts.push({ source: 'retired', families: this.retired });
    return mergeSnapshots(parts, RULES).render();
  }

  /** Worker `id` exited: its last counts stay in every later sum. */
  exited(id: number): void {
    this.retiredIds.add(id);
    const last = this.last.get(id);
    this.last.delete(id);
    if (last === undefined) return;
    this.retired = monotone(
      mergeSnapshots(
        [
          { source: 'retired', families: this.retired },
          { source: String(id), families: last },
        ],
        RULES,
      ).snapshot(),
    );
  }
}
