/**
 * SHA-256 of a key, the one way a credential is held or compared. Node's one-shot
 * `crypto.hash` (20.12+) costs ~0.4 µs against ~1.1 µs for a Hash object: this runs on
 * every request that carries a key. Older Node 20 falls back to createHash.
 */
import crypto from 'node:crypto';

type OneShot = (algorithm: string, data: string, encoding: 'buffer') => Buffer;
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

export function sha256Bytes(text: string): Buffer {
  return oneShot !== undefined ? oneShot('sha256', text, 'buffer') : crypto.createHash('sha256').update(text).digest();
}
