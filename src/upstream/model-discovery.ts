/**
 * Which models each upstream serves, when the config gives it no `models` list: every
 * MODEL_DISCOVERY_INTERVAL a `GET /v1/models` under its base path (with the upstream's key
 * when one is configured, since vLLM's --api-key guards it), whose `data[].id` become what
 * it is known to serve. A failed or malformed answer keeps what was known. Bounded: at
 * most MAX_DISCOVERED_MODELS ids of at most 256 characters from a listing of at most 1 MiB.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { every, type Clock } from '../clock.js';
import type { Logger } from '../logging/logger.js';
import { getFromUpstream } from './upstream-get.js';
import { MAX_DISCOVERED_MODELS, type Upstream } from './upstream.js';

export interface DiscoveryOptions {
  readonly intervalMs: number;
  readonly http2: boolean;
  /** Sent with each listing (Authorization with UPSTREAM_API_KEY), or nothing. */
  readonly headers: OutgoingHttpHeaders;
}

const MAX_LISTING_BYTES = 1 << 20;
const MAX_ID_CHARS = 256;
const LISTING_TIMEOUT_MS = 10_000;

/** The model ids of an OpenAI list answer, or null when it is not one. */
export function modelIds(body: Buffer): string[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  const data = (doc as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) return null;
  const ids: string[] = [];
  for (const m of data) {
    const id = (m as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && id !== '' && id.length <= MAX_ID_CHARS) ids.push(id);
    if (ids.length >= MAX_DISCOVERED_MODELS) break;
  }
  return ids;
}

export class ModelDiscovery {
  private stopRounds: (() => void) | null = null;

  constructor(
    private readonly upstreams: () => readonly Upstream[],
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly opts: DiscoveryOptions,
  ) {}

  /** Lists the models of every upstream without a `models` list now, then every interval. */
  start(): void {
    this.stopRounds = every(this.clock, this.opts.intervalMs, () => {
      for (const u of this.upstreams()) if (u.models === null) void this.discover(u);
    });
  }

  stop(): void {
    this.stopRounds?.();
    this.stopRounds = null;
  }

  /** Asks one upstream for its models; resolves when the answer is in (or given up). */
  async discover(u: Upstream): Promise<void> {
    try {
      const r = await getFromUpstream(u, `${u.target.basePath}/v1/models`, { clock: this.clock, timeoutMs: LISTING_TIMEOUT_MS, maxBytes: MAX_LISTING_BYTES, http2: this.opts.http2, headers: this.opts.headers });
      const ids = r.status >= 200 && r.status < 300 ? modelIds(r.body) : null;
      if (ids === null) {
        this.logger.debug('model listing failed; what was known stays', { upstream: u.name, status: r.status });
        return;
      }
      const before = u.discovered;
      u.discovered = new Set(ids);
      if (before === null || before.size !== ids.length || ids.some((id) => !before.has(id))) this.logger.info('upstream models', { upstream: u.name, models: ids.slice(0, 20), count: ids.length });
    } catch (err) {
      this.logger.debug('model listing failed; what was known stays', { upstream: u.name, error: (err as Error).message });
    }
  }
}
