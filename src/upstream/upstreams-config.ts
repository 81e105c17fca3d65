/**
 * Which upstreams the proxy routes to: UPSTREAMS_FILE (a JSON array, reread on SIGHUP) when
 * it is set, else UPSTREAM_URL's comma-separated list. Pure apart from the injected file
 * read; every problem is collected (one line each, naming the file and the entry) and
 * thrown at once, so the same parser serves the start (exit 2) and a reload (logged, the
 * old set stays: the caller's part).
 */
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';

export interface UpstreamSpec {
  /** The `name` given, else `host:port` of the URL: unique, and a metric label value. */
  readonly name: string;
  readonly url: URL;
  /** Share of the traffic relative to the others (> 0; default 1). */
  readonly weight: number;
  /** The models it serves; null = not listed (discovered by `GET /v1/models`). */
  readonly models: readonly string[] | null;
  /** Requests in flight at most; 0 = no cap. */
  readonly maxConcurrent: number;
}

export class UpstreamsConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'UpstreamsConfigError';
  }
}

export const URL_ACCEPTS = 'an http:// or https:// URL without credentials, query or fragment';

/** UPSTREAM_URL's rule, for each element of its list and each `url` of the file. */
export function parseUpstreamUrl(raw: string): URL | null {
  try {
    const u = new URL(raw.trim());
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.username || u.password || u.search || u.hash) return null;
    return u;
  } catch {
    return null;
  }
}

/** `host:port`, the port always written (80 / 443 when the URL leaves it out). */
export function defaultName(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/**
 * A name is a label value in metrics, logs and /health: a safe set of characters (brackets
 * for IPv6 literals). A name written in the file is 1-64 of them; one derived from a URL is
 * host:port, as long as the host name is (DNS names reach 253 characters).
 */
const NAME_CHARS = 'A-Za-z0-9_.:@[]-';
const GIVEN_NAME = /^[A-Za-z0-9_.:@[\]-]{1,64}$/;
const DERIVED_NAME = /^[A-Za-z0-9_.:@[\]-]+$/;

export function nameProblem(name: string, derived: boolean): string | null {
  if (derived) return DERIVED_NAME.test(name) ? null : `its name ${JSON.stringify(name)} (host:port of its url) has characters outside [${NAME_CHARS}]`;
  return GIVEN_NAME.test(name) ? null : `name must be 1-64 characters of [${NAME_CHARS}], got ${JSON.stringify(name)}`;
}

const KEYS = ['url', 'name', 'weight', 'models', 'max_concurrent'];

/** The upstreams the config names: UPSTREAMS_FILE when set (read with readFile), else UPSTREAM_URL's list. Throws UpstreamsConfigError with every problem. */
export function upstreamSpecs(config: Pick<Config, 'upstreamUrls' | 'upstreamsFile'>, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): UpstreamSpec[] {
  const path = config.upstreamsFile;
  if (path === null) return config.upstreamUrls.map((url) => ({ name: defaultName(url), url, weight: 1, models: null, maxConcurrent: 0 }));
  const problems: string[] = [];
  // a single UPSTREAM_URL (the default included) gives way to the file; a list is a
  // second, competing answer to "which upstreams", so the operator must pick one
  if (config.upstreamUrls.length > 1) {
    const list = config.upstreamUrls.map((u) => u.href).join(',');
    problems.push(`config error: UPSTREAMS_FILE=${path} is set together with a list of upstreams in UPSTREAM_URL (${list}); set only one of them`);
  }
  let specs: UpstreamSpec[] = [];
  let text: string | null = null;
  try {
    text = readFile(path);
  } catch (err) {
    problems.push(`config error: UPSTREAMS_FILE=${path}: cannot be read: ${(err as Error).message}`);
  }
  if (text !== null) {
    try {
      specs = parseUpstreamsFile(path, text);
    } catch (err) {
      if (!(err instanceof UpstreamsConfigError)) throw err;
      problems.push(...err.problems);
    }
  }
  if (problems.length > 0) throw new UpstreamsConfigError(problems);
  return specs;
}

/** Parses the file's text (exported for tests and for reload). */
export function parseUpstreamsFile(path: string, text: string): UpstreamSpec[] {
  const fileProblem = (what: string): UpstreamsConfigError => new UpstreamsConfigError([`config error: UPSTREAMS_FILE=${path}: ${what}`]);
  let doc: unknown;
  try {
    doc = JSON.parse(text.replace(/^\uFEFF/, '')); // an editor's byte-order mark is no error
  } catch (err) {
    throw fileProblem(`is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc)) throw fileProblem(`must be a JSON array of upstreams such as [{"url": "http://gpu-a.internal:8000"}], got ${kind(doc)}`);
  if (doc.length === 0) throw fileProblem('is an empty array; name at least one upstream');

  const problems: string[] = [];
  const specs: UpstreamSpec[] = [];
  const taken = new Map<string, { entry: number; derived: boolean }>();
  doc.forEach((entry: unknown, i) => {
    const n = i + 1;
    const reasons: string[] = [];
    const { name, derived, spec } = parseEntry(entry, reasons);
    if (name !== null) {
      const first = taken.get(name);
      if (first === undefined) taken.set(name, { entry: n, derived });
      else {
        const hint = derived || first.derived ? ' (an entry without a name is named host:port of its url); give one of them a name' : '';
        reasons.push(`name ${name} is already the name of entry ${first.entry}${hint}`);
      }
    }
    const label = name !== null ? ` (${name})` : '';
    for (const r of reasons) problems.push(`config error: UPSTREAMS_FILE=${path}: entry ${n}${label}: ${r}`);
    if (spec !== null && reasons.length === 0) specs.push(spec);
  });
  if (problems.length > 0) throw new UpstreamsConfigError(problems);
  return specs;
}

interface ParsedEntry {
  /** Known whenever it can be (even beside other problems), to label the entry's lines. */
  readonly name: string | null;
  /** No `name` key: the name is host:port of the url. */
  readonly derived: boolean;
  /** Null unless the entry is entirely valid. */
  readonly spec: UpstreamSpec | null;
}

/** One entry of the array; every reason it is wrong goes to `reasons`. */
function parseEntry(entry: unknown, reasons: string[]): ParsedEntry {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    reasons.push(`must be an object such as {"url": "http://gpu-a.internal:8000"}, got ${kind(entry)}`);
    return { name: null, derived: false, spec: null };
  }
  const e = entry as Record<string, unknown>;
  for (const key of Object.keys(e)) if (!KEYS.includes(key)) reasons.push(`unknown key ${JSON.stringify(key)} (known: ${KEYS.join(', ')})`);

  let url: URL | null = null;
  if (!('url' in e)) reasons.push('url is required');
  else if (typeof e.url !== 'string' || (url = parseUpstreamUrl(e.url)) === null) reasons.push(`url must be ${URL_ACCEPTS}, got ${shown(e.url)}`);

  let name: string | null = null;
  const derived = !('name' in e);
  if (!derived) {
    const problem = typeof e.name === 'string' ? nameProblem(e.name, false) : `name must be a string, got ${shown(e.name)}`;
    if (problem === null) name = e.name as string;
    else reasons.push(problem);
  } else if (url !== null) {
    const problem = nameProblem(defaultName(url), true);
    if (problem === null) name = defaultName(url);
    else reasons.push(`${problem}; give it a name`);
  }

  const weight = 'weight' in e ? e.weight : 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) reasons.push(`weight must be a number > 0, got ${shown(e.weight)}`);

  let models: string[] | null = null;
  if ('models' in e) {
    const m = e.models;
    if (Array.isArray(m) && m.length > 0 && m.every((s) => typeof s === 'string' && s !== '' && s === s.trim())) models = [...new Set(m as string[])];
    else reasons.push(`models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got ${shown(m)}`);
  }

  const maxConcurrent = 'max_concurrent' in e ? e.max_concurrent : 0;
  if (typeof maxConcurrent !== 'number' || !Number.isSafeInteger(maxConcurrent) || maxConcurrent < 0) reasons.push(`max_concurrent must be an integer >= 0 (0 = no cap), got ${shown(e.max_concurrent)}`);

  const spec = reasons.length === 0 && name !== null && url !== null ? { name, url, weight: weight as number, models, maxConcurrent: maxConcurrent as number } : null;
  return { name, derived, spec };
}

/** A value as the file wrote it (a number as a number: JSON.stringify turns 1e999 into null). */
function shown(v: unknown): string {
  return typeof v === 'number' ? String(v) : JSON.stringify(v);
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v} ${shown(v)}`;
}
