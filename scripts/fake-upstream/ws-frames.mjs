/**
 * ws-frames.mjs: the WebSocket frame codec (RFC 6455 §5) shared by the echo
 * server and the test client.
 *
 * Encoding (masked for clients, §5.3), decoding one frame, an incremental
 * parser over TCP chunks, and the Sec-WebSocket-Accept value of a handshake.
 */
import crypto from 'node:crypto';
import { MAX_BODY_BYTES } from './request-input.mjs';

const WS_GUID = '258EAFA5-E914-47C7-95CA-C5AB0DC85B11';
export const WS_OP = Object.freeze({ CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa });

/**
 * @typedef {object} Frame
 * @property {boolean} fin
 * @property {number} opcode
 * @property {Buffer} payload  unmasked
 */

/**
 * The Sec-WebSocket-Accept answer to a Sec-WebSocket-Key (§4.2.2).
 * @param {string} key
 */
export function wsAccept(key) {
  return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/**
 * Encode one frame. Clients must mask, servers must not.
 * @param {number} opcode
 * @param {Buffer} payload
 * @param {{fin?: boolean, mask?: boolean}} [options]
 */
export function encodeFrame(opcode, payload, { fin = true, mask = false } = {}) {
  const len = payload.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, payload]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

/**
 * Decode the frame at the start of `buf`, or say how many bytes are needed first.
 * @param {Buffer} buf
 * @returns {{frame: Frame, size: number} | {needed: number} | {error: string}}
 */
function decodeFrame(buf) {
  if (buf.length < 2) return { needed: 2 };
  const fin = (buf[0] & 0x80) !== 0;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return { needed: 4 };
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return { needed: 10 };
    const big = buf.readBigUInt64BE(2);
    if (big > BigInt(MAX_BODY_BYTES)) return { error: 'frame too large' };
    len = Number(big);
    offset = 10;
  }
  const maskAt = offset;
  if (masked) offset += 4;
  const size = offset + len;
  if (buf.length < size) return { needed: size };
  const payload = Buffer.from(buf.subarray(offset, size)); // a copy, unmasked in place
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i & 3)];
  return { frame: { fin, opcode, payload }, size };
}

/**
 * Incremental frame parser: buffers chunks and only joins them once a whole
 * header or frame is there, so big frames are not copied once per TCP chunk.
 * @param {(frame: Frame) => void} onFrame
 * @param {(message: string) => void} onError
 * @returns {(chunk: Buffer) => void}
 */
export function createFrameParser(onFrame, onError) {
  /** @type {Buffer[]} */
  let chunks = [];
  let length = 0;
  let needed = 2;
  let failed = false;
  return (chunk) => {
    if (failed) return;
    chunks.push(chunk);
    length += chunk.length;
    while (length >= needed) {
      const buf = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length);
      const result = decodeFrame(buf);
      if ('error' in result) {
        failed = true;
        onError(result.error);
        return;
      }
      if ('needed' in result) {
        chunks = [buf];
        needed = result.needed;
        continue; // loop condition is false now unless more data already arrived
      }
      const rest = buf.subarray(result.size);
      chunks = rest.length ? [rest] : [];
      length = rest.length;
      needed = 2;
      onFrame(result.frame);
    }
  };
}
