/**
 * The links over node:cluster IPC: a worker's `process.send` / `process.on('message')`, and
 * the primary's `worker.send` / `cluster.on('message')`. Only plain objects with a string
 * `ch` are ours; anything else on the channel is ignored (node's own cluster messages never
 * reach these listeners).
 */
import type { Cluster, Worker } from 'node:cluster';
import type { ChannelMessage, PrimaryLink, WorkersLink } from './link.js';

function isChannelMessage(m: unknown): m is ChannelMessage {
  return typeof m === 'object' && m !== null && typeof (m as { ch?: unknown }).ch === 'string';
}

/** Handlers by channel: several parts may listen on one channel. */
class Channels<F extends (...args: never[]) => void> {
  private readonly byCh = new Map<string, F[]>();

  add(ch: string, fn: F): void {
    const list = this.byCh.get(ch);
    if (list === undefined) this.byCh.set(ch, [fn]);
    else list.push(fn);
  }

  get(ch: string): readonly F[] {
    return this.byCh.get(ch) ?? [];
  }
}

/** A message that could not be sent: its worker is gone, and its exit event follows. */
const ignoreSendError = (): void => {};

/** A worker's link to its primary over this process's IPC channel. */
export function primaryLinkOverIpc(proc: NodeJS.Process = process): PrimaryLink {
  const channels = new Channels<(msg: ChannelMessage) => void>();
  proc.on('message', (m: unknown) => {
    if (!isChannelMessage(m)) return;
    for (const fn of channels.get(m.ch)) fn(m);
  });
  return {
    send(msg, sent) {
      if (proc.send === undefined || !proc.connected) {
        sent?.();
        return;
      }
      try {
        proc.send(msg, undefined, {}, () => sent?.());
      } catch {
        sent?.(); // the channel closed between the check and the send: the primary is gone
      }
    },
    on(ch, fn) {
      channels.add(ch, fn);
    },
  };
}

/**
 * The primary's link to its workers. `alive` is which workers count as alive (the
 * supervisor's view); a message to a worker that is gone is dropped.
 */
export function workersLinkOverCluster(cluster: Cluster): WorkersLink {
  const channels = new Channels<(workerId: number, msg: ChannelMessage) => void>();
  const exits: ((workerId: number) => void)[] = [];
  cluster.on('message', (worker: Worker, m: unknown) => {
    if (!isChannelMessage(m)) return;
    for (const fn of channels.get(m.ch)) fn(worker.id, m);
  });
  cluster.on('exit', (worker: Worker) => {
    for (const fn of exits) fn(worker.id);
  });
  return {
    sendTo(workerId, msg) {
      const w = cluster.workers?.[workerId];
      if (w === undefined || w.isDead() || !w.isConnected()) return;
      try {
        // with a callback, a write that fails (EPIPE: the worker died and its channel is not
        // closed here yet) is handed to it instead of emitted as an 'error' nobody hears,
        // which would crash the primary and every worker with it
        w.send(msg, undefined, {}, ignoreSendError);
      } catch {
        // it exited meanwhile: its exit event follows
      }
    },
    on(ch, fn) {
      channels.add(ch, fn);
    },
    workers() {
      return Object.values(cluster.workers ?? {})
        .filter((w): w is Worker => w !== undefined && !w.isDead())
        .map((w) => w.id);
    },
    onExit(fn) {
      exits.push(fn);
    },
  };
}
