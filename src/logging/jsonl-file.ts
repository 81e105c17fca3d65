/**
 * An append-only JSON-lines file: one object + '\n' per record. Writing never throws into
 * the caller (observability must not break a request); a failed open or write is reported
 * once through `onError` and the record dropped. `reopen()` serves logrotate (SIGHUP):
 * after a rename, the next lines go to a fresh file under the old name.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export class JsonlFile {
  private stream: WriteStream | null = null;
  private failed = false;

  constructor(
    readonly path: string,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    this.open();
  }

  private open(): void {
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      const s = createWriteStream(this.path, { flags: 'a' });
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
    const s = this.stream;
    if (s === null || s.destroyed) return;
    s.write(line + '\n');
  }

  /** Close the current file and open the path anew (after logrotate renamed it). */
  reopen(): void {
    const old = this.stream;
    this.stream = null;
    this.failed = false;
    old?.end();
    this.open();
  }

  /** Flush what is buffered and close. */
  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    if (s === null || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }
}
