#!/usr/bin/env node
/**
 * The compatibility suite in one command (`npm run test:compat`): installs the pinned
 * client libraries into COMPAT_DIR when they are missing (install.mjs), builds nothing
 * (run `npm run build` first; the npm script does), runs test/compat/*.test.mjs against
 * dist/main.js and the fake upstream, then prints what it measured as a table (the one in
 * docs/clients.md) and how long it took.
 *
 * Exit: 0 when every test passed, or when the registry cannot be reached to install the
 * clients (then it says SKIP, loudly); 1 otherwise.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureClients } from './install.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const started = performance.now();

const install = ensureClients();
if (install.status === 'skip') {
  const bar = '!'.repeat(78);
  console.log(`${bar}\nSKIP compat suite: ${install.message}\n${bar}`);
  process.exit(0);
}
if (install.status === 'fail') {
  console.error(`compat suite: ${install.message}`);
  process.exit(1);
}
console.log(install.message);
if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  console.error('compat suite: dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}

const { packages } = await import(pathToFileURL(join(install.dir, 'clients.mjs')).href);
const major = Number(process.versions.node.split('.')[0]);
for (const [name, p] of Object.entries(packages)) {
  const floor = /^>=\s*(\d+)/.exec(p.node ?? '')?.[1];
  const note = floor && Number(floor) > major ? `  (declares node ${p.node}; running on ${process.version})` : '';
  console.log(`  ${name} ${p.version}${note}`);
}

const results = join(install.dir, 'results');
rmSync(results, { recursive: true, force: true });
const files = readdirSync(HERE).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => join(HERE, f));
const code = await new Promise((resolve) => {
  const p = spawn(process.execPath, ['--test', '--test-concurrency=4', ...files], { stdio: 'inherit', env: { ...process.env, COMPAT_DIR: install.dir, COMPAT_RESULTS: results } });
  p.on('exit', (c) => resolve(c ?? 1));
});

const table = renderTable(readResults(results), packages);
writeFileSync(join(install.dir, 'results.md'), table);
console.log(`\n${table}`);
console.log(`compat suite: ${code === 0 ? 'passed' : 'FAILED'} in ${((performance.now() - started) / 1000).toFixed(1)} s (table also in ${join(install.dir, 'results.md')})`);
process.exit(code === 0 ? 0 : 1);

function readResults(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
}

/** The client × behaviour table, from the measurements the tests recorded. */
function renderTable(rows, pkgs) {
  const clients = [
    ['openai', `openai ${pkgs.openai.version}`],
    ['vercel-ai', `ai ${pkgs.ai.version} + @ai-sdk/openai ${pkgs['@ai-sdk/openai'].version}`],
    ['langchain', `@langchain/openai ${pkgs['@langchain/openai'].version}`],
  ];
  const get = (client, scenario, extra = {}) => rows.find((r) => r.client === client && r.scenario === scenario && Object.entries(extra).every(([k, v]) => r[k] === v));
  const down = (client, phase) => {
    const cell = (setting) => {
      const r = get(client, 'upstream_down', { setting, phase });
      if (!r) return '?';
      const wait = r.waitedS > 0 ? `, ${r.waitedS >= 10 ? Math.round(r.waitedS) : r.waitedS.toFixed(1)} s of backoff` : '';
      return `${r.requests} request${r.requests === 1 ? '' : 's'} (${r.upstreamAttempts} upstream attempt${r.upstreamAttempts === 1 ? '' : 's'})${wait}`;
    };
    return `default: ${cell('default')}; maxRetries 0: ${cell('maxRetries: 0')}`;
  };
  const limited = (client) => `default: ${get(client, 'rate_limited', { setting: 'default' })?.summary ?? '?'}; maxRetries 0: ${get(client, 'rate_limited', { setting: 'maxRetries: 0' })?.summary ?? '?'}`;
  const lines = [
    '| client | broken chat stream | broken Responses stream | upstream down, first caller | upstream down, breaker open | 429 from the limiter | abort mid-stream |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [id, label] of clients) {
    lines.push(`| ${label} | ${get(id, 'broken_stream')?.summary ?? '?'} | ${get(id, 'broken_responses_stream')?.summary ?? '?'} | ${down(id, 'first')} | ${down(id, 'open')} | ${limited(id)} | ${get(id, 'abort')?.summary ?? '?'} |`);
  }
  return `${lines.join('\n')}\n`;
}
