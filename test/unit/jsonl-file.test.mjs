// The JSONL writer: one line per record, batched per event-loop turn, reopened for
// logrotate, rotated by size when asked, never throwing into the caller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonlFile } from '../../dist/logging/jsonl-file.js';
import { Logger } from '../../dist/logging/logger.js';

const dir = () => mkdtempSync(join(tmpdir(), 'jsonl-'));
const lines = (p) => readFileSync(p, 'utf8').split('\n').filter(Boolean);
const turn = () => new Promise((r) => setImmediate(r));
const turn_ = turn;

test('lines written in one turn land together, one JSON object per line, in order', async () => {
  const p = join(dir(), 'a.log');
  const f = new JsonlFile(p);
  for (let i = 0; i < 100; i++) f.writeLine(JSON.stringify({ i, text: 'with\nnewline' }));
  await f.close();
  const got = lines(p).map((l) => JSON.parse(l));
  assert.equal(got.length, 100);
  assert.deepEqual(got.map((o) => o.i), [...Array(100).keys()]);
});

test('reopen after a rename writes to a fresh file under the old name (logrotate)', async () => {
  const d = dir();
  const p = join(d, 'requests.log');
  const f = new JsonlFile(p);
  f.writeLine('{"n":1}');
  await turn();
  renameSync(p, `${p}.1`);
  f.writeLine('{"n":2}'); // still to the renamed file: the descriptor follows it
  const oldFinished = f.reopen();
  f.writeLine('{"n":3}');
  await oldFinished;
  await f.close();
  assert.deepEqual(lines(`${p}.1`), ['{"n":1}', '{"n":2}']);
  assert.deepEqual(lines(p), ['{"n":3}']);
});

test('with a size limit the file rotates and keeps maxFiles generations', async () => {
  const d = dir();
  const p = join(d, 'proxy.log');
  const f = new JsonlFile(p, { maxBytes: 100, maxFiles: 2 });
  const onDisk = () => [`${p}.2`, `${p}.1`, p].flatMap((g) => (existsSync(g) ? lines(g) : []));
  for (let i = 0; i < 10; i++) {
    f.writeLine(JSON.stringify({ i, pad: 'x'.repeat(40) })); // ~60 bytes a line
    // one line a write: wait until it is on disk (batching would put several in one write)
    for (let t = 0; t < 1000 && !onDisk().some((l) => JSON.parse(l).i === i); t++) await turn();
  }
  await f.close();
  assert.ok(existsSync(`${p}.1`) && existsSync(`${p}.2`));
  assert.ok(!existsSync(`${p}.3`), 'only maxFiles generations are kept');
  // oldest to newest, the kept files hold the newest lines in order, the oldest rotated away
  const kept = [`${p}.2`, `${p}.1`, p].flatMap((f) => lines(f).map((l) => JSON.parse(l).i));
  assert.equal(kept.length, 3, 'one line a file, three files');
  assert.deepEqual(kept, Array.from({ length: kept.length }, (_, k) => 10 - kept.length + k));
});

test('an existing file counts toward the size limit', async () => {
  const d = dir();
  const p = join(d, 'x.log');
  writeFileSync(p, '{"old":true}\n'.repeat(10));
  const f = new JsonlFile(p, { maxBytes: 135 }); // 130 bytes already there
  f.writeLine('{"new":true}');
  await f.close();
  assert.deepEqual(lines(p), ['{"new":true}']);
});

test('a file that cannot be opened is reported once and writes are dropped quietly', async () => {
  const d = dir();
  writeFileSync(join(d, 'blocker'), 'a file, not a directory');
  const errors = [];
  const f = new JsonlFile(join(d, 'blocker', 'x.log'), { onError: (e) => errors.push(e) });
  f.writeLine('{}');
  f.writeLine('{}');
  await turn();
  await f.close();
  assert.equal(errors.length, 1);
});

test('the logger writes ts, level, msg and fields, filters by level and never throws', () => {
  const got = [];
  const sink = { writeLine: (l) => got.push(JSON.parse(l)) };
  const broken = { writeLine: () => { throw new Error('disk gone'); } };
  const log = new Logger('INFO', [broken, sink], () => Date.UTC(2026, 0, 1));
  log.debug('hidden');
  log.info('shown', { port: 8000 });
  log.warn('careful');
  const circular = {};
  circular.self = circular;
  log.error('bad fields', { circular, err: Object.assign(new Error('boom'), { code: 'ECONNRESET' }) });
  assert.deepEqual(got[0], { ts: '2026-01-01T00:00:00.000Z', level: 'INFO', msg: 'shown', port: 8000 });
  assert.equal(got[1].level, 'WARNING');
  assert.equal(got[2].msg, 'bad fields');
  assert.equal(got.length, 3);
  assert.equal(log.enabled('DEBUG'), false);
});

test('lines that arrive while a write is with the disk go out together after it, in order', async () => {
  const p = join(dir(), 'busy.log');
  const f = new JsonlFile(p);
  for (let turn = 0; turn < 20; turn++) {
    for (let i = 0; i < 5; i++) f.writeLine(JSON.stringify({ n: turn * 5 + i }));
    await turn_();
  }
  await f.close();
  assert.deepEqual(lines(p).map((l) => JSON.parse(l).n), [...Array(100).keys()]);
});

test('past maxBufferedBytes waiting, lines are counted as dropped instead of held', async () => {
  const p = join(dir(), 'stalled.log');
  const f = new JsonlFile(p, { maxBufferedBytes: 100 });
  for (let i = 0; i < 50; i++) f.writeLine(JSON.stringify({ i, pad: 'xxxxxxxxxx' }));
  assert.ok(f.dropped > 0);
  await f.close();
  const kept = lines(p).map((l) => JSON.parse(l).i);
  assert.equal(kept.length + f.dropped, 50);
  assert.deepEqual(kept, [...Array(kept.length).keys()], 'what is kept is the oldest, in order');
});
