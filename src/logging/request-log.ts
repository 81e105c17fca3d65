/**
 * The audit log, LOG_DIR/requests.log: one JSON object a line per forwarded request,
 * written when it ends, with the fields INTERFACE.md fixes. It never holds a credential:
 * the record is built from the request's facts, never from its headers. Long fields are
 * cut so one request cannot write an unbounded line.
 */
import type { RequestRecord } from '../observe/telemetry.js';
import type { LineSink } from './logger.js';

/** Where the lines go: a JsonlFile, or in a worker the link to the primary that writes it. */
export interface LineFile extends LineSink {
  /** Lines lost so far because the writer could not keep up. */
  readonly dropped: number;
  reopen(): Promise<void>;
  close(): Promise<void>;
}

const MAX_FIELD = 2048;
const cut = (s: string | null): string | null => (s !== null && s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s);
const ms = (v: number | null): number | null => (v === null ? null : Math.round(v * 100) / 100);

export class RequestLog {
  constructor(
    private readonly file: LineFile,
    private readonly wallClock: () => number = Date.now,
    /** The worker id, written as `worker` on each line when WORKERS > 1; null = no field. */
    private readonly worker: number | null = null,
  ) {}

  write(r: RequestRecord): void {
    const record: Record<string, unknown> = {
      ts: new Date(this.wallClock()).toISOString(),
      request_id: r.requestId,
      client: r.client,
      method: r.method,
      path: cut(r.path),
      model: cut(r.model),
      stream: r.stream,
      status: r.status,
      duration_ms: ms(r.durationMs),
      ttfb_ms: ms(r.ttfbMs),
      attempts: r.attempts,
      upstream: r.upstream,
      bytes_in: r.bytesIn,
      bytes_out: r.bytesOut,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      tokens_charged: r.tokensCharged,
      error: r.error,
    };
    if (this.worker !== null) record['worker'] = this.worker;
    this.file.writeLine(JSON.stringify(record));
  }

  /** Lines not written because the disk could not keep up. */
  get dropped(): number {
    return this.file.dropped;
  }

  reopen(): Promise<void> {
    return this.file.reopen();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
