/**
 * An append-only JSON-lines file: one object + '\n' per record.
 *
 * Lines are gathered and written once per event-loop turn (setImmediate), one write for
 * all of them: per-line writes cost a syscall each, and holding lines longer (a 100 ms
 * timer) lets them survive into the old generation, which costs more in garbage
 * collection than it saves. Writing never throws into the caller; a failed open or write
 * is reported once through `onError`. If the disk stalls, at most `maxBufferedBytes` wait
 * in memory and later lines are counted in `dropped` instead of growing the heap.
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
  private scheduled = false;
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
    this.pending.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is pending now, in one write. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    const lines = this.pending.length;
    this.pending = [];
    const s = this.stream;
    if (s === null || s.destroyed) return;
    if (s.writableLength > this.maxBuffered) {
      this.dropped += lines;
      return;
    }
    const bytes = Buffer.byteLength(text);
    if (this.maxBytes > 0 && this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    this.size += bytes;
    this.stream?.write(text);
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
    this.flush();
    const old = this.stream;
    this.stream = null;
    this.failed = false;
    this.open();
    return new Promise((resolve) => (old === null || old.destroyed ? resolve() : old.end(resolve)));
  }

  /** Write what is pending and close. */
  close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = null;
    if (s === null || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }
}
