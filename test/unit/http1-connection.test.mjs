// One upstream HTTP/1.1 connection: what its owner hears per socket read (a fake socket, no network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Http1Connection } from '../../dist/upstream/http1-connection.js';

function fakeSocket() {
  const s = new EventEmitter();
  s.destroyed = false;
  s.destroy = () => {
    s.destroyed = true;
  };
  return s;
}

/** A connection with an owner that records what it hears, in order. */
function connection() {
  const socket = fakeSocket();
  const conn = new Http1Connection(socket, () => {});
  const heard = [];
  conn.begin(
    {
      onHead: (h) => heard.push(`head ${h.status}`),
      onBody: (c) => heard.push(`body ${c.toString()}`),
      onComplete: (clean) => heard.push(`complete ${clean}`),
      onBroken: (err) => heard.push(`broken ${err.code}`),
    },
    false,
  );
  return { socket, conn, heard };
}

const HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (s) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;
const ev = (n) => `data: {"n":${n}}\n\n`;

test('the events of one socket read reach the owner as one body buffer, each read at once', () => {
  const { socket, heard } = connection();
  socket.emit('data', Buffer.from(HEAD + chunk(ev(1)) + chunk(ev(2)) + chunk(ev(3))));
  assert.deepEqual(heard, ['head 200', `body ${ev(1)}${ev(2)}${ev(3)}`], 'three chunks, one delivery, not held for a later read');
  socket.emit('data', Buffer.from(chunk(ev(4))));
  assert.deepEqual(heard.slice(2), [`body ${ev(4)}`], 'a read with one event is delivered as it came');
});

test('a read that ends the response delivers its body before the completion', () => {
  const { socket, heard } = connection();
  socket.emit('data', Buffer.from(HEAD));
  socket.emit('data', Buffer.from(chunk(ev(1)) + chunk('data: [DONE]\n\n') + '0\r\n\r\n'));
  assert.deepEqual(heard, ['head 200', `body ${ev(1)}data: [DONE]\n\n`, 'complete true']);
});

test('bytes that break the framing: what came before them is delivered, then the failure', () => {
  const { socket, heard } = connection();
  socket.emit('data', Buffer.from(HEAD + chunk(ev(1)) + chunk(ev(2)) + 'zz\r\n'));
  assert.deepEqual(heard, ['head 200', `body ${ev(1)}${ev(2)}`, 'broken HPE_INVALID_CHUNK_SIZE']);
  assert.equal(socket.destroyed, true);
});

test('a chunk split across reads is delivered piece by piece as the reads come', () => {
  const { socket, heard } = connection();
  const whole = chunk(ev(1)); // 'e\r\n' then the event
  socket.emit('data', Buffer.from(HEAD + whole.slice(0, 10)));
  socket.emit('data', Buffer.from(whole.slice(10)));
  assert.deepEqual(heard, ['head 200', `body ${ev(1).slice(0, 7)}`, `body ${ev(1).slice(7)}`]);
});
