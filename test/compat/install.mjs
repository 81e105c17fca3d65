#!/usr/bin/env node
/**
 * Installs the pinned client libraries of the compatibility suite (clients.json, locked
 * by clients.lock.json) into a scratch folder outside the package: COMPAT_DIR, default
 * <tmpdir>/openai-proxy-compat, with `npm ci --prefix`. The project's own package.json
 * never names them. A folder already installed from the same manifest, lock and entry is
 * reused.
 *
 * Outcome: 'ok'; 'skip' when the npm registry cannot be reached (the install genuinely
 * cannot happen); 'fail' for anything else (a registry that answers must not be skipped).
 * Run directly it exits 0 (ok), 3 (skip) or 1 (fail).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCES = ['clients.json', 'clients.lock.json', 'entry.mjs'];

export function compatDir(env = process.env) {
  return env.COMPAT_DIR || join(tmpdir(), 'openai-proxy-compat');
}

function stampOf() {
  const h = createHash('sha256');
  for (const f of SOURCES) h.update(readFileSync(join(HERE, f)));
  return h.digest('hex');
}

function npm(args, opts = {}) {
  return spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { encoding: 'utf8', timeout: 300_000, ...opts });
}

/** @returns {{status: 'ok'|'skip'|'fail', dir: string, message: string}} */
export function ensureClients(dir = compatDir()) {
  const stampFile = join(dir, '.compat-stamp');
  const stamp = stampOf();
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp && existsSync(join(dir, 'clients.mjs'))) {
    return { status: 'ok', dir, message: `clients already installed in ${dir}` };
  }
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(HERE, 'clients.json'), join(dir, 'package.json'));
  copyFileSync(join(HERE, 'clients.lock.json'), join(dir, 'package-lock.json'));
  // --loglevel=error: the engines warnings are reported once, by the suite (see docs/clients.md)
  const ci = npm(['ci', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error']);
  if (ci.status !== 0) {
    const out = `${ci.stdout ?? ''}${ci.stderr ?? ''}${ci.error ? String(ci.error) : ''}`.trim().split('\n').slice(0, 12).join('\n');
    const ping = npm(['ping', '--prefix', dir], { timeout: 30_000 });
    if (ping.status !== 0) return { status: 'skip', dir, message: `the npm registry cannot be reached (npm ping failed), so the pinned clients cannot be installed:\n${out}` };
    return { status: 'fail', dir, message: `npm ci of the pinned clients failed although the registry answers:\n${out}` };
  }
  copyFileSync(join(HERE, 'entry.mjs'), join(dir, 'clients.mjs'));
  writeFileSync(stampFile, stamp);
  return { status: 'ok', dir, message: `clients installed in ${dir}` };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const r = ensureClients();
  console.log(r.message);
  process.exit(r.status === 'ok' ? 0 : r.status === 'skip' ? 3 : 1);
}
