/**
 * How long the upstream asks us to wait, from its response headers.
 *
 * - `retry-after-ms`: non-standard, sent by OpenAI and read by its SDKs; milliseconds as a
 *   float. Preferred when present and valid, being the more precise of the two.
 * - `Retry-After` (RFC 9110 §10.2.3): either delay-seconds or an HTTP-date. Dates are
 *   turned into a wait relative to the wall clock the caller passes in.
 *
 * Anything unparsable or negative is ignored (undefined), never guessed at: `Date.parse`
 * is not used because it accepts nearly anything ("1" parses as the year 2001).
 */

export interface RetryAfterHeaders {
  'retry-after'?: string | string[] | undefined;
  'retry-after-ms'?: string | string[] | undefined;
}

/**
 * Milliseconds to wait, or undefined when the headers say nothing usable. A date already
 * past gives 0.
 *
 * @param nowEpochMs the current wall-clock time (Date.now()), against which dates count.
 */
export function retryAfterMs(headers: RetryAfterHeaders, nowEpochMs: number): number | undefined {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && DECIMAL.test(ms)) return Number(ms);

  const value = first(headers['retry-after']);
  if (value === undefined) return undefined;
  // delay-seconds is 1*DIGIT; a fraction is tolerated since some servers send one.
  if (DECIMAL.test(value)) return Number(value) * 1000;
  const date = parseHttpDate(value, nowEpochMs);
  return date === undefined ? undefined : Math.max(0, date - nowEpochMs);
}

/** A non-negative decimal number; rejects signs, exponents, "Infinity" and hex. */
const DECIMAL = /^\d+(?:\.\d+)?$/;

/** The header's value, trimmed of optional whitespace; the first one if repeated. */
function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v === undefined ? undefined : v.trim();
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';

// RFC 9110 §5.6.7: recipients must accept all three formats, though senders use only the first.
/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850 = new RegExp(`^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** asctime: `Sun Nov  6 08:49:37 1994` (day padded with a space) */
const ASCTIME = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

/** Epoch milliseconds of an HTTP-date, or undefined if it is not one. */
function parseHttpDate(value: string, nowEpochMs: number): number | undefined {
  let m = IMF_FIXDATE.exec(value);
  if (m) return utc(+m[3]!, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  m = RFC850.exec(value);
  if (m) {
    // §5.6.7: a two-digit year that would lie more than 50 years in the future is taken
    // to be the most recent past year with those digits.
    let year = 2000 + +m[3]!;
    if (Date.UTC(year, 0) > nowEpochMs + 50 * 365.25 * 86_400_000) year -= 100;
    return utc(year, m[2]!, +m[1]!, +m[4]!, +m[5]!, +m[6]!);
  }
  m = ASCTIME.exec(value);
  if (m) return utc(+m[6]!, m[1]!, +m[2]!, +m[3]!, +m[4]!, +m[5]!);
  return undefined;
}

/** Date.UTC that refuses impossible dates (31 Feb) rather than rolling them over. */
function utc(year: number, monthName: string, day: number, h: number, min: number, s: number): number | undefined {
  const month = MONTHS.indexOf(monthName);
  // The grammar allows a leap second (:60); it simply counts as one more second.
  if (h > 23 || min > 59 || s > 60) return undefined;
  const midnight = Date.UTC(year, month, day);
  const d = new Date(midnight);
  // An impossible day rolls into another month, so comparing the month catches it. Date.UTC
  // maps years 0-99 to 1900-1999, so comparing the year rejects those.
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month) return undefined;
  return midnight + ((h * 60 + min) * 60 + s) * 1000;
}
