/**
 * The primary's decisions about its workers, apart from node:cluster: when to start one,
 * when to replace one that died and after how long, when to stop them and with which exit
 * code. The I/O (fork, IPC, kill, process.exit, the log) comes in as `SupervisorEffects`
 * and time from the injected Clock, so the tests drive it with a fake clock and recorded
 * effects and never sleep.
 *
 * - Replacement: a worker that exits while the service runs is replaced in its slot after
 *   a backoff: RESTART base × 2^(quick deaths in a row), capped; a worker that had lived
 *   `stableMs` resets its slot's count, so one crash a day restarts at once while a crash
 *   loop slows to one try per `maxMs` instead of spinning.
 * - Startup: while no worker has ever listened, a worker that fails (port taken, a file
 *   it cannot read) means they all will: the primary stops the others and exits with that
 *   code, as a single process would, so supervisord / docker see the failure.
 * - SIGTERM / SIGINT: every worker is asked to drain; the primary exits once all have
 *   exited: 0 when each drained cleanly (exit code 0), else 1. A worker still alive at
 *   `drainTimeoutMs` (SHUTDOWN_TIMEOUT plus a margin: it should have ended itself) is
 *   killed. A second signal kills the workers and exits 1 at once.
 */
import type { Clock } from '../clock.js';
import { backoffDelayMs } from '../resilience/backoff.js';

export interface SupervisorEffects {
  /** Starts a worker; returns its id. May throw (no memory, no processes left): that worker counts as one that died at once. */
  fork(): number;
  /** Asks worker `id` to drain as a single process does on SIGTERM. */
  drain(id: number): void;
  /** Ends worker `id` at once (SIGKILL). */
  kill(id: number): void;
  exit(code: number): void;
  log(level: 'INFO' | 'WARNING' | 'ERROR', msg: string, fields: Record<string, unknown>): void;
}

export interface RestartPolicy {
  /** Wait before replacing a worker after its first quick death. */
  readonly baseMs: number;
  /** Longest wait between tries. */
  readonly maxMs: number;
  /** A worker that lived this long resets its slot's backoff. */
  readonly stableMs: number;
}

export const DEFAULT_RESTART: RestartPolicy = Object.freeze({ baseMs: 100, maxMs: 30_000, stableMs: 30_000 });

export interface SupervisorOptions {
  readonly workers: number;
  readonly clock: Clock;
  readonly effects: SupervisorEffects;
  readonly restart?: RestartPolicy;
  /** After a stop signal, how long the workers get before they are killed. */
  readonly drainTimeoutMs: number;
}

interface Slot {
  readonly index: number;
  /** The worker in this slot now; null while it waits for a replacement. */
  workerId: number | null;
  startedAt: number;
  /** Deaths in a row of workers that did not live `stableMs`. */
  quickDeaths: number;
  cancelRestart: (() => void) | null;
}

type Phase = 'running' | 'draining' | 'done';

export class Supervisor {
  private phase: Phase = 'running';
  private readonly slots: Slot[];
  private readonly restart: RestartPolicy;
  private everListened = false;
  private exitCode = 0;
  private cancelDeadline: (() => void) | null = null;
  /** Workers replaced after an exit nobody asked for. */
  restarts = 0;

  constructor(private readonly o: SupervisorOptions) {
    this.restart = o.restart ?? DEFAULT_RESTART;
    this.slots = Array.from({ length: o.workers }, (_, index) => ({ index, workerId: null, startedAt: 0, quickDeaths: 0, cancelRestart: null }));
  }

  start(): void {
    for (const slot of this.slots) if (this.phase === 'running') this.fork(slot); // a failed start stops the rest
  }

  /** The ids of the workers running now (started, not yet exited). */
  alive(): number[] {
    return this.slots.flatMap((s) => (s.workerId === null ? [] : [s.workerId]));
  }

  get draining(): boolean {
    return this.phase !== 'running';
  }

  /**
   * Worker `id` listens: the service is up, later failures are crashes to replace. A worker
   * that listens while the others drain was asked before it could hear (a drain message that
   * reaches a worker still starting is lost): it is asked again.
   */
  listening(id: number): void {
    if (this.slotOf(id) === undefined) return;
    this.everListened = true;
    if (this.phase === 'draining') this.o.effects.drain(id);
  }

  exited(id: number, code: number | null, signal: string | null): void {
    const slot = this.slotOf(id);
    if (slot === undefined) return;
    this.ended(slot, id, code, signal);
  }

  /** Slot `slot`'s worker `id` is gone (it exited, or could not be started: id null). */
  private ended(slot: Slot, id: number | null, code: number | null, signal: string | null): void {
    slot.workerId = null;
    const clean = code === 0 && signal === null;
    const livedMs = Math.round(this.o.clock.now() - slot.startedAt);
    if (this.phase === 'done') return;
    if (this.phase === 'draining') {
      if (!clean) {
        this.exitCode = 1;
        this.o.effects.log('WARNING', 'worker did not drain cleanly', { worker: id, code, signal });
      }
      this.exitIfAllGone();
      return;
    }
    if (!this.everListened) {
      this.o.effects.log('ERROR', 'worker failed before the service started; stopping', { worker: id, code, signal });
      this.exitCode = code !== null && code !== 0 ? code : 1;
      this.stopAll();
      return;
    }
    const consecutive = livedMs >= this.restart.stableMs ? 0 : slot.quickDeaths;
    slot.quickDeaths = consecutive + 1;
    const delayMs = backoffDelayMs(consecutive + 1, { baseMs: this.restart.baseMs, maxMs: this.restart.maxMs, jitter: 0 });
    this.o.effects.log('WARNING', 'worker exited; replacing it', { worker: id, code, signal, lived_ms: livedMs, restart_in_ms: delayMs, quick_deaths: slot.quickDeaths });
    slot.cancelRestart = this.o.clock.timer(delayMs, () => {
      slot.cancelRestart = null;
      if (this.phase !== 'running') return;
      this.restarts++;
      this.fork(slot);
    });
  }

  /** SIGTERM or SIGINT: drain all; the second one exits at once. */
  stopSignal(signal: string): void {
    if (this.phase === 'done') return;
    if (this.phase === 'draining') {
      this.o.effects.log('WARNING', 'second signal: exiting now', { signal, workers: this.alive() });
      for (const id of this.alive()) this.o.effects.kill(id);
      this.finish(1);
      return;
    }
    this.o.effects.log('INFO', 'draining the workers', { signal, workers: this.alive() });
    this.stopAll();
  }

  private stopAll(): void {
    this.phase = 'draining';
    for (const slot of this.slots) {
      slot.cancelRestart?.();
      slot.cancelRestart = null;
    }
    for (const id of this.alive()) this.o.effects.drain(id);
    this.cancelDeadline = this.o.clock.timer(this.o.drainTimeoutMs, () => {
      this.cancelDeadline = null;
      const left = this.alive();
      if (left.length === 0) return;
      this.o.effects.log('ERROR', 'workers still alive after the drain timeout: killing them', { workers: left });
      this.exitCode = 1;
      for (const id of left) this.o.effects.kill(id);
    });
    this.exitIfAllGone();
  }

  private exitIfAllGone(): void {
    if (this.alive().length === 0) this.finish(this.exitCode);
  }

  private finish(code: number): void {
    this.phase = 'done';
    this.cancelDeadline?.();
    this.cancelDeadline = null;
    this.o.effects.exit(code);
  }

  private fork(slot: Slot): void {
    slot.startedAt = this.o.clock.now();
    try {
      slot.workerId = this.o.effects.fork();
    } catch (err) {
      // out of memory or processes: a worker that could not start is one that died at once
      this.o.effects.log('ERROR', 'could not start a worker', { err: (err as Error).message });
      this.ended(slot, null, 1, null);
    }
  }

  private slotOf(id: number): Slot | undefined {
    return this.slots.find((s) => s.workerId === id);
  }
}
