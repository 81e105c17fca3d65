/**
 * An in-memory primary and workers joined like node:cluster IPC, for unit tests of the
 * parts that speak over the links: messages are delivered asynchronously (a microtask
 * later, as IPC never delivers inside `send`) and pass through JSON (what IPC's default
 * serialisation keeps), so a part that sends a Map or relies on a synchronous answer fails
 * here as it would across processes.
 */
import type { ChannelMessage, PrimaryLink, WorkersLink } from './link.js';

export interface LinkedPair {
  readonly primary: WorkersLink;
  /** The link of worker `id`, which joins on first use. */
  worker(id: number): PrimaryLink;
  /** Worker `id` exits: its pending messages are lost, onExit fires once. */
  exit(id: number): void;
  /** Messages sent and not yet delivered. */
  readonly inTransit: number;
}

type Fn<A extends unknown[]> = (...args: A) => void;

export function linkedPair(): LinkedPair {
  const toPrimary = new Map<string, Fn<[number, ChannelMessage]>[]>();
  const toWorker = new Map<number, Map<string, Fn<[ChannelMessage]>[]>>();
  const links = new Map<number, PrimaryLink>();
  const exits: Fn<[number]>[] = [];
  let inTransit = 0;
  const copy = (m: ChannelMessage): ChannelMessage => JSON.parse(JSON.stringify(m)) as ChannelMessage;
  const later = (fn: () => void, sent?: () => void): void => {
    inTransit++;
    queueMicrotask(() => {
      inTransit--;
      sent?.();
      fn();
    });
  };
  const on = <F>(map: Map<string, F[]>, ch: string, fn: F): void => {
    const list = map.get(ch);
    if (list === undefined) map.set(ch, [fn]);
    else list.push(fn);
  };

  const primary: WorkersLink = {
    sendTo(workerId, msg) {
      const handlers = toWorker.get(workerId);
      if (handlers === undefined) return;
      const m = copy(msg);
      later(() => {
        if (toWorker.get(workerId) !== handlers) return; // it exited meanwhile
        for (const fn of handlers.get(m.ch) ?? []) fn(m);
      });
    },
    on(ch, fn) {
      on(toPrimary, ch, fn);
    },
    workers() {
      return [...toWorker.keys()];
    },
    onExit(fn) {
      exits.push(fn);
    },
  };

  return {
    primary,
    worker(id) {
      let link = links.get(id);
      if (link !== undefined) return link;
      const handlers = new Map<string, Fn<[ChannelMessage]>[]>();
      toWorker.set(id, handlers);
      link = {
        send(msg, sent) {
          if (toWorker.get(id) !== handlers) {
            sent?.();
            return;
          }
          const m = copy(msg);
          later(() => {
            for (const fn of toPrimary.get(m.ch) ?? []) fn(id, m);
          }, sent);
        },
        on(ch, fn) {
          on(handlers, ch, fn);
        },
      };
      links.set(id, link);
      return link;
    },
    exit(id) {
      if (!toWorker.delete(id)) return;
      links.delete(id);
      for (const fn of exits) fn(id);
    },
    get inTransit() {
      return inTransit;
    },
  };
}
