// The summed-scrape round over the in-memory link and a fake clock: every listening worker
// asked, the asker answered with the merge, a silent worker left out at the timeout, an
// exiting worker not waited for, a primary that never answers ends the worker's wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkedPair } from './memory-link.mjs';
import { ScrapeClient, ScrapeCollector, ScrapeError } from '../../dist/cluster/scrape.js';
import { FakeClock, flush } from './orchestration-fakes.mjs';

function cluster(ids, { silent = [], targets = ids } = {}) {
  const clock = new FakeClock();
  const pair = linkedPair();
  const merges = [];
  const sum = (parts, missing) => {
    merges.push({ parts: Object.fromEntries(parts), missing });
    return [...parts.values()].reduce((a, b) => a + b, 0);
  };
  const collector = new ScrapeCollector(pair.primary, clock, 1000, () => targets, { count: sum, other: sum });
  const clients = new Map();
  const collects = new Map(); // worker id -> parts it made
  const extra = new Map(); // worker id -> added to its part
  for (const id of ids) {
    const link = pair.worker(id);
    if (silent.includes(id)) continue; // never answers a collect (a stopped process)
    const part = () => {
      collects.set(id, (collects.get(id) ?? 0) + 1);
      return id * 10 + (extra.get(id) ?? 0);
    };
    clients.set(id, new ScrapeClient(link, clock, 2000, { count: part, other: part }));
  }
  return { clock, pair, collector, clients, merges, collects, extra };
}

test('the asking worker gets the merge of every worker\'s part', async () => {
  const c = cluster([1, 2, 3]);
  const answer = c.clients.get(2).ask('count');
  await flush();
  assert.equal(await answer, 60);
  assert.deepEqual(c.merges, [{ parts: { 1: 10, 2: 20, 3: 30 }, missing: [] }]);
  assert.equal(c.collector.open, 0);
  assert.equal(c.clock.pending(), 0, 'both timers cancelled');
});

test('a worker that does not answer is left out at the timeout, and named', async () => {
  const c = cluster([1, 2, 3], { silent: [3] });
  let answer;
  c.clients.get(1).ask('count').then((v) => (answer = v));
  await flush();
  assert.equal(answer, undefined, 'still waiting for worker 3');
  c.clock.advance(999);
  await flush();
  assert.equal(answer, undefined);
  c.clock.advance(1);
  await flush();
  assert.equal(answer, 30);
  assert.deepEqual(c.merges.at(-1).missing, [3]);
});

test('a worker that exits during the round is not waited for', async () => {
  const c = cluster([1, 2], { silent: [2] });
  let answer;
  c.clients.get(1).ask('count').then((v) => (answer = v));
  await flush();
  c.pair.exit(2);
  await flush();
  assert.equal(answer, 10);
  assert.deepEqual(c.merges.at(-1).missing, []);
});

test('a merge that throws, or an unknown kind, answers the asker with an error', async () => {
  const clock = new FakeClock();
  const pair = linkedPair();
  new ScrapeCollector(pair.primary, clock, 1000, () => [1], { boom: () => { throw new Error('bad part'); } });
  const client = new ScrapeClient(pair.worker(1), clock, 2000, { boom: () => 1 });
  await assert.rejects(client.ask('boom'), (e) => e instanceof ScrapeError && e.message === 'bad part');
  await assert.rejects(client.ask('nothing'), /unknown kind nothing/);
});

test('the worker stops waiting when the primary never answers', async () => {
  const clock = new FakeClock();
  const pair = linkedPair(); // no collector on the primary side
  const client = new ScrapeClient(pair.worker(1), clock, 2000, {});
  const p = client.ask('count');
  clock.advance(2000);
  await assert.rejects(p, /did not answer the count scrape within 2000 ms/);
});

test('asks of a kind that arrive while its round is open join it: one collect per worker, one merge, every asker answered', async () => {
  const c = cluster([1, 2, 3]);
  const asks = [1, 2, 3, 1, 2, 3].map((id) => c.clients.get(id).ask('count'));
  assert.deepEqual(await Promise.all(asks), [60, 60, 60, 60, 60, 60]);
  assert.deepEqual(Object.fromEntries(c.collects), { 1: 1, 2: 1, 3: 1 });
  assert.equal(c.merges.length, 1);
  assert.equal(c.collector.open, 0);
  assert.equal(c.clock.pending(), 0, 'every timer cancelled');
});

test('an ask after the round answered starts a new round that sees counts made since', async () => {
  const c = cluster([1, 2]);
  assert.equal(await c.clients.get(1).ask('count'), 30);
  c.extra.set(2, 5);
  assert.equal(await c.clients.get(1).ask('count'), 35, 'no cached answer');
  assert.deepEqual(Object.fromEntries(c.collects), { 1: 2, 2: 2 });
  assert.equal(c.merges.length, 2);
});

test('a round of another kind is not joined', async () => {
  const c = cluster([1, 2]);
  assert.deepEqual(await Promise.all([c.clients.get(1).ask('count'), c.clients.get(2).ask('other')]), [30, 30]);
  assert.equal(c.merges.length, 2);
  assert.deepEqual(Object.fromEntries(c.collects), { 1: 2, 2: 2 });
});

test('a joining asker that the round did not ask (not listening yet) is asked for its part too', async () => {
  const c = cluster([1, 2, 3], { targets: [1, 2] });
  const [a, b] = await Promise.all([c.clients.get(1).ask('count'), c.clients.get(3).ask('count')]);
  assert.deepEqual([a, b], [60, 60]);
  assert.deepEqual(c.merges, [{ parts: { 1: 10, 2: 20, 3: 30 }, missing: [] }]);
});

test('a worker whose exit came is not waited for while the targets still name it (exited, not yet disconnected)', async () => {
  const c = cluster([1, 2]);
  c.pair.exit(2);
  let answer;
  c.clients.get(1).ask('count').then((v) => (answer = v));
  await flush();
  assert.equal(answer, 10, 'answered without waiting for the timeout');
  assert.deepEqual(c.merges.at(-1), { parts: { 1: 10 }, missing: [] });
});
