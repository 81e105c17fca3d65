/**
 * The application log: one JSON object a line (`ts`, `level`, `msg`, fields) to stdout and
 * to LOG_DIR/proxy.log, filtered by LOG_LEVEL. A log call never throws: a field that cannot
 * be serialised is replaced, not fatal.
 */
import type { LogLevel } from '../config.js';

const RANK: Record<LogLevel, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40 };

export interface LineSink {
  writeLine(line: string): void;
}

export type Fields = Record<string, unknown>;

export class Logger {
  private readonly min: number;

  constructor(
    level: LogLevel,
    private readonly sinks: readonly LineSink[],
    private readonly wallClock: () => number = Date.now,
    /** Fields on every line (a worker's id when WORKERS > 1). */
    private readonly base: Fields = {},
  ) {
    this.min = RANK[level];
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }

  debug(msg: string, fields?: Fields): void {
    this.log('DEBUG', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log('INFO', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log('WARNING', msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log('ERROR', msg, fields);
  }

  log(level: LogLevel, msg: string, fields?: Fields): void {
    if (RANK[level] < this.min) return;
    const line = serialise({ ts: new Date(this.wallClock()).toISOString(), level, msg, ...this.base, ...fields });
    for (const sink of this.sinks) {
      try {
        sink.writeLine(line);
      } catch {
        // a broken sink must not take the request down with it
      }
    }
  }
}

function serialise(record: Fields): string {
  try {
    return JSON.stringify(record, (_k, v: unknown) => (v instanceof Error ? { name: v.name, message: v.message, code: (v as NodeJS.ErrnoException).code } : typeof v === 'bigint' ? String(v) : v));
  } catch {
    return JSON.stringify({ ts: record['ts'], level: record['level'], msg: record['msg'], note: 'fields not serialisable' });
  }
}

/** Writes each line to process.stdout. */
export const stdoutSink: LineSink = {
  writeLine(line: string): void {
    process.stdout.write(line + '\n');
  },
};
