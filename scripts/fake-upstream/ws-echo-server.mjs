/**
 * ws-echo-server.mjs: the h1 server's WebSocket side: the upgrade handshake on
 * /v1/realtime and an echo of every frame.
 *
 * An upgrade under /v1/ is counted and takes its fault like any request
 * ('close' drops it, 'hang' never answers, 'status' refuses it with that
 * status); other paths and malformed handshakes are refused with an OpenAI
 * error body. Once open, data frames come back frame by frame.
 */
import http from 'node:http';
import { HttpError, errorBody, invalidUrl, statusFaultError } from './errors.mjs';
import { headersFromRaw, splitUrl } from './request-input.mjs';
import { takeFault } from './faults.mjs';
import { FAKE_UPSTREAM_HEADER, recordAttempt } from './state.mjs';
import { WS_OP, createFrameParser, encodeFrame, wsAccept } from './ws-frames.mjs';

/** @typedef {import('node:net').Socket} Socket */

/** The header naming the fake, as on every answer. @param {{name: string}} state */
const nameLine = (state) => `${FAKE_UPSTREAM_HEADER}: ${state.name}`;

/**
 * Answer an upgrade request with a plain HTTP error and close.
 * @param {{name: string}} state
 * @param {Socket} socket
 * @param {HttpError} err
 */
function rejectUpgrade(state, socket, err) {
  const payload = Buffer.from(JSON.stringify(errorBody(err)));
  const lines = [
    `HTTP/1.1 ${err.status} ${http.STATUS_CODES[err.status] ?? 'Error'}`,
    'content-type: application/json',
    `content-length: ${payload.length}`,
    'connection: close',
    nameLine(state),
    ...Object.entries(err.headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), payload]));
}

/**
 * Echo data frames back unmasked, frame by frame (so fragments stay fragments),
 * answer pings, and answer a close frame with a close frame before ending.
 * @param {Socket} socket
 * @param {Buffer} head  bytes that arrived with the upgrade request
 */
function runWebSocketEcho(socket, head) {
  let closing = false;
  const parse = createFrameParser(
    (frame) => {
      if (closing) return;
      switch (frame.opcode) {
        case WS_OP.CONT:
        case WS_OP.TEXT:
        case WS_OP.BINARY:
          socket.write(encodeFrame(frame.opcode, frame.payload, { fin: frame.fin }));
          break;
        case WS_OP.PING:
          socket.write(encodeFrame(WS_OP.PONG, frame.payload));
          break;
        case WS_OP.CLOSE:
          closing = true;
          socket.end(encodeFrame(WS_OP.CLOSE, frame.payload.subarray(0, 125)));
          break;
        default:
          break; // pongs and unknown opcodes are ignored
      }
    },
    () => socket.destroy(),
  );
  socket.on('data', parse);
  // The h1 server's sockets allow half-open: without this, a client that sends FIN
  // without a close frame would leave this side open until the fake closes.
  socket.once('end', () => socket.end());
  if (head.length) parse(head);
}

/**
 * The h1 server's 'upgrade' handler: WebSocket on /v1/realtime only.
 * @param {import('./state.mjs').State} state
 * @param {http.IncomingMessage} req
 * @param {Socket} socket
 * @param {Buffer} head
 */
export function handleUpgrade(state, req, socket, head) {
  socket.on('error', () => {});
  const { path, query } = splitUrl(req.url ?? '/');
  const method = req.method ?? 'GET';
  let fault = null;
  if (path.startsWith('/v1/')) {
    recordAttempt(state, { method, path, query, headers: headersFromRaw(req.rawHeaders) });
    fault = takeFault(state, path);
  }
  if (fault?.action === 'close') return void socket.destroy();
  if (fault?.action === 'hang') return; // keep the socket open, never answer
  if (fault?.action === 'status') return rejectUpgrade(state, socket, statusFaultError(fault));
  if (path !== '/v1/realtime' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    return rejectUpgrade(state, socket, invalidUrl({ method, path }));
  }
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || req.headers['sec-websocket-version'] !== '13') {
    return rejectUpgrade(state, socket, new HttpError(400, 'Missing or invalid Sec-WebSocket-Key / Sec-WebSocket-Version.'));
  }
  const lines = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${wsAccept(key)}`,
    nameLine(state),
  ];
  // Clients such as `ws` fail when they offered subprotocols and none is selected.
  const offered = req.headers['sec-websocket-protocol'];
  if (typeof offered === 'string' && offered.trim()) lines.push(`Sec-WebSocket-Protocol: ${offered.split(',')[0].trim()}`);
  socket.setNoDelay(true);
  socket.write(lines.join('\r\n') + '\r\n\r\n');
  state.stats.wsConnections += 1;
  state.log(`${method} ${path} -> 101 (websocket)`);
  runWebSocketEcho(socket, head);
}
