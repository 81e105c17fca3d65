/**
 * The client keys the proxy accepts (PROXY_API_KEYS, PROXY_API_KEYS_FILE). Each entry is
 * `key` or `id=key`, optionally followed by limits (`alice=sk-… rpm=60 weight=2`, see
 * key-limits.ts); the id (default: `key-<n>`) is what logs, the limiter and /stats may
 * show, never the key. Keys are held only as SHA-256 digests and a presented key is found
 * by its digest, then confirmed with timingSafeEqual: the time taken does not depend on
 * how much of a real key the guess shares, and the process memory holds no key in clear.
 *
 * Limits belong to the id (every key of an id shares its buckets), so they need a named
 * key: `key-<n>` counts entries and would move to another key when a line is added above.
 */
import { timingSafeEqual } from 'node:crypto';
import { sha256Bytes } from './digest.js';
import { DEFAULT_LIMITS, parseLimits, sameLimits, type KeyLimits } from './key-limits.js';

export type { KeyLimits } from './key-limits.js';
export { DEFAULT_LIMITS } from './key-limits.js';

/**
 * A key list that does not parse: one reason per problem, each starting with where it is
 * (`line 3 (alice): …` or `entry 2 (bob): …`), never quoting a key. The caller adds the source.
 */
export class ApiKeyError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ApiKeyError';
  }
}

/** How the text came: a file's problems name its lines, a variable's its entries. */
export type KeyListUnit = 'line' | 'entry';

const digest = sha256Bytes;
const ID = /^[\w.:@-]{1,64}$/;
const MIN_KEY_CHARS = 8;

/** One entry, split: the id when it has one (`id=key`), the key, the words after it. */
function splitEntry(entry: string): { id: string | null; key: string; rest: string[] } {
  // `alice = sk-…` has always been read as alice's key: the id is what comes before the
  // first `=`, trimmed, unless that holds a space (then the `=` belongs to a limit)
  const eq = entry.indexOf('=');
  const before = eq > 0 ? entry.slice(0, eq).trim() : '';
  const named = before !== '' && !/\s/.test(before);
  const words = (named ? entry.slice(eq + 1) : entry).trim().split(/\s+/);
  return { id: named ? before : null, key: words[0] ?? '', rest: words.slice(1) };
}

export class ApiKeys {
  private readonly byDigest = new Map<string, { id: string; digest: Buffer }>();
  private readonly limitsById = new Map<string, KeyLimits>();

  /**
   * Entries separated by newlines or commas, each `[id=]key [limit=value …]`; `#` starts a
   * comment to the end of the line. Throws ApiKeyError listing every problem at once.
   */
  static parse(text: string, unit: KeyListUnit): ApiKeys {
    const keys = new ApiKeys();
    const problems: string[] = [];
    /** Where each id's limits were first given, to refuse a second key of it with others. */
    const limitsFrom = new Map<string, string>();
    let n = 0;
    text.split('\n').forEach((line, lineIndex) => {
      for (const raw of line.replace(/#[^]*$/, '').split(',')) { // [^]: past a CRLF's \r too
        const entry = raw.trim();
        if (entry === '') continue;
        n++;
        const where = unit === 'line' ? `line ${lineIndex + 1}` : `entry ${n}`;
        const { id: named, key, rest } = splitEntry(entry);
        const id = named ?? `key-${n}`;
        const idOk = ID.test(id);
        const keyOk = key.length >= MIN_KEY_CHARS;
        // A key with a `=` in it reads as id=key (`c2stYWJj=`, base64 padding): an id is
        // quoted only when it is a valid id followed by a usable key, else it may be a key's start.
        const at = idOk && (keyOk || named === null) ? `${where} (${id})` : where;
        const reasons: string[] = [];
        if (!idOk) reasons.push(`the id must be 1-64 of [A-Za-z0-9_.:@-] (not shown: a key with a = in it reads as id=key)`);
        if (key === '') reasons.push('no key after the = (the id is not shown: a key ending in = reads as id=)');
        else if (!keyOk) reasons.push(`the key must be at least ${MIN_KEY_CHARS} characters (${named === null ? 'not shown' : 'neither it nor the id is shown: a key with a = in it reads as id=key'})`);
        const { limits, reasons: limitReasons, named: limitWords } = parseLimits(rest);
        reasons.push(...limitReasons);
        if (named === null && limitWords > 0) reasons.push(`limits need a named key: write <id>=<key> before them (${id} counts entries, so it would pass to another key when a line is added above)`);
        if (reasons.length === 0) {
          const first = limitsFrom.get(id);
          if (first === undefined) limitsFrom.set(id, where);
          else if (!sameLimits(keys.limits(id), limits)) reasons.push(`limits differ from ${first}, another key of the same id (the keys of an id share its limits: give each the same)`);
        }
        if (reasons.length > 0) {
          for (const r of reasons) problems.push(`${at}: ${r}`);
          continue;
        }
        const d = digest(key);
        keys.byDigest.set(d.toString('hex'), { id, digest: d });
        if (!keys.limitsById.has(id)) keys.limitsById.set(id, limits);
      }
    });
    if (problems.length > 0) throw new ApiKeyError(problems);
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

  /** The limits of an id; the defaults (nothing of its own, weight 1) when none were given. */
  limits(id: string): KeyLimits {
    return this.limitsById.get(id) ?? DEFAULT_LIMITS;
  }

  /** Every id that has a key, each once, in the order of the list: the bounded set of client labels. */
  ids(): string[] {
    return [...new Set(Array.from(this.byDigest.values(), (v) => v.id))];
  }

  /**
   * Both sets' keys, the later one's ids winning: for PROXY_API_KEYS plus a keys file. An id
   * in both takes the later set's limits (the file's, which can change on reload).
   */
  merge(other: ApiKeys): ApiKeys {
    const out = new ApiKeys();
    for (const [k, v] of this.byDigest) out.byDigest.set(k, v);
    for (const [k, v] of other.byDigest) out.byDigest.set(k, v);
    for (const [id, l] of this.limitsById) out.limitsById.set(id, l);
    for (const [id, l] of other.limitsById) out.limitsById.set(id, l);
    return out;
  }
}
