/**
 * The primary's end of channel 'log': the workers' lines into the one requests.log and
 * proxy.log (and stdout for proxy lines when LOG_STDOUT), through the same JsonlFile
 * (batched writes, size rotation, SIGHUP reopen, bounded buffer) a single process uses.
 * A message that is not what a worker sends is dropped: a line holding a newline would
 * split a record in two, so only strings without one are written.
 */
import type { LineSink } from '../logging/logger.js';
import type { WorkersLink } from './link.js';
import { LOG_CHANNEL } from './log-forwarder.js';

export interface LogTargets {
  /** requests.log; null when REQUEST_LOG_ENABLED=false. */
  readonly requests: LineSink | null;
  /** proxy.log, and stdout when configured. */
  readonly proxy: readonly LineSink[];
}

export function writeWorkerLogs(link: WorkersLink, targets: LogTargets): void {
  link.on(LOG_CHANNEL, (_workerId, msg) => {
    const requests = targets.requests;
    if (requests !== null) for (const line of linesOf(msg['requests'])) requests.writeLine(line);
    for (const line of linesOf(msg['proxy'])) {
      for (const sink of targets.proxy) sink.writeLine(line);
    }
  });
}

function linesOf(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  return v.filter((l): l is string => typeof l === 'string' && !l.includes('\n'));
}
