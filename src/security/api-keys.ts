/**
 * The client keys the proxy accepts (PROXY_API_KEYS, PROXY_API_KEYS_FILE). Each entry is
 * `key` or `id=key`; the id (default: `key-<n>`) is what logs, the limiter and /stats may
 * show, never the key. Keys are held only as SHA-256 digests and a presented key is found
 * by its digest, then confirmed with timingSafeEqual: the time taken does not depend on
 * how much of a real key the guess shares, and the process memory holds no key in clear.
 */
import { timingSafeEqual } from 'node:crypto';
import { sha256Bytes } from './digest.js';

export class ApiKeyError extends Error {}

const digest = sha256Bytes;

export class ApiKeys {
  private readonly byDigest = new Map<string, { id: string; digest: Buffer }>();

  /** Entries separated by commas or newlines; `#` starts a comment (in files). */
  static parse(text: string, source: string): ApiKeys {
    const keys = new ApiKeys();
    let n = 0;
    for (const raw of text.split(/[\n,]/)) {
      const entry = raw.replace(/#.*$/, '').trim();
      if (entry === '') continue;
      n++;
      const eq = entry.indexOf('=');
      const id = eq > 0 ? entry.slice(0, eq).trim() : `key-${n}`;
      const key = eq > 0 ? entry.slice(eq + 1).trim() : entry;
      if (key.length < 8 || /\s/.test(key)) throw new ApiKeyError(`${source}: entry ${n} is not a usable key (at least 8 characters, no spaces)`);
      if (!/^[\w.:@-]{1,64}$/.test(id)) throw new ApiKeyError(`${source}: entry ${n} has an id that is not 1-64 of [A-Za-z0-9_.:@-]`);
      const d = digest(key);
      keys.byDigest.set(d.toString('hex'), { id, digest: d });
    }
    return keys;
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The id of the key presented, or null when it is not one of ours. */
  match(presented: string | undefined): string | null {
    if (presented === undefined) return null;
    const d = digest(presented);
    const found = this.byDigest.get(d.toString('hex'));
    return found !== undefined && timingSafeEqual(found.digest, d) ? found.id : null;
  }

  /** Both sets' keys, the later one's ids winning: for PROXY_API_KEYS plus a keys file. */
  merge(other: ApiKeys): ApiKeys {
    const out = new ApiKeys();
    for (const [k, v] of this.byDigest) out.byDigest.set(k, v);
    for (const [k, v] of other.byDigest) out.byDigest.set(k, v);
    return out;
  }
}
