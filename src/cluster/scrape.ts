/**
 * One scrape of /metrics or /stats summed over all workers, whichever worker takes it
 * (channel 'scrape'):
 *
 *   worker W → primary  { ch: 'scrape', op: 'ask', ask, kind }
 *   primary → each      { ch: 'scrape', op: 'collect', round, kind }
 *   each → primary      { ch: 'scrape', op: 'part', round, data }
 *   primary → W         { ch: 'scrape', op: 'answer', ask, data }   (or `error`)
 *
 * The primary waits for every worker that listens (and not for one that exits meanwhile)
 * until `timeoutMs` on its clock; a worker that does not answer by then is left out and
 * named in `missing`, and the merge decides what to say about it. W waits for the answer a
 * little longer than that, then gives up (its caller answers 503).
 *
 * Coalescing: one round per kind is open at a time. An ask of a kind whose round is open
 * joins it and gets the same answer, merged once: a fan-out to every worker and a merge on
 * the primary (milliseconds of the primary's CPU with a few workers) per round, not per
 * scrape, so scrapes that arrive together cost one. The joiner sees the counts as of that
 * round's collects, sent at most `timeoutMs` before (in practice a few ms). There is no
 * cache of a finished round: an ask after a round has answered starts a new one, so a
 * client that made a request and then scrapes sees it counted. One round per kind also
 * means a worker's parts are merged in the order it made them (MetricsSum relies on it).
 */
import type { Clock } from '../clock.js';
import type { PrimaryLink, WorkersLink } from './link.js';

export const SCRAPE_CHANNEL = 'scrape';

/** Merges the parts of one round into the answer: `missing` did not answer in time. */
export type MergeParts = (parts: ReadonlyMap<number, unknown>, missing: readonly number[]) => unknown;

interface Round {
  /** Who asked (the first, and those who joined): each gets the answer. */
  readonly askers: { readonly from: number; readonly ask: number }[];
  readonly kind: string;
  readonly waiting: Set<number>;
  readonly parts: Map<number, unknown>;
  readonly cancel: () => void;
}

/** The primary's side: collects a part from each worker and answers those that asked. */
export class ScrapeCollector {
  private nextRound = 1;
  private readonly rounds = new Map<number, Round>();
  /** The open round of each kind. */
  private readonly openByKind = new Map<string, number>();
  /**
   * Workers whose exit came: `targets` may still name one until it has also disconnected,
   * and a round would wait its whole timeout for it. node:cluster never reuses an id.
   */
  private readonly exited = new Set<number>();

  constructor(
    private readonly link: WorkersLink,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** The workers to ask: those listening now. */
    private readonly targets: () => readonly number[],
    private readonly kinds: Readonly<Record<string, MergeParts>>,
  ) {
    link.on(SCRAPE_CHANNEL, (from, msg) => {
      if (msg['op'] === 'ask' && typeof msg['ask'] === 'number' && typeof msg['kind'] === 'string') this.start(from, msg['ask'], msg['kind']);
      else if (msg['op'] === 'part' && typeof msg['round'] === 'number') this.part(from, msg['round'], msg['data']);
    });
    link.onExit((id) => {
      this.exited.add(id);
      for (const [n, r] of this.rounds) if (r.waiting.delete(id)) this.doneIfComplete(n, r);
    });
  }

  /** Rounds not yet answered. */
  get open(): number {
    return this.rounds.size;
  }

  private start(from: number, ask: number, kind: string): void {
    if (!(kind in this.kinds)) {
      this.link.sendTo(from, { ch: SCRAPE_CHANNEL, op: 'answer', ask, error: `unknown kind ${kind}` });
      return;
    }
    const open = this.openByKind.get(kind);
    const joined = open === undefined ? undefined : this.rounds.get(open);
    if (open !== undefined && joined !== undefined) {
      joined.askers.push({ from, ask });
      if (!joined.waiting.has(from) && !joined.parts.has(from) && !this.exited.has(from)) this.collect(open, joined, from);
      return;
    }
    const n = this.nextRound++;
    const waiting = new Set<number>();
    const round: Round = { askers: [{ from, ask }], kind, waiting, parts: new Map(), cancel: this.clock.timer(this.timeoutMs, () => this.finish(n)) };
    this.rounds.set(n, round);
    this.openByKind.set(kind, n);
    // the asker can answer, even if its listening event is not in yet
    for (const id of new Set([...this.targets(), from])) if (!this.exited.has(id)) this.collect(n, round, id);
  }

  private collect(n: number, r: Round, id: number): void {
    r.waiting.add(id);
    this.link.sendTo(id, { ch: SCRAPE_CHANNEL, op: 'collect', round: n, kind: r.kind });
  }

  private part(from: number, n: number, data: unknown): void {
    const r = this.rounds.get(n);
    if (r === undefined || !r.waiting.delete(from)) return; // late, or not asked
    r.parts.set(from, data);
    this.doneIfComplete(n, r);
  }

  private doneIfComplete(n: number, r: Round): void {
    if (r.waiting.size === 0) this.finish(n);
  }

  private finish(n: number): void {
    const r = this.rounds.get(n);
    if (r === undefined) return;
    this.rounds.delete(n);
    if (this.openByKind.get(r.kind) === n) this.openByKind.delete(r.kind);
    r.cancel();
    let answer: Record<string, unknown>;
    try {
      answer = { data: this.kinds[r.kind]!(r.parts, [...r.waiting].sort((a, b) => a - b)) };
    } catch (err) {
      answer = { error: (err as Error).message };
    }
    for (const { from, ask } of r.askers) this.link.sendTo(from, { ch: SCRAPE_CHANNEL, op: 'answer', ask, ...answer });
  }
}

export class ScrapeError extends Error {
  override readonly name = 'ScrapeError';
}

/** A worker's side: answers the primary's collects, and asks for a summed scrape. */
export class ScrapeClient {
  private nextAsk = 1;
  private readonly asks = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cancel: () => void }>();

  constructor(
    private readonly link: PrimaryLink,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** This worker's part of each kind. */
    local: Readonly<Record<string, () => unknown>>,
  ) {
    link.on(SCRAPE_CHANNEL, (msg) => {
      if (msg['op'] === 'collect' && typeof msg['round'] === 'number') {
        const make = local[String(msg['kind'])];
        let data: unknown = null;
        try {
          data = make === undefined ? null : make();
        } catch {
          // a part that cannot be made is sent empty: the round still completes
        }
        link.send({ ch: SCRAPE_CHANNEL, op: 'part', round: msg['round'], data });
      } else if (msg['op'] === 'answer' && typeof msg['ask'] === 'number') {
        const a = this.asks.get(msg['ask']);
        if (a === undefined) return;
        this.asks.delete(msg['ask']);
        a.cancel();
        if (typeof msg['error'] === 'string') a.reject(new ScrapeError(msg['error']));
        else a.resolve(msg['data']);
      }
    });
  }

  /** The summed scrape of `kind`; rejects with ScrapeError when the primary does not answer in time. */
  ask(kind: string): Promise<unknown> {
    const ask = this.nextAsk++;
    return new Promise((resolve, reject) => {
      const cancel = this.clock.timer(this.timeoutMs, () => {
        this.asks.delete(ask);
        reject(new ScrapeError(`the primary did not answer the ${kind} scrape within ${this.timeoutMs} ms`));
      });
      this.asks.set(ask, { resolve, reject, cancel });
      this.link.send({ ch: SCRAPE_CHANNEL, op: 'ask', ask, kind });
    });
  }
}
