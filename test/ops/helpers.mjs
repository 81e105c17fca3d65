// Shared by the operations tests: paths, a PATH lookup, bounded child processes, the
// compiled proxy on a free port, and polling with a deadline.
import { startProxy as startE2eProxy } from '../e2e/helpers.mjs';
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** CI clones the repo into a folder with a copy of shared/ beside it; so does development. */
export const SHARED = join(dirname(ROOT), 'shared');

/** Absolute path of an executable on PATH, or null. */
export function which(cmd, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, cmd);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * Runs a command to completion, killed after `timeout` ms. Never rejects on a non-zero
 * exit: resolves { code, signal, stdout, stderr, timedOut }.
 */
export function run(cmd, args, { cwd = ROOT, env = process.env, timeout = 60_000, input } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    if (input !== undefined) proc.stdin.end(input);
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeout);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Formats a run() result for an assertion message. */
export function show(r) {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}${r.timedOut ? ' after the timeout' : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** A TCP port free on 127.0.0.1 right now (below the ephemeral range: see deadPort). */
export { deadPort as freePort } from '../e2e/helpers.mjs';

/** Polls `fn` until it returns a truthy value; throws `message` after `timeout` ms. */
export async function waitFor(fn, { timeout = 20_000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** GET/POST with a deadline; resolves { status, text, json() }. */
export async function http(url, { method = 'GET', body, headers = {}, timeout = 10_000 } = {}) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeout),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** True while a process with this pid exists. */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * Starts the compiled proxy (dist/main.js) on 127.0.0.1 and a port the OS picks, as an
 * operator would: from the checkout, with nothing in its environment but PATH and `env`
 * (the e2e helper does the spawning). `stop()` also removes its log directory.
 * Returns { url, port, proc, stop() }.
 */
export async function startProxy({ env = {}, args = [] } = {}) {
  const main = join(ROOT, 'dist', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const proxy = await startE2eProxy({ LOG_DIR: mkdtempSync(join(tmpdir(), 'oproxy-ops-')), ...env }, { baseEnv: { PATH: process.env.PATH }, nodeArgs: args, cwd: ROOT });
  const stop = async () => {
    const result = await proxy.stop();
    rmSync(proxy.logDir, { recursive: true, force: true });
    return result;
  };
  return { url: proxy.url, port: proxy.port, proc: proxy.proc, stop };
}
