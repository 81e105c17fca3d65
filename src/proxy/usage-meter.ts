/**
 * Watches a successful answer for its token usage as it passes: SSE through the stream
 * watcher, which also counts the characters of generated text for a stream without usage;
 * JSON by keeping only its last two chunks (usage is written last, and only that small object
 * is parsed). Other answers are not watched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { SseUsageWatcher, usageFromJson, type Usage } from '../observe/usage.js';

export interface UsageMeter {
  push(chunk: Buffer): void;
  usage(): Usage | null;
  model(): string | null;
  /** Characters of generated text seen (observe/text-chars.ts); 0 for a JSON answer, whose text is not read. */
  textChars(): number;
}

/** A JSON answer: its last two chunks, where the usage object is. */
class JsonUsageMeter implements UsageMeter {
  private prev: Buffer | null = null;
  private last: Buffer | null = null;

  push(chunk: Buffer): void {
    this.prev = this.last;
    this.last = chunk;
  }

  usage(): Usage | null {
    const { prev, last } = this;
    return last === null ? null : usageFromJson(prev === null ? last : Buffer.concat([prev, last]));
  }

  model(): string | null {
    return null;
  }

  /** 0: only the usage is read. OpenAI-compatible servers always put one in a JSON chat, completions, embeddings or responses answer. */
  textChars(): number {
    return 0;
  }
}

export function usageMeter(status: number, headers: IncomingHttpHeaders): UsageMeter | null {
  if (status < 200 || status >= 300) return null;
  const type = headers['content-type'] ?? '';
  if (type.startsWith('text/event-stream')) return new SseUsageWatcher();
  return type.startsWith('application/json') ? new JsonUsageMeter() : null;
}
