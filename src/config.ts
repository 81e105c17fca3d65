/**
 * Configuration: parsed once, at the edge, from an env object passed in. Every bad variable
 * is collected and reported at once (one line each, naming the variable, the value and what
 * is accepted; a secret's value is never echoed); main exits 2 on any. The table below is also what `--help` prints, so the
 * help text cannot drift from the parser.
 */

import { ApiKeyError, ApiKeys } from './security/api-keys.js';
import { defaultName, nameProblem, parseUpstreamUrl, URL_ACCEPTS } from './upstream/upstreams-config.js';

export type LogLevel = 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';
export type Balance = 'least-requests' | 'round-robin' | 'affinity';
export type QueueOrder = 'fair' | 'fifo';

export interface Config {
  /** The first of `upstreamUrls` (what a single-upstream setup uses). */
  readonly upstreamUrl: URL;
  /** UPSTREAM_URL's list: one URL, or several separated by commas (names unique). */
  readonly upstreamUrls: readonly URL[];
  /** JSON array of upstreams, reread on SIGHUP; wins over a single UPSTREAM_URL. */
  readonly upstreamsFile: string | null;
  readonly balance: Balance;
  /** Affinity keeps a key on its upstream while that one is under factor x the mean load (> 1). */
  readonly affinityLoadFactor: number;
  /** Between active probes of each upstream; 0 = passive only. */
  readonly healthCheckIntervalMs: number;
  readonly healthCheckPath: string;
  /** Between `GET /v1/models` on each upstream without a `models` list; 0 = off. */
  readonly modelDiscoveryIntervalMs: number;
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxRetries: number;
  readonly retryDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly rateLimitEnabled: boolean;
  readonly rateLimitRequests: number;
  readonly rateLimitWindowSec: number;
  /** Tokens per minute per client (key id, else address); 0 = off. A key's own `tpm` wins. */
  readonly tokenLimitTpm: number;
  /** Completion tokens reserved for a request that names no max_tokens (>= 1). */
  readonly maxTokensEstimate: number;
  readonly trustProxy: boolean;
  readonly breakerEnabled: boolean;
  readonly breakerThreshold: number;
  readonly breakerOpenMs: number;
  readonly maxConcurrentRequests: number;
  readonly queueSize: number;
  readonly queueTimeoutMs: number;
  /** How requests waiting for a MAX_CONCURRENT_REQUESTS slot are admitted: fair share across clients, or arrival order. */
  readonly queueOrder: QueueOrder;
  readonly retryBudgetRatio: number;
  readonly logLevel: LogLevel;
  readonly logStdout: boolean;
  readonly requestLogEnabled: boolean;
  readonly metricsEnabled: boolean;
  readonly shutdownTimeoutMs: number;
  readonly logDir: string;
  readonly logMaxBytes: number;
  readonly logMaxFiles: number;
  readonly upstreamHttp2: boolean;
  readonly poolSize: number;
  readonly maxRequestBodyBytes: number;
  readonly maxReplayBodyBytes: number;
  /** Client keys from PROXY_API_KEYS; null = open proxy (unless a keys file is given). */
  readonly proxyApiKeys: ApiKeys | null;
  readonly proxyApiKeysFile: string | null;
  readonly upstreamApiKey: string | null;
  readonly adminToken: string | null;
  readonly adminPort: number;
  readonly clientTimeoutMs: number;
  /** Worker processes sharing PORT: a count >= 1, or 'auto' (one per CPU this process may use). 1 = no cluster at all. */
  readonly workers: number | 'auto';
}

type Parser = (raw: string) => unknown;
interface VarSpec {
  readonly name: string;
  readonly def: string;
  readonly accepts: string;
  readonly help: string;
  readonly parse: Parser;
  /** Never echo the value (in errors or help). */
  readonly secret?: boolean;
}

const BAD = Symbol('bad');
/** Refused for finer reasons than "not accepted": one problem line each (UPSTREAM_URL's elements). */
class Refused {
  constructor(readonly reasons: readonly string[]) {}
}

const seconds = (min: number, minInclusive: boolean) => (raw: string) => {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (minInclusive ? n < min : n <= min)) return BAD;
  return Math.round(n * 1000);
};
const integer = (min: number, max = Number.MAX_SAFE_INTEGER) => (raw: string) => {
  const n = Number(raw);
  return /^\s*\d+\s*$/.test(raw) && n >= min && n <= max ? n : BAD;
};
const ratio = (raw: string) => {
  const n = Number(raw);
  return raw.trim() !== '' && Number.isFinite(n) && n >= 0 && n <= 1 ? n : BAD;
};
const bool = (raw: string) => {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return BAD;
};
const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const bytes = (raw: string) => {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return BAD;
  const n = Number(m[1]) * unit;
  return n >= 1 && Number.isSafeInteger(n) ? n : BAD;
};
/**
 * One URL (kept as it always was), or several separated by commas: each element must be a
 * URL and have a name (host:port) of its own, since nothing else tells them apart.
 */
const upstreamUrls = (raw: string) => {
  const parts = raw.split(',');
  if (parts.length === 1) {
    const u = parseUpstreamUrl(raw);
    return u === null ? BAD : [u];
  }
  const urls: URL[] = [];
  const reasons: string[] = [];
  const taken = new Map<string, number>();
  parts.forEach((part, i) => {
    const element = `element ${i + 1} ${JSON.stringify(part.trim())}`;
    const u = parseUpstreamUrl(part);
    if (u === null) {
      reasons.push(`${element} is not accepted; expected ${URL_ACCEPTS}`);
      return;
    }
    const name = defaultName(u);
    const first = taken.get(name);
    const problem = nameProblem(name, true);
    if (first !== undefined) reasons.push(`${element} has the name ${name} (host:port) of element ${first}; each upstream of the list needs its own host:port (UPSTREAMS_FILE can name them)`);
    else if (problem !== null) reasons.push(`${element}: ${problem} (UPSTREAMS_FILE can name it)`);
    taken.set(name, first ?? i + 1);
    urls.push(u);
  });
  return reasons.length > 0 ? new Refused(reasons) : urls;
};
const balance = (raw: string) => {
  const v = raw.trim().toLowerCase();
  return ['least-requests', 'round-robin', 'affinity'].includes(v) ? v : BAD;
};
const factorAboveOne = (raw: string) => {
  const n = Number(raw);
  return raw.trim() !== '' && Number.isFinite(n) && n > 1 ? n : BAD;
};
/** Sent as the request target as is: an origin-form path (RFC 9112 §3.2.1), not `//host`. */
const requestPath = (raw: string) => {
  const v = raw.trim();
  return /^\/(?!\/)[^\s#\x00-\x1f\x7f]*$/.test(v) ? v : BAD;
};
const logLevel = (raw: string) => {
  const v = raw.trim().toUpperCase();
  const level = v === 'WARN' ? 'WARNING' : v;
  return ['DEBUG', 'INFO', 'WARNING', 'ERROR'].includes(level) ? level : BAD;
};
const workers = (raw: string) => (raw.trim().toLowerCase() === 'auto' ? 'auto' : integer(1, MAX_WORKERS)(raw));
const nonEmpty = (raw: string) => (raw.trim() === '' ? BAD : raw.trim());
const optionalPath = (raw: string) => (raw.trim() === '' ? null : raw.trim());
const secretToken = (raw: string) => {
  const v = raw.trim();
  if (v === '') return null;
  return v.length >= 8 && !/\s/.test(v) ? v : BAD;
};
const queueOrder = (raw: string) => {
  const v = raw.trim().toLowerCase();
  return ['fair', 'fifo'].includes(v) ? v : BAD;
};
/** Each bad entry is a line of its own (`entry 2 (bob): …`), never quoting a key. */
const apiKeys = (raw: string) => {
  if (raw.trim() === '') return null;
  try {
    return ApiKeys.parse(raw, 'entry');
  } catch (err) {
    if (err instanceof ApiKeyError) return new Refused(err.problems);
    throw err;
  }
};

/** Far above any core count worth a node:cluster; a typo like 10000 is refused, not forked. */
const MAX_WORKERS = 256;
const SECONDS_POS = 'a number of seconds > 0 (fractions allowed)';
const SECONDS_NONNEG = 'a number of seconds >= 0 (fractions allowed)';
const BOOL = 'true or false (also 1/0, yes/no, on/off)';

/** Every variable: name, default, what is accepted, what it means. Order = help order. */
export const VARIABLES: readonly (VarSpec & { key: keyof Config })[] = [
  { key: 'upstreamUrls', name: 'UPSTREAM_URL', def: 'http://127.0.0.1:8001', accepts: `${URL_ACCEPTS}, or several separated by commas`, help: 'upstream LLM service; a path prefix is kept (http://llm.internal:8000/openai); several, comma-separated, share the load (each serves every model, weight 1)', parse: upstreamUrls },
  { key: 'upstreamsFile', name: 'UPSTREAMS_FILE', def: '', accepts: 'a file path', help: 'JSON array of upstreams [{"url", "name", "weight", "models", "max_concurrent"}], reread on SIGHUP; wins over a single UPSTREAM_URL', parse: optionalPath },
  { key: 'balance', name: 'BALANCE', def: 'least-requests', accepts: 'least-requests, round-robin or affinity', help: 'how a request picks among several upstreams (affinity: the same session to the same upstream)', parse: balance },
  { key: 'affinityLoadFactor', name: 'AFFINITY_LOAD_FACTOR', def: '1.25', accepts: 'a number > 1', help: 'affinity moves a session off an upstream loaded beyond this x the mean', parse: factorAboveOne },
  { key: 'healthCheckIntervalMs', name: 'HEALTH_CHECK_INTERVAL', def: '10', accepts: SECONDS_NONNEG, help: 'seconds between active probes of each upstream when there are several (0 = passive only)', parse: seconds(0, true) },
  { key: 'healthCheckPath', name: 'HEALTH_CHECK_PATH', def: '/health', accepts: 'a path starting with / (such as /health)', help: 'GET on each upstream\'s origin; 2xx = up', parse: requestPath },
  { key: 'modelDiscoveryIntervalMs', name: 'MODEL_DISCOVERY_INTERVAL', def: '30', accepts: SECONDS_NONNEG, help: 'seconds between GET /v1/models on each upstream without a models list (0 = off)', parse: seconds(0, true) },
  { key: 'workers', name: 'WORKERS', def: '1', accepts: `auto or an integer 1-${MAX_WORKERS}`, help: 'worker processes sharing PORT (auto = one per CPU, capped by a container CPU limit); 1 = a single process, no cluster', parse: workers },
  { key: 'host', name: 'HOST', def: '0.0.0.0', accepts: 'a listen address', help: 'listen address', parse: nonEmpty },
  { key: 'port', name: 'PORT', def: '8000', accepts: 'an integer 0-65535', help: 'listen port (0 = any free port; the chosen port is logged)', parse: integer(0, 65535) },
  { key: 'timeoutMs', name: 'TIMEOUT', def: '300', accepts: SECONDS_POS, help: 'wait for the answer to begin (all attempts together, then 504) and for the next chunk of a stream; a stream that keeps producing is never cut', parse: seconds(0, false) },
  { key: 'connectTimeoutMs', name: 'CONNECT_TIMEOUT', def: '30', accepts: SECONDS_POS, help: 'seconds to establish an upstream connection', parse: seconds(0, false) },
  { key: 'maxRetries', name: 'MAX_RETRIES', def: '3', accepts: 'an integer >= 0', help: 'retries after the first attempt', parse: integer(0, 100) },
  { key: 'retryDelayMs', name: 'RETRY_DELAY', def: '1', accepts: SECONDS_NONNEG, help: 'base backoff; retry n waits RETRY_DELAY x 2^(n-1) +-20%', parse: seconds(0, true) },
  { key: 'retryMaxDelayMs', name: 'RETRY_MAX_DELAY', def: '30', accepts: SECONDS_NONNEG, help: 'cap on one backoff wait', parse: seconds(0, true) },
  { key: 'rateLimitEnabled', name: 'RATE_LIMIT_ENABLED', def: 'true', accepts: BOOL, help: 'token bucket per client', parse: bool },
  { key: 'rateLimitRequests', name: 'RATE_LIMIT_REQUESTS', def: '100', accepts: 'an integer >= 1', help: 'bucket size, refilled at this many per window', parse: integer(1) },
  { key: 'rateLimitWindowSec', name: 'RATE_LIMIT_WINDOW', def: '60', accepts: SECONDS_POS, help: 'window in seconds', parse: (raw) => { const ms = seconds(0, false)(raw); return ms === BAD ? BAD : (ms as number) / 1000; } },
  { key: 'tokenLimitTpm', name: 'TOKEN_LIMIT_TPM', def: '0', accepts: 'an integer >= 0 (0 = off)', help: "tokens per minute per client (key id, else address); 0 = off; a key's own tpm wins", parse: integer(0) },
  { key: 'maxTokensEstimate', name: 'MAX_TOKENS_ESTIMATE', def: '1024', accepts: 'an integer >= 1', help: 'completion tokens reserved for a request that names no max_tokens / max_completion_tokens / max_output_tokens', parse: integer(1) },
  { key: 'trustProxy', name: 'TRUST_PROXY', def: 'false', accepts: BOOL, help: 'take the client address from X-Forwarded-For (only behind a trusted balancer)', parse: bool },
  { key: 'breakerEnabled', name: 'CIRCUIT_BREAKER_ENABLED', def: 'true', accepts: BOOL, help: 'fail fast while the upstream is down', parse: bool },
  { key: 'breakerThreshold', name: 'CIRCUIT_BREAKER_THRESHOLD', def: '5', accepts: 'an integer >= 1', help: 'consecutive upstream failures that open the breaker', parse: integer(1) },
  { key: 'breakerOpenMs', name: 'CIRCUIT_BREAKER_TIMEOUT', def: '60', accepts: SECONDS_POS, help: 'seconds open before a half-open probe', parse: seconds(0, false) },
  { key: 'maxConcurrentRequests', name: 'MAX_CONCURRENT_REQUESTS', def: '0', accepts: 'an integer >= 0', help: 'cap on requests in flight to the upstream (0 = no cap); the rest queue', parse: integer(0) },
  { key: 'queueSize', name: 'QUEUE_SIZE', def: '100', accepts: 'an integer >= 0', help: 'requests that may wait for a slot; beyond it 503', parse: integer(0) },
  { key: 'queueTimeoutMs', name: 'QUEUE_TIMEOUT', def: '30', accepts: SECONDS_POS, help: 'longest wait for a slot before 503', parse: seconds(0, false) },
  { key: 'queueOrder', name: 'QUEUE_ORDER', def: 'fair', accepts: 'fair or fifo', help: 'which waiting request gets a free slot: fair (the client served least lately, by weight) or fifo (arrival order)', parse: queueOrder },
  { key: 'retryBudgetRatio', name: 'RETRY_BUDGET', def: '0.2', accepts: 'a number from 0 to 1', help: 'retries in flight allowed as a share of requests in flight (at least 3)', parse: ratio },
  { key: 'logLevel', name: 'LOG_LEVEL', def: 'INFO', accepts: 'DEBUG, INFO, WARNING or ERROR (any case)', help: 'application log level', parse: logLevel },
  { key: 'logStdout', name: 'LOG_STDOUT', def: 'true', accepts: BOOL, help: 'also write the application log to stdout (supervisord.conf turns it off: proxy.log has it)', parse: bool },
  { key: 'requestLogEnabled', name: 'REQUEST_LOG_ENABLED', def: 'true', accepts: BOOL, help: 'JSONL audit log LOG_DIR/requests.log', parse: bool },
  { key: 'metricsEnabled', name: 'METRICS_ENABLED', def: 'true', accepts: BOOL, help: '/metrics (404 when off)', parse: bool },
  { key: 'shutdownTimeoutMs', name: 'SHUTDOWN_TIMEOUT', def: '30', accepts: SECONDS_NONNEG, help: 'seconds to drain in-flight requests on SIGTERM/SIGINT', parse: seconds(0, true) },
  { key: 'logDir', name: 'LOG_DIR', def: 'logs', accepts: 'a directory path', help: 'where proxy.log and requests.log go', parse: nonEmpty },
  { key: 'logMaxBytes', name: 'LOG_MAX_SIZE', def: '0', accepts: 'bytes, optionally with a unit (k, m, g, KiB, MiB, GiB); 0 = off', help: 'rotate proxy.log and requests.log when they would grow past this size (0 = leave it to logrotate)', parse: (raw) => (raw.trim() === '0' ? 0 : bytes(raw)) },
  { key: 'logMaxFiles', name: 'LOG_MAX_FILES', def: '5', accepts: 'an integer 1-1000', help: 'rotated files kept per log (name.1 ... name.N)', parse: integer(1, 1000) },
  { key: 'upstreamHttp2', name: 'UPSTREAM_HTTP2', def: 'false', accepts: BOOL, help: 'HTTP/2 to the upstream (ALPN on https, prior knowledge on http)', parse: bool },
  { key: 'poolSize', name: 'POOL_SIZE', def: '1024', accepts: 'an integer >= 1', help: 'connections at most to each upstream (HTTP/1.1 sockets, or HTTP/2 sessions); idle ones are kept alive', parse: integer(1) },
  { key: 'maxRequestBodyBytes', name: 'MAX_REQUEST_BODY', def: '512MiB', accepts: 'bytes, optionally with a unit (k, m, g, KiB, MiB, GiB)', help: 'larger request bodies get 413', parse: bytes },
  { key: 'proxyApiKeys', name: 'PROXY_API_KEYS', def: '', secret: true, accepts: 'comma-separated keys (or id=key, optionally followed by limits), each at least 8 characters without spaces', help: 'client keys the proxy accepts (Bearer or api-key header), comma-separated id=key [rpm=N tpm=N max_parallel=N weight=X]; unset = no key needed', parse: apiKeys },
  { key: 'proxyApiKeysFile', name: 'PROXY_API_KEYS_FILE', def: '', accepts: 'a file path', help: 'file with one key a line: id=key [rpm=N tpm=N max_parallel=N weight=X], # comments; reread on SIGHUP', parse: optionalPath },
  { key: 'upstreamApiKey', name: 'UPSTREAM_API_KEY', def: '', secret: true, accepts: 'a token of at least 8 characters without spaces', help: "sent upstream as Bearer in place of the client's credentials; never shown or logged", parse: secretToken },
  { key: 'adminToken', name: 'ADMIN_TOKEN', def: '', secret: true, accepts: 'a token of at least 8 characters without spaces', help: '/metrics and /stats answer only a request bearing it (Bearer); / and /health stay open', parse: secretToken },
  { key: 'adminPort', name: 'ADMIN_PORT', def: '0', accepts: 'an integer 0-65535 (0 = off)', help: 'also serve /, /health, /metrics, /stats on 127.0.0.1:ADMIN_PORT, without ADMIN_TOKEN', parse: integer(0, 65535) },
  { key: 'clientTimeoutMs', name: 'CLIENT_TIMEOUT', def: '60', accepts: SECONDS_POS, help: 'a client must send its headers, and keep its body flowing, within this (slow clients are cut: 408)', parse: seconds(0, false) },
  { key: 'maxReplayBodyBytes', name: 'MAX_REPLAY_BODY', def: '16MiB', accepts: 'bytes, optionally with a unit (k, m, g, KiB, MiB, GiB)', help: 'request bodies up to this size are kept for retries; larger ones stream through and are not retried once sent', parse: bytes },
];

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Parse and validate; throws ConfigError listing every bad variable. */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const v of VARIABLES) {
    const given = env[v.name];
    const raw = given === undefined ? v.def : given;
    const value = v.parse(raw);
    const shown = v.secret ? '(value hidden)' : JSON.stringify(raw);
    if (value === BAD) problems.push(`config error: ${v.name}=${shown} is not accepted; expected ${v.accepts}`);
    else if (value instanceof Refused) for (const r of value.reasons) problems.push(`config error: ${v.name}=${shown}: ${r}`);
    else out[v.key] = value;
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const urls = Object.freeze(out.upstreamUrls as URL[]);
  out.upstreamUrls = urls;
  out.upstreamUrl = urls[0];
  return Object.freeze(out) as unknown as Config;
}

/** The text `node dist/main.js --help` prints. */
export function helpText(): string {
  const lines = [
    'openai-proxy: a reverse proxy for the OpenAI API in front of your own LLM servers.',
    '',
    'Usage: node dist/main.js            (configured by environment variables only)',
    '',
    'Environment variables (default in brackets):',
  ];
  for (const v of VARIABLES) lines.push(`  ${v.name.padEnd(26)} [${v.def === '' ? 'unset' : v.def}]  ${v.help}`);
  lines.push('', 'Endpoints: GET / , /health, /stats, /metrics; everything under /v1/ is forwarded.');
  return lines.join('\n');
}
