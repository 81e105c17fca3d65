// An in-memory cluster for the parts that span workers: the primary's WorkersLink and one
// PrimaryLink per worker (src/cluster/link.ts), without processes. Messages go through JSON
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
