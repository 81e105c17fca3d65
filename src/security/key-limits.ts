/**
 * The limits a client key may carry after it in PROXY_API_KEYS(_FILE), space-separated:
 * `alice=sk-… rpm=60 tpm=100000 max_parallel=4 weight=2`. Each is optional; a limit left out
 * falls back to the proxy-wide setting. Parsing is strict, since a typo that silently drops a
 * limit would leave a client unlimited: every word after the key must be `name=value` with a
 * known name given once and a valid value. A word that is not a known limit is never quoted
 * back: when a key was mistyped with a space in it, that word is part of the key.
 */

export interface KeyLimits {
  /** Requests per minute: a bucket of `rpm` refilled over 60 s; null = RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW. */
  readonly rpm: number | null;
  /** Tokens per minute; null = TOKEN_LIMIT_TPM. */
  readonly tpm: number | null;
  /** Requests in flight at most; null = no cap of its own. */
  readonly maxParallel: number | null;
  /** Share in the fair queue, relative to other clients' (default 1). */
  readonly weight: number;
}

export const DEFAULT_LIMITS: KeyLimits = Object.freeze({ rpm: null, tpm: null, maxParallel: null, weight: 1 });

type Field = 'rpm' | 'tpm' | 'maxParallel' | 'weight';

/** The names as written in the file, what each becomes, and what a left-out one means. */
const NAMES: Readonly<Record<string, { field: Field; leftOut: string }>> = {
  rpm: { field: 'rpm', leftOut: 'RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW' },
  tpm: { field: 'tpm', leftOut: 'TOKEN_LIMIT_TPM' },
  max_parallel: { field: 'maxParallel', leftOut: 'no cap' },
  weight: { field: 'weight', leftOut: 'weight 1' },
};
export const LIMIT_NAMES = Object.keys(NAMES).join(', ');
const NOT_SHOWN = 'the word is not shown: it could be part of a key';

/** A value as it may be quoted in a message: short, and visibly a string. */
const shown = (value: string): string => JSON.stringify(value.length > 24 ? `${value.slice(0, 24)}…` : value);

function integerAtLeastOne(name: string, value: string): number | string {
  const n = Number(value);
  if (/^\d+$/.test(value) && n >= 1 && Number.isSafeInteger(n)) return n;
  // 0 is refused rather than read as "unlimited": a limit that means its opposite at one
  // value is a trap, and leaving the limit out already says "the proxy-wide setting"
  return `${name} must be an integer >= 1, got ${shown(value)}${n === 0 && /^\d+$/.test(value) ? ` (leave ${name} out for ${NAMES[name]!.leftOut})` : ''}`;
}

function positiveNumber(name: string, value: string): number | string {
  const n = Number(value);
  if (/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(value) && Number.isFinite(n) && n > 0) return n;
  return `${name} must be a number > 0, got ${shown(value)}`;
}

/**
 * The words after a key (already split on whitespace): the limits they give, one reason per
 * bad word (so a line with three mistakes shows three), and how many words named a limit.
 */
export function parseLimits(words: readonly string[]): { limits: KeyLimits; reasons: string[]; named: number } {
  const out: { -readonly [F in Field]: KeyLimits[F] } = { ...DEFAULT_LIMITS };
  const reasons: string[] = [];
  const seen = new Set<string>();
  let named = 0;
  words.forEach((word, i) => {
    const eq = word.indexOf('=');
    const known = eq > 0 ? NAMES[word.slice(0, eq)] : undefined;
    if (eq < 0) {
      reasons.push(`word ${i + 1} after the key is not name=value: limits are ${LIMIT_NAMES}, and a key has no spaces (${NOT_SHOWN})`);
      return;
    }
    if (known === undefined) {
      reasons.push(`word ${i + 1} after the key names no known limit; accepted: ${LIMIT_NAMES} (${NOT_SHOWN})`);
      return;
    }
    const name = word.slice(0, eq);
    named++;
    if (seen.has(name)) {
      reasons.push(`${name} is given twice`);
      return;
    }
    seen.add(name);
    const value = word.slice(eq + 1);
    const parsed = known.field === 'weight' ? positiveNumber(name, value) : integerAtLeastOne(name, value);
    if (typeof parsed === 'string') reasons.push(parsed);
    else out[known.field] = parsed;
  });
  return { limits: Object.freeze(out), reasons, named };
}

export function sameLimits(a: KeyLimits, b: KeyLimits): boolean {
  return a.rpm === b.rpm && a.tpm === b.tpm && a.maxParallel === b.maxParallel && a.weight === b.weight;
}
