/**
 * Watches a successful answer for its token usage as it passes: SSE through the stream
 * watcher; JSON by keeping only its last two chunks (usage is written last, and only that
 * small object is parsed). Other answers are not watched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { SseUsageWatcher, usageFromJson, type Usage } from '../observe/usage.js';

export interface UsageMeter {
  readonly push: (chunk: Buffer) => void;
  usage(): Usage | null;
  model(): string | null;
}

export function usageMeter(status: number, headers: IncomingHttpHeaders): UsageMeter | null {
  if (status < 200 || status >= 300) return null;
  const type = headers['content-type'] ?? '';
  if (type.startsWith('text/event-stream')) {
    const w = new SseUsageWatcher();
    return { push: (c) => w.push(c), usage: () => w.usage(), model: () => w.model() };
  }
  if (!type.startsWith('application/json')) return null;
  let prev: Buffer | null = null;
  let last: Buffer | null = null;
  return {
    push: (c) => {
      prev = last;
      last = c;
    },
    usage: () => (last === null ? null : usageFromJson(prev === null ? last : Buffer.concat([prev, last]))),
    model: () => null,
  };
}
