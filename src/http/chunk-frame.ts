/**
 * One HTTP/1.1 chunk (RFC 9112 §7.1): size in hex, CRLF, the data, CRLF, in one buffer. The
 * relay writes SSE events to the client's socket framed by this, one socket write per
 * upstream read, instead of `res.write`, which frames each call as four writes (size, CRLF,
 * data, CRLF) corked until the next tick and gathered into a writev: per event that
 * machinery cost more than everything else the proxy does with the event.
 *
 * Empty data has no frame: a zero-size chunk is the body's end.
 */
const CR = 0x0d;
const LF = 0x0a;

export function chunkFrame(data: Buffer): Buffer {
  if (data.length === 0) throw new RangeError('an empty chunk would end the body');
  const size = data.length.toString(16);
  const n = size.length;
  const out = Buffer.allocUnsafe(n + 2 + data.length + 2);
  out.write(size, 0, 'latin1');
  out[n] = CR;
  out[n + 1] = LF;
  data.copy(out, n + 2);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}
