/**
 * ws-client.mjs: `wsConnect`, a tiny WebSocket client for tests: the opening
 * handshake over a raw socket.
 *
 * It sends the upgrade request (with any extra headers), checks the 101 and
 * Sec-WebSocket-Accept, and hands the socket to ws-client-connection.mjs. A
 * refused handshake rejects with `response` ({status, headers, body}) so tests
 * can check how a proxy refused it.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { once } from 'node:events';
import { headersFromRaw } from './request-input.mjs';
import { wsAccept } from './ws-frames.mjs';
import { createWsClient } from './ws-client-connection.mjs';

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Read an HTTP response head from a raw socket (the WebSocket handshake answer).
 * Leaves the socket paused; `rest` holds any bytes after the head.
 * @param {net.Socket} socket
 * @returns {Promise<{status: number, headers: Record<string,string>, rest: Buffer}>}
 */
function readResponseHead(socket) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) return;
      cleanup();
      socket.pause();
      const [statusLine, ...lines] = buf.toString('latin1', 0, end).split('\r\n');
      const status = Number(/^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(statusLine)?.[1]);
      const rawHeaders = lines.flatMap((line) => {
        const colon = line.indexOf(':');
        return colon > 0 ? [line.slice(0, colon).trim(), line.slice(colon + 1).trim()] : [];
      });
      resolve({ status, headers: headersFromRaw(rawHeaders), rest: buf.subarray(end + 4) });
    };
    const onClose = () => {
      cleanup();
      reject(new Error('websocket handshake failed: connection closed before a response'));
    };
    /** @param {Error} err */
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onError);
  });
}

/**
 * Collect the body of a refused handshake: content-length bytes, or until the
 * peer closes (bounded by a short timeout so a test never hangs on it).
 * @param {net.Socket} socket
 * @param {Buffer} rest
 * @param {Record<string,string>} headers
 */
async function readRefusalBody(socket, rest, headers) {
  const expected = Number(headers['content-length']);
  /** @type {Buffer[]} */
  const chunks = [rest];
  let size = rest.length;
  if (!(size >= expected)) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 1000);
      const finish = () => {
        clearTimeout(timer);
        resolve(undefined);
      };
      socket.on('data', (/** @type {Buffer} */ chunk) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= expected) finish();
      });
      socket.once('close', finish);
      socket.resume();
    });
  }
  socket.destroy();
  return Buffer.concat(chunks, size);
}

/**
 * A tiny WebSocket client for tests, over net.connect with masked frames.
 * Rejects when the handshake is refused; the error carries `response`
 * ({status, headers, body}) so tests can check how a proxy refused it.
 * @param {string} url  ws://host:port/path?query (http:// accepted too)
 * @param {{headers?: Record<string,string>}} [options]
 * @returns {Promise<import('./ws-client-connection.mjs').WsClient>}
 */
export async function wsConnect(url, { headers = {} } = {}) {
  const target = new URL(url);
  if (target.protocol !== 'ws:' && target.protocol !== 'http:') {
    throw new TypeError(`wsConnect supports ws:// and http:// URLs, not ${target.protocol}`);
  }
  const socket = net.connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 80) });
  socket.setNoDelay(true);
  await once(socket, 'connect');

  const key = crypto.randomBytes(16).toString('base64');
  /** @type {Record<string,string>} */
  const requestHeaders = {
    host: target.host,
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': key,
    'sec-websocket-version': '13',
  };
  for (const [name, value] of Object.entries(headers)) requestHeaders[name.toLowerCase()] = String(value);
  const head = [`GET ${target.pathname}${target.search} HTTP/1.1`, ...Object.entries(requestHeaders).map(([k, v]) => `${k}: ${v}`)];
  socket.write(head.join('\r\n') + '\r\n\r\n');

  let answer;
  try {
    answer = await readResponseHead(socket);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const response = { status: answer.status, headers: answer.headers };
  if (answer.status !== 101) {
    const body = await readRefusalBody(socket, answer.rest, answer.headers);
    throw Object.assign(new Error(`websocket handshake refused: HTTP ${answer.status}`), { response: { ...response, body } });
  }
  if (answer.headers['sec-websocket-accept'] !== wsAccept(key)) {
    socket.destroy();
    throw Object.assign(new Error('websocket handshake failed: bad Sec-WebSocket-Accept'), { response });
  }
  return createWsClient(socket, response, answer.rest);
}
