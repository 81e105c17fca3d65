// In-memory clusters for the parts that span workers: the primary's WorkersLink and one
// PrimaryLink per worker (src/cluster/link.ts), without processes. Two kinds: memoryCluster,
// whose messages wait until the test delivers them, and linkedPair (below), whose messages
// deliver themselves a microtask later. In memoryCluster messages go through JSON
// as node:cluster's IPC sends them (a NaN arrives as null) and wait in one queue, in the
// order sent, until the test delivers them; a test may also take some out to hold them back,
// drop or reorder them.

/** Lets pending promise callbacks run. */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

export function memoryCluster() {
  /** Messages in flight: { to: 'primary' | workerId, from, msg }. */
  const queue = [];
  const primaryOn = new Map();
  const exitFns = [];
  const alive = new Map(); // workerId -> Map(ch -> [fn])
  const copy = (msg) => JSON.parse(JSON.stringify(msg));
  const subscribe = (table, ch, fn) => {
    if (!table.has(ch)) table.set(ch, []);
    table.get(ch).push(fn);
  };

  const primary = {
    sendTo(workerId, msg) {
      if (alive.has(workerId)) queue.push({ to: workerId, from: 'primary', msg: copy(msg) });
    },
    on(ch, fn) {
      subscribe(primaryOn, ch, fn);
    },
    workers() {
      return [...alive.keys()];
    },
    onExit(fn) {
      exitFns.push(fn);
    },
  };

  const deliverEntry = (e) => {
    if (e.to === 'primary') for (const fn of primaryOn.get(e.msg.ch) ?? []) fn(e.from, e.msg);
    else for (const fn of alive.get(e.to)?.get(e.msg.ch) ?? []) fn(e.msg);
  };

  return {
    primary,
    queue,
    /** A new worker's link to the primary. */
    worker(id) {
      const on = new Map();
      alive.set(id, on);
      return {
        send(msg) {
          queue.push({ to: 'primary', from: id, msg: copy(msg) });
        },
        on(ch, fn) {
          subscribe(on, ch, fn);
        },
      };
    },
    /** Delivers the messages queued now, in order; returns how many. */
    deliver() {
      const now = queue.splice(0);
      for (const e of now) deliverEntry(e);
      return now.length;
    },
    /** Delivers until nothing is in flight, letting promise callbacks run between rounds. */
    async settle() {
      for (let i = 0; i < 1000; i++) {
        await flush();
        if (this.deliver() === 0) {
          await flush();
          if (queue.length === 0) return;
        }
      }
      throw new Error('the messages never settle');
    },
    /** Takes out of the queue the messages that match (held back, to deliver later or never). */
    take(pred) {
      const taken = [];
      for (let i = queue.length - 1; i >= 0; i--) if (pred(queue[i])) taken.unshift(...queue.splice(i, 1));
      return taken;
    },
    /** Delivers messages taken out before, in the order given. */
    deliverTaken(entries) {
      for (const e of entries) deliverEntry(e);
    },
    /** The worker exits: what is on its way to it is lost; what it sent is still delivered, after the news. */
    exit(id) {
      alive.delete(id);
      for (let i = queue.length - 1; i >= 0; i--) if (queue[i].to === id) queue.splice(i, 1);
      for (const fn of exitFns) fn(id);
    },
  };
}

/**
 * An in-memory primary and workers joined like node:cluster IPC, delivering by themselves:
 * each message a microtask later (IPC never delivers inside `send`), through JSON, in the
 * order sent; `sent` is called when it is delivered. For the parts whose tests only need the
 * messages to flow (the log forwarder, the scrape round); `memoryCluster` above is for the
 * tests that hold messages back or reorder them.
 */
export function linkedPair() {
  const toPrimary = new Map(); // ch -> [fn(workerId, msg)]
  const toWorker = new Map(); // workerId -> Map(ch -> [fn(msg)])
  const links = new Map();
  const exits = [];
  let inTransit = 0;
  const copy = (m) => JSON.parse(JSON.stringify(m));
  const later = (fn, sent) => {
    inTransit++;
    queueMicrotask(() => {
      inTransit--;
      sent?.();
      fn();
    });
  };
  const on = (map, ch, fn) => {
    if (!map.has(ch)) map.set(ch, []);
    map.get(ch).push(fn);
  };
  const primary = {
    sendTo(workerId, msg) {
      const handlers = toWorker.get(workerId);
      if (handlers === undefined) return;
      const m = copy(msg);
      later(() => {
        if (toWorker.get(workerId) !== handlers) return; // it exited meanwhile
        for (const fn of handlers.get(m.ch) ?? []) fn(m);
      });
    },
    on: (ch, fn) => on(toPrimary, ch, fn),
    workers: () => [...toWorker.keys()],
    onExit: (fn) => exits.push(fn),
  };
  return {
    primary,
    /** The link of worker `id`, which joins on first use. */
    worker(id) {
      if (links.has(id)) return links.get(id);
      const handlers = new Map();
      toWorker.set(id, handlers);
      const link = {
        send(msg, sent) {
          if (toWorker.get(id) !== handlers) return sent?.();
          const m = copy(msg);
          later(() => {
            for (const fn of toPrimary.get(m.ch) ?? []) fn(id, m);
          }, sent);
        },
        on: (ch, fn) => on(handlers, ch, fn),
      };
      links.set(id, link);
      return link;
    },
    /** Worker `id` exits: messages on their way to it are lost, onExit fires once. */
    exit(id) {
      if (!toWorker.delete(id)) return;
      links.delete(id);
      for (const fn of exits) fn(id);
    },
    /** Messages sent and not yet delivered. */
    get inTransit() {
      return inTransit;
    },
  };
}
