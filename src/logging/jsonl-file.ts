/**
 * An append-only JSON-lines file: one object + '\n' per record.
 *
 * Lines are gathered and written once per event-loop turn (setImmediate), one write for
 * all of them: per-line writes cost a syscall each, and holding lines longer (a 100 ms
 * timer) lets them survive into the old generation, which costs more in garbage
 * collection than it saves; while one write is with the disk the next lines gather behind
 * it. Writing never throws into the caller; a failed open or write is reported once through
 * `onError`. If the disk stalls, at most `maxBufferedBytes` wait in memory and later lines
 * are counted in `dropped` instead of growing the heap.
 *
 * `reopen()` serves logrotate (SIGHUP): after a rename, the next lines go to a fresh file
 * under the old name. With `maxBytes` > 0 the file rotates itself by size: path → path.1
 * → … → path.<maxFiles>, the oldest dropped.
 */
import { createWriteStream, fstatSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export interface JsonlFileOptions {
  /** Rotate when the file would grow past this many bytes; 0 = never (logrotate's job). */
  readonly maxBytes?: number;
  /** Rotated files kept (path.1 … path.N). */
  readonly maxFiles?: number;
  readonly maxBufferedBytes?: number;
  readonly onError?: (err: Error) => void;
}

export class JsonlFile {
  private stream: WriteStream | null = null;
  private failed = false;
  private pending: string[] = [];
  private pendingChars = 0;
  private scheduled = false;
  /** A write is with the disk; what gathers meanwhile goes out when it completes. */
  private writing = false;
  private size = 0;
  /** Lines not written because the disk could not keep up. */
  dropped = 0;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly maxBuffered: number;
  private readonly onError: (err: Error) => void;

  constructor(
    readonly path: string,
    opts: JsonlFileOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 0;
    this.maxFiles = Math.max(1, opts.maxFiles ?? 5);
    this.maxBuffered = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.onError = opts.onError ?? (() => {});
    this.open();
  }

  private open(): void {
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      // opened synchronously (rare: start, rotation, SIGHUP) so that a rotation right after
      // finds the file where it should be
      const fd = openSync(this.path, 'a');
      this.size = fstatSync(fd).size;
      const s = createWriteStream(this.path, { fd });
      s.on('error', (err) => this.fail(err));
      this.stream = s;
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    if (!this.failed) this.onError(err);
    this.failed = true;
  }

  writeLine(line: string): void {
    if (this.pendingChars > this.maxBuffered) {
      this.dropped++; // the disk is not keeping up: count, do not grow the heap
      return;
    }
    this.pending.push(line);
    this.pendingChars += line.length + 1;
    if (!this.scheduled && !this.writing) {
      this.scheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /**
   * Writes what is pending now, in one write. While that write is with the disk, lines
   * keep gathering and go out together when it completes: under load that is one write for
   * many requests (each fs write costs the event loop ~10-20 µs of stream and thread-pool
   * bookkeeping), and a line waits at most as long as the disk takes.
   */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0 || this.writing || this.stream === null || this.stream.destroyed) return;
    this.writing = this.writeOut(this.take(), this.afterWrite);
  }

  /** Appends `text`, rotating first when it would pass LOG_MAX_SIZE; false when no file is open. */
  private writeOut(text: string, done?: () => void): boolean {
    const bytes = Buffer.byteLength(text);
    if (this.maxBytes > 0 && this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    const out = this.stream;
    if (out === null || out.destroyed) return false;
    this.size += bytes;
    out.write(text, done);
    return true;
  }

  private take(): string {
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    this.pendingChars = 0;
    return text;
  }

  private readonly flushSoon = (): void => this.flush();

  private readonly afterWrite = (): void => {
    this.writing = false;
    if (this.pending.length > 0) this.flush();
  };

  /** Writes everything pending at once (before a close or reopen), busy or not. */
  private forceFlush(): void {
    if (this.pending.length > 0) this.writeOut(this.take());
  }

  private rotate(): void {
    this.stream?.end(); // an open descriptor keeps writing into the renamed file: nothing is lost
    this.stream = null;
    try {
      rmSync(`${this.path}.${this.maxFiles}`, { force: true });
      for (let i = this.maxFiles - 1; i >= 1; i--) {
        try {
          renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch {
          // that generation does not exist yet
        }
      }
      renameSync(this.path, `${this.path}.1`);
    } catch (err) {
      this.fail(err as Error);
    }
    this.open();
  }

  /**
   * Close the current file and open the path anew (after logrotate renamed it). Resolves
   * when the old file has received everything that was written to it.
   */
  reopen(): Promise<void> {
    this.forceFlush();
    const old = this.stream;
    this.stream = null;
    this.failed = false;
    this.open();
    return new Promise((resolve) => (old === null || old.destroyed ? resolve() : old.end(resolve)));
  }

  /** Write what is pending and close. */
  close(): Promise<void> {
    this.forceFlush();
    const s = this.stream;
    this.stream = null;
    if (s === null || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }
}
