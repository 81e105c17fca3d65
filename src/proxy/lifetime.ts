/**
 * One request's life, from the moment it arrives to its record, on the injected clock. It
 * owns what every phase must agree on:
 *
 *   - the cancellation: a client that leaves, TIMEOUT passing and shutdown all end the
 *     request through `end()`, whatever it is doing; the first reason wins, and the body
 *     reader, the concurrency queue, the retry loop, the transport, the error-body hold and
 *     the relay all hear it from the one Cancel;
 *   - the TIMEOUT deadline: first for the answer to begin (all attempts and backoffs
 *     together), then, once the answer streams, for the silence between two chunks;
 *   - the phase it is in, for /stats and for tests that act "while it is backing off";
 *   - the upstream answer in hand, aborted when the request ends without relaying it to
 *     its end, so nothing (an exception included) leaves an upstream request running.
 *
 * The handler turns `endedBy` into the one answer and record of an early end; nobody else
 * decides what a client that left or a deadline means.
 */
import type { ServerResponse } from 'node:http';
import { Cancel, CLIENT_GONE, DEADLINE, Ended, type EndReason } from '../cancel.js';
import { IdleTimer, type Clock } from '../clock.js';

export type Phase = 'admission' | 'reading_body' | 'queued' | 'attempt' | 'backoff' | 'holding_error' | 'relaying' | 'tunnel' | 'done';

export const PHASES: readonly Phase[] = ['admission', 'reading_body', 'queued', 'attempt', 'backoff', 'holding_error', 'relaying', 'tunnel'];

/** Something that stops an upstream request (an answer in hand, a tunnel). */
interface Abortable {
  abort(): void;
}

export class Lifetime {
  readonly cancel = new Cancel();
  phase: Phase = 'admission';
  /** Before the answer: the fixed deadline. */
  private stopTimer: (() => void) | null = null;
  /** While relaying: the longest silence allowed between chunks. */
  private idle: IdleTimer | null = null;
  private upstream: Abortable | null = null;
  /** When the first byte of the answer's body left for the client (clock ms), null before. */
  firstByteAt: number | null = null;
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly live: Set<Lifetime> | null = null,
  ) {}

  /** Why the request ended early, or null while it goes on (or ended normally). */
  get endedBy(): EndReason | null {
    const r = this.cancel.reason;
    return r instanceof Ended ? r.reason : null;
  }

  get ended(): boolean {
    return this.cancel.aborted;
  }

  enter(phase: Phase): void {
    if (this.phase !== 'done') this.phase = phase;
  }

  /** Ends the request early (the first reason wins); everything waiting on it hears at once. */
  end(reason: Ended): void {
    this.cancel.abort(reason);
  }

  /**
   * Watches the client's side: its connection closing before the answer was finished ends
   * the request, in any phase. One listener for the whole life, not one per phase.
   */
  watchClient(res: ServerResponse): void {
    const onClose = (): void => {
      if (!res.writableFinished) this.end(CLIENT_GONE);
    };
    res.on('close', onClose);
    this.unwatch = () => res.off('close', onClose);
  }

  /** Like watchClient, for a connection that has no ServerResponse (an upgrade's socket). */
  watchSocket(socket: NodeJS.EventEmitter): void {
    const onClose = (): void => this.end(CLIENT_GONE);
    socket.on('close', onClose);
    this.unwatch = () => socket.off('close', onClose);
  }

  /** TIMEOUT for the answer to begin, over every attempt and backoff. */
  startDeadline(ms: number): void {
    this.clearDeadline();
    this.stopTimer = this.clock.timer(ms, this.onDeadline);
  }

  /** The answer began: from now on TIMEOUT bounds the silence between chunks (`touch` marks each). */
  answerBegan(idleMs: number): void {
    this.enter('relaying');
    this.clearDeadline();
    this.idle = new IdleTimer(this.clock, idleMs, this.onDeadline);
  }

  /** No deadline from now on (a tunnel that opened may stay quiet as long as it likes). */
  clearDeadline(): void {
    this.stopTimer?.();
    this.stopTimer = null;
    this.idle?.stop();
    this.idle = null;
  }

  /** The answer moved (a chunk came, or the client took what was written). */
  touch(): void {
    this.idle?.touch();
  }

  /** The answer's first byte is on its way to the client (the first token of a stream). */
  markFirstByte(): void {
    this.firstByteAt ??= this.clock.now();
  }

  /** The upstream request to abort if this request ends before it does; null once it ended by itself. */
  holdUpstream(up: Abortable | null): void {
    this.upstream = up;
  }

  /** The request is over: timers and listeners go, an upstream request still open is aborted. */
  finish(): void {
    this.phase = 'done';
    this.clearDeadline();
    this.unwatch?.();
    this.unwatch = null;
    const up = this.upstream;
    this.upstream = null;
    up?.abort();
    this.live?.delete(this);
  }

  private readonly onDeadline = (): void => {
    this.stopTimer = null;
    this.end(DEADLINE);
  };
}

/** Every request alive now: shutdown ends them all, /stats counts them by phase. */
export class Lifetimes {
  private readonly live = new Set<Lifetime>();

  constructor(private readonly clock: Clock) {}

  begin(): Lifetime {
    const life = new Lifetime(this.clock, this.live);
    this.live.add(life);
    return life;
  }

  get size(): number {
    return this.live.size;
  }

  /** Ends every request still alive with `reason`; returns how many there were. */
  endAll(reason: Ended): number {
    const all = [...this.live];
    for (const life of all) life.end(reason);
    return all.length;
  }

  byPhase(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of PHASES) out[p] = 0;
    for (const life of this.live) out[life.phase] = (out[life.phase] ?? 0) + 1;
    return out;
  }
}
