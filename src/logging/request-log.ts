/**
 * The audit log, LOG_DIR/requests.log: one JSON object a line per forwarded request,
 * written when it ends, with the fields INTERFACE.md fixes. It never holds a credential:
 * the record is built from the request's facts, never from its headers.
 */
import type { RequestRecord } from '../proxy-handler.js';
import type { JsonlFile } from './jsonl-file.js';

export class RequestLog {
  constructor(private readonly file: JsonlFile, private readonly wallClock: () => number = Date.now) {}

  write(r: RequestRecord): void {
    this.file.writeLine(
      JSON.stringify({
        ts: new Date(this.wallClock()).toISOString(),
        request_id: r.requestId,
        client: r.client,
        method: r.method,
        path: r.path.length > 2048 ? r.path.slice(0, 2048) : r.path,
        model: null,
        stream: r.stream,
        status: r.status,
        duration_ms: Math.round(r.durationMs * 100) / 100,
        ttfb_ms: r.ttfbMs === null ? null : Math.round(r.ttfbMs * 100) / 100,
        attempts: r.attempts,
        bytes_in: r.bytesIn,
        bytes_out: r.bytesOut,
        prompt_tokens: null,
        completion_tokens: null,
        error: r.error,
      }),
    );
  }

  reopen(): Promise<void> {
    return this.file.reopen();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
