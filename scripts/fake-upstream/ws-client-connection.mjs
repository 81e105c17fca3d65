/**
 * ws-client-connection.mjs: the test client's open WebSocket connection.
 *
 * It sends masked frames, joins fragmented messages, answers pings, queues
 * messages until a test asks for the `next()` one (with a timeout), and closes
 * with the close handshake, never waiting more than a second for the peer.
 */
import { WS_OP, createFrameParser, encodeFrame } from './ws-frames.mjs';

/**
 * @typedef {object} WsMessage
 * @property {number} opcode  1 text, 2 binary
 * @property {Buffer} data
 *
 * @typedef {object} WsClient
 * @property {(data: string|Buffer|Uint8Array) => void} send
 * @property {(opcode: number, payload: Buffer|string, options?: {fin?: boolean}) => void} sendFrame
 * @property {(payload?: Buffer|string) => Promise<Buffer>} ping   resolves with the pong payload; rejects once closed
 * @property {(timeoutMs?: number) => Promise<WsMessage>} next    next data message (fragments joined)
 * @property {(code?: number) => Promise<void>} close
 * @property {import('node:net').Socket} socket
 * @property {{status: number, headers: Record<string,string>}} response
 */

/**
 * @param {import('node:net').Socket} socket  after a successful handshake, paused
 * @param {{status: number, headers: Record<string,string>}} response
 * @param {Buffer} initial  frame bytes that arrived with the handshake answer
 * @returns {WsClient}
 */
export function createWsClient(socket, response, initial) {
  /** @type {WsMessage[]} */
  const messages = [];
  /** @type {{resolve: (m: WsMessage) => void, reject: (e: Error) => void}[]} */
  const waiters = [];
  /** @type {{resolve: (payload: Buffer) => void, reject: (e: Error) => void}[]} */
  const pongWaiters = [];
  /** @type {{opcode: number, parts: Buffer[]}|null} */
  let fragments = null;
  let closed = false;
  let sentClose = false;
  const closedPromise = new Promise((resolve) => socket.once('close', resolve));

  /** @param {WsMessage} message */
  const deliver = (message) => {
    const waiter = waiters.shift();
    if (waiter) waiter.resolve(message);
    else messages.push(message);
  };
  /** @param {number} opcode @param {Buffer} payload */
  const write = (opcode, payload, fin = true) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeFrame(opcode, payload, { fin, mask: true }));
  };

  const parse = createFrameParser(
    ({ fin, opcode, payload }) => {
      switch (opcode) {
        case WS_OP.TEXT:
        case WS_OP.BINARY:
          if (fin) deliver({ opcode, data: payload });
          else fragments = { opcode, parts: [payload] };
          break;
        case WS_OP.CONT:
          if (!fragments) break;
          fragments.parts.push(payload);
          if (fin) {
            deliver({ opcode: fragments.opcode, data: Buffer.concat(fragments.parts) });
            fragments = null;
          }
          break;
        case WS_OP.PING:
          write(WS_OP.PONG, payload);
          break;
        case WS_OP.PONG:
          pongWaiters.shift()?.resolve(payload);
          break;
        case WS_OP.CLOSE:
          if (!sentClose) {
            sentClose = true;
            write(WS_OP.CLOSE, payload.subarray(0, 2));
          }
          socket.end();
          break;
        default:
          break;
      }
    },
    () => socket.destroy(),
  );

  socket.on('error', () => {});
  socket.on('data', parse);
  socket.once('close', () => {
    closed = true;
    for (const waiter of [...waiters.splice(0), ...pongWaiters.splice(0)]) waiter.reject(new Error('websocket closed'));
  });
  if (initial.length) parse(initial);
  socket.resume();

  return {
    socket,
    response,
    send(data) {
      if (typeof data === 'string') write(WS_OP.TEXT, Buffer.from(data, 'utf8'));
      else write(WS_OP.BINARY, Buffer.from(data));
    },
    sendFrame(opcode, payload, { fin = true } = {}) {
      write(opcode, Buffer.from(payload), fin);
    },
    ping(payload = Buffer.alloc(0)) {
      if (closed) return Promise.reject(new Error('websocket closed'));
      return new Promise((resolve, reject) => {
        pongWaiters.push({ resolve, reject });
        write(WS_OP.PING, Buffer.from(payload));
      });
    },
    next(timeoutMs = 5000) {
      const ready = messages.shift();
      if (ready) return Promise.resolve(ready);
      if (closed) return Promise.reject(new Error('websocket closed'));
      return new Promise((resolve, reject) => {
        /** @type {NodeJS.Timeout|undefined} */
        let timer;
        const waiter = {
          resolve: (/** @type {WsMessage} */ m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (/** @type {Error} */ e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        if (timeoutMs > 0) {
          timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(waiter), 1);
            reject(new Error(`no websocket message within ${timeoutMs} ms`));
          }, timeoutMs);
        }
        waiters.push(waiter);
      });
    },
    async close(code = 1000) {
      if (closed) return;
      if (!sentClose) {
        sentClose = true;
        const payload = Buffer.alloc(2);
        payload.writeUInt16BE(code, 0);
        write(WS_OP.CLOSE, payload);
      }
      // Wait for the peer's close frame and end; never longer than a second.
      const timer = setTimeout(() => socket.destroy(), 1000);
      await closedPromise;
      clearTimeout(timer);
    },
  };
}
