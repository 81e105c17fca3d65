/**
 * A worker's side of the cluster (WORKERS > 1): its link to the primary, the forwarder its
 * log lines go through, the primary's control messages, and the summed scrapes. The rest of
 * a worker is exactly the single process of main.ts.
 *
 * Control (channel 'control', primary → worker): `{ cmd: 'drain' }` when the primary got
 * SIGTERM/SIGINT, `{ cmd: 'reload' }` on SIGHUP. A drain by message is not a signal: with
 * `stopasgroup` (supervisord) or Ctrl-C the worker also gets the signal itself, and that pair
 * must not count as the "second signal" that exits at once.
 */
import type { Clock } from '../clock.js';
import type { SummedScrapes } from '../own-endpoints.js';
import { primaryLinkOverIpc } from './ipc-link.js';
import type { PrimaryLink } from './link.js';
import { LogForwarder } from './log-forwarder.js';
import { ScrapeClient } from './scrape.js';

export const CONTROL_CHANNEL = 'control';
export type ControlCommand = 'drain' | 'reload';

/** How long the primary waits for the workers' parts of a scrape (Prometheus' own timeout is 10 s). */
export const SCRAPE_TIMEOUT_MS = 2000;

export interface WorkerSide {
  readonly id: number;
  readonly link: PrimaryLink;
  readonly logs: LogForwarder;
  onControl(cmd: ControlCommand, fn: () => void): void;
  /** /metrics and /stats over all workers; `local` makes this worker's part of each. */
  summed(clock: Clock, local: { metrics(): unknown; stats(): unknown }): SummedScrapes;
}

export function workerSide(id: number, link: PrimaryLink = primaryLinkOverIpc()): WorkerSide {
  const handlers = new Map<string, (() => void)[]>();
  link.on(CONTROL_CHANNEL, (msg) => {
    for (const fn of handlers.get(String(msg['cmd'])) ?? []) fn();
  });
  return {
    id,
    link,
    logs: new LogForwarder(link),
    onControl(cmd, fn) {
      handlers.set(cmd, [...(handlers.get(cmd) ?? []), fn]);
    },
    summed(clock, local) {
      const client = new ScrapeClient(link, clock, SCRAPE_TIMEOUT_MS + 1000, local);
      return {
        metrics: async () => {
          const text = await client.ask('metrics');
          if (typeof text !== 'string') throw new Error('the primary answered the metrics scrape without text');
          return text;
        },
        stats: async () => {
          const body = await client.ask('stats');
          if (typeof body !== 'object' || body === null) throw new Error('the primary answered the stats scrape without a report');
          return body as Record<string, unknown>;
        },
      };
    },
  };
}
