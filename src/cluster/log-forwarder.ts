/**
 * A worker's log lines, sent to the primary (channel 'log'), which alone writes
 * LOG_DIR/requests.log and proxy.log: one writer, so lines are never torn or interleaved,
 * and rotation and the SIGHUP reopen cannot race between processes.
 *
 * Lines gather for one event-loop turn and go out as one message per turn (an IPC message
 * costs a serialisation and a write on each side, so batching divides that by the lines of
 * the turn). The backlog is bounded: lines waiting here plus lines sent and not yet written
 * to the channel (the primary reads slowly) stay under `maxBacklogChars`; beyond, a line is
 * counted in its file's `dropped` instead of growing this worker's heap, as JsonlFile does
 * when the disk is slow.
 *
 * Message: `{ ch: 'log', requests?: string[], proxy?: string[] }`, each string one JSON
 * line without its '\n'.
 */
import type { PrimaryLink } from './link.js';
import type { LineFile } from '../logging/request-log.js';

export const LOG_CHANNEL = 'log';
export type LogFileName = 'requests' | 'proxy';

export class LogForwarder {
  private readonly pending: Record<LogFileName, string[]> = { requests: [], proxy: [] };
  private pendingChars = 0;
  /** Chars handed to the link whose `sent` has not come back yet. */
  private unsentChars = 0;
  private scheduled = false;
  private readonly waiting: (() => void)[] = [];
  readonly dropped: Record<LogFileName, number> = { requests: 0, proxy: 0 };

  constructor(
    private readonly link: PrimaryLink,
    private readonly maxBacklogChars = 8 * 1024 * 1024,
  ) {}

  /** The sink of one file: what RequestLog and Logger write to. */
  file(name: LogFileName): LineFile {
    const self = this;
    return {
      writeLine: (line: string) => self.write(name, line),
      get dropped() {
        return self.dropped[name];
      },
      reopen: () => Promise.resolve(), // the primary reopens the real file
      close: () => self.flushed(),
    };
  }

  /** Chars waiting here or in the channel. */
  get backlogChars(): number {
    return this.pendingChars + this.unsentChars;
  }

  write(name: LogFileName, line: string): void {
    if (this.pendingChars + this.unsentChars + line.length > this.maxBacklogChars) {
      this.dropped[name]++;
      return;
    }
    this.pending[name].push(line);
    this.pendingChars += line.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /** Sends what is pending now, in one message. */
  flush(): void {
    this.scheduled = false;
    if (this.pendingChars === 0 && this.pending.requests.length === 0 && this.pending.proxy.length === 0) return;
    const msg: { ch: string; requests?: string[]; proxy?: string[] } = { ch: LOG_CHANNEL };
    if (this.pending.requests.length > 0) msg.requests = this.pending.requests;
    if (this.pending.proxy.length > 0) msg.proxy = this.pending.proxy;
    const chars = this.pendingChars;
    this.pending.requests = [];
    this.pending.proxy = [];
    this.pendingChars = 0;
    this.unsentChars += chars;
    this.link.send(msg, () => {
      this.unsentChars -= chars;
      if (this.unsentChars === 0) for (const fn of this.waiting.splice(0)) fn();
    });
  }

  /** Sends what is pending and resolves once everything has left this process (before exit). */
  flushed(): Promise<void> {
    this.flush();
    if (this.unsentChars === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private readonly flushSoon = (): void => this.flush();
}
