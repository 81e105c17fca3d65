// Workers' log lines to the primary (channel 'log') over the in-memory link: whole lines,
// one message per event-loop turn, a bounded backlog with drops counted, and a flush that
// resolves only once the lines have left the worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkedPair } from './memory-link.mjs';
import { LogForwarder } from '../../dist/cluster/log-forwarder.js';
import { writeWorkerLogs } from '../../dist/cluster/log-writer.js';
import { RequestLog } from '../../dist/logging/request-log.js';
import { Logger } from '../../dist/logging/logger.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));
const sink = () => ({ lines: [], writeLine(l) { this.lines.push(l); } });

function primaryWith() {
  const pair = linkedPair();
  const requests = sink();
  const proxyFile = sink();
  const stdout = sink();
  let messages = 0;
  pair.primary.on('log', () => messages++);
  writeWorkerLogs(pair.primary, { requests, proxy: [proxyFile, stdout] });
  return { pair, requests, proxyFile, stdout, messages: () => messages };
}

const record = (i) => ({ requestId: `r${i}`, client: '127.0.0.1', method: 'POST', path: '/v1/chat/completions', endpoint: '/v1/chat/completions', model: 'm', stream: false, status: 200, durationMs: 1, ttfbMs: 1, attempts: 1, upstream: 'u', bytesIn: 1, bytesOut: 1, promptTokens: 1, completionTokens: 1, tokensCharged: 2, keyId: null, error: null });

test('request and application lines of two workers reach the one writer whole, one message per worker per turn', async () => {
  const p = primaryWith();
  for (const id of [1, 2]) {
    const fwd = new LogForwarder(p.pair.worker(id));
    const rlog = new RequestLog(fwd.file('requests'), Date.now, id);
    const logger = new Logger('INFO', [fwd.file('proxy')], Date.now, { worker: id });
    for (let i = 0; i < 50; i++) rlog.write(record(`${id}-${i}`));
    logger.info('hello', { n: id });
  }
  await turn();
  await turn();
  assert.equal(p.messages(), 2, 'each worker batched its turn into one message');
  assert.equal(p.requests.lines.length, 100);
  const parsed = p.requests.lines.map((l) => JSON.parse(l));
  assert.deepEqual(parsed.filter((r) => r.worker === 1).length, 50);
  assert.equal(parsed[0].request_id, 'r1-0');
  assert.deepEqual(p.proxyFile.lines.map((l) => JSON.parse(l)).map((r) => [r.msg, r.worker, r.n]), [['hello', 1, 1], ['hello', 2, 2]]);
  assert.deepEqual(p.stdout.lines, p.proxyFile.lines, 'proxy lines go to every proxy sink');
});

test('without a worker id RequestLog writes exactly the fields of a single process (no worker field)', () => {
  const s = { lines: [], dropped: 0, writeLine(l) { this.lines.push(l); }, reopen: async () => {}, close: async () => {} };
  new RequestLog(s, () => 0).write(record(1));
  assert.equal('worker' in JSON.parse(s.lines[0]), false);
});

test('the backlog is bounded while the primary does not read: later lines are dropped and counted per file', async () => {
  const sent = [];
  const stalled = { send: (msg, done) => sent.push({ msg, done }), on() {} };
  const line = 'x'.repeat(100);
  const fwd = new LogForwarder(stalled, 1000);
  const requests = fwd.file('requests');
  for (let i = 0; i < 15; i++) requests.writeLine(line);
  assert.equal(requests.dropped, 5, '10 lines of 100 chars fit in 1000');
  fwd.file('proxy').writeLine(line);
  assert.equal(fwd.dropped.proxy, 1);
  await turn();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].msg.requests.length, 10);
  requests.writeLine(line);
  assert.equal(requests.dropped, 6, 'still full: sent but not yet written to the channel');
  sent[0].done();
  assert.equal(fwd.backlogChars, 0);
  requests.writeLine(line);
  assert.equal(requests.dropped, 6, 'room again once the channel took the lines');
});

test('flushed() sends at once and resolves only after the lines left the worker', async () => {
  const sent = [];
  const link = { send: (msg, done) => sent.push({ msg, done }), on() {} };
  const fwd = new LogForwarder(link);
  fwd.write('requests', '{"a":1}');
  let done = false;
  const p = fwd.flushed().then(() => (done = true));
  assert.equal(sent.length, 1, 'sent without waiting for the turn');
  await turn();
  assert.equal(done, false);
  sent[0].done();
  await p;
  assert.equal(done, true);
  assert.equal(await fwd.file('proxy').close(), undefined, 'nothing pending: resolves at once');
});

test('the writer drops what a worker never sends: non-strings and lines holding a newline', async () => {
  const p = primaryWith();
  p.pair.worker(1).send({ ch: 'log', requests: ['{"ok":1}', 7, '{"a":\n1}', null], proxy: 'not a list' });
  await turn();
  assert.deepEqual(p.requests.lines, ['{"ok":1}']);
  assert.deepEqual(p.proxyFile.lines, []);
});

test('with the request log off, request lines are dropped and proxy lines still written', async () => {
  const pair = linkedPair();
  const proxyFile = sink();
  writeWorkerLogs(pair.primary, { requests: null, proxy: [proxyFile] });
  pair.worker(1).send({ ch: 'log', requests: ['{"r":1}'], proxy: ['{"p":1}'] });
  await turn();
  assert.deepEqual(proxyFile.lines, ['{"p":1}']);
});
