#!/usr/bin/env node
/**
 * A small analyser of V8 .cpuprofile files (`node --cpu-prof`): self time summed by function
 * (file:line, mapped back to src/*.ts through dist's source maps), inclusive time of the
 * proxy's own functions, and self time by category (proxy code by file, node internals by
 * module, native, GC, idle).
 *
 *   node scripts/bench/cpuprofile.mjs <file.cpuprofile> [--top=25]
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/**
 * Decode a source map's `mappings` into, per generated line, sorted segments
 * [genCol, sourceIndex, sourceLine, sourceCol].
 * @param {string} mappings
 */
function decodeMappings(mappings) {
  /** @type {number[][][]} */
  const lines = [];
  let src = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const line of mappings.split(';')) {
    /** @type {number[][]} */
    const segs = [];
    let genCol = 0;
    for (const seg of line.split(',')) {
      if (seg === '') continue;
      /** @type {number[]} */
      const vals = [];
      let value = 0;
      let shift = 0;
      for (const ch of seg) {
        const d = /** @type {number} */ (B64_INDEX.get(ch));
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += vals[0];
      if (vals.length >= 4) {
        src += vals[1];
        srcLine += vals[2];
        srcCol += vals[3];
        segs.push([genCol, src, srcLine, srcCol]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

/** @type {Map<string, {sources: string[], lines: number[][][]}|null>} */
const maps = new Map();

/**
 * `file.ts:line` for a generated position of a dist file, or null without a map.
 * @param {string} file  absolute path of the .js file
 * @param {number} line  0-based
 * @param {number} col   0-based
 */
function original(file, line, col) {
  if (!maps.has(file)) {
    let entry = null;
    try {
      if (existsSync(`${file}.map`)) {
        const m = JSON.parse(readFileSync(`${file}.map`, 'utf8'));
        const root = resolve(dirname(file), m.sourceRoot ?? '');
        entry = { sources: m.sources.map((/** @type {string} */ s) => resolve(root, s)), lines: decodeMappings(m.mappings) };
      }
    } catch {
      entry = null;
    }
    maps.set(file, entry);
  }
  const m = maps.get(file);
  if (!m) return null;
  const segs = m.lines[line];
  if (!segs || segs.length === 0) return null;
  let best = segs[0];
  for (const s of segs) {
    if (s[0] <= col) best = s;
    else break;
  }
  return { source: m.sources[best[1]], line: best[2] + 1 };
}

/** @param {string} url */
function urlToPath(url) {
  if (url.startsWith('file://')) {
    try {
      return fileURLToPath(url);
    } catch {
      return url;
    }
  }
  return url;
}

/**
 * @param {{functionName: string, url: string, lineNumber: number, columnNumber: number}} cf
 * @param {string} cwd
 */
function describe(cf, cwd) {
  const name = cf.functionName || '(anonymous)';
  if (!cf.url) return { name, where: '', category: categoryOf(name, '') };
  const path = urlToPath(cf.url);
  let where;
  const orig = cf.url.startsWith('file://') ? original(path, cf.lineNumber, cf.columnNumber) : null;
  if (orig) where = `${relative(cwd, orig.source)}:${orig.line}`;
  else where = `${cf.url.startsWith('file://') ? relative(cwd, path) : cf.url}:${cf.lineNumber + 1}`;
  return { name, where, category: categoryOf(name, where) };
}

/** @param {string} name @param {string} where */
function categoryOf(name, where) {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'program (V8/native, unattributed)';
  if (name === '(root)') return 'root';
  if (where === '') return 'native (C++ bindings, builtins)';
  if (where.startsWith('node:')) {
    const mod = where.slice(5).replace(/:\d+$/, '');
    if (/^(_http_|internal\/http|http)/.test(mod)) return 'node http';
    if (/streams|^stream/.test(mod)) return 'node streams';
    if (/^net|internal\/net|stream_base_commons|internal\/dtrace/.test(mod)) return 'node net';
    if (/timers|internal\/timers/.test(mod)) return 'node timers';
    if (/events|event_target|abort_controller/.test(mod)) return 'node events/abort';
    if (/crypto/.test(mod)) return 'node crypto';
    if (/fs|internal\/fs/.test(mod)) return 'node fs';
    if (/process\/task_queues|async_hooks|process\/promises/.test(mod)) return 'node task queues/promises';
    return `node other (${mod})`;
  }
  const src = /(?:^|\/)(?:src|dist)\/(.+?)\.(?:ts|js):\d+$/.exec(where);
  if (src) return `proxy ${src[1]}`;
  return `other ${where.replace(/:\d+$/, '')}`;
}

/**
 * @param {string} file  a .cpuprofile
 * @param {{cwd?: string, top?: number}} [opts]
 */
export function analyseProfile(file, opts = {}) {
  const cwd = opts.cwd ?? process.cwd();
  const top = opts.top ?? 25;
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  /** @type {Map<number, any>} */
  const byId = new Map(prof.nodes.map((/** @type {any} */ n) => [n.id, n]));
  /** @type {Map<number, number>} self µs per node */
  const selfUs = new Map();
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < deltas.length ? deltas[i + 1] : 0; // the time until the next sample
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

  /** @type {Map<string, {name: string, where: string, category: string, selfUs: number, totalUs: number}>} */
  const fns = new Map();
  /** @type {Map<number, string>} */
  const keyOf = new Map();
  for (const n of prof.nodes) {
    const d = describe(n.callFrame, cwd);
    const key = `${d.name}@${d.where}`;
    keyOf.set(n.id, key);
    if (!fns.has(key)) fns.set(key, { ...d, selfUs: 0, totalUs: 0 });
    /** @type {any} */ (fns.get(key)).selfUs += selfUs.get(n.id) ?? 0;
  }

  // inclusive time: a node's self plus its subtree, counted once per function on a path
  const root = prof.nodes[0];
  /** @type {Map<string, number>} */
  const onStack = new Map();
  /** @param {any} node @returns {number} */
  const walk = (node) => {
    const key = /** @type {string} */ (keyOf.get(node.id));
    onStack.set(key, (onStack.get(key) ?? 0) + 1);
    let sum = selfUs.get(node.id) ?? 0;
    for (const c of node.children ?? []) sum += walk(byId.get(c));
    const depth = /** @type {number} */ (onStack.get(key));
    if (depth === 1) /** @type {any} */ (fns.get(key)).totalUs += sum;
    onStack.set(key, depth - 1);
    return sum;
  };
  walk(root);

  const pct = (/** @type {number} */ us) => (totalUs ? (100 * us) / totalUs : 0);
  const idleUs = [...fns.values()].filter((f) => f.category === 'idle').reduce((a, f) => a + f.selfUs, 0);
  const busyUs = totalUs - idleUs;
  const list = [...fns.values()].filter((f) => f.category !== 'root');
  const selfTop = list
    .filter((f) => f.category !== 'idle')
    .sort((a, b) => b.selfUs - a.selfUs)
    .slice(0, top)
    .map((f) => ({ function: f.name, where: f.where, category: f.category, selfMs: f.selfUs / 1000, selfPctOfBusy: busyUs ? (100 * f.selfUs) / busyUs : 0 }));
  const proxyInclusive = list
    .filter((f) => f.category.startsWith('proxy '))
    .sort((a, b) => b.totalUs - a.totalUs)
    .slice(0, top)
    .map((f) => ({ function: f.name, where: f.where, totalMs: f.totalUs / 1000, totalPctOfBusy: busyUs ? (100 * f.totalUs) / busyUs : 0, selfMs: f.selfUs / 1000 }));
  /** @type {Map<string, number>} */
  const cats = new Map();
  for (const f of list) if (f.category !== 'idle') cats.set(f.category, (cats.get(f.category) ?? 0) + f.selfUs);
  const categories = [...cats.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([category, us]) => ({ category, selfMs: us / 1000, pctOfBusy: busyUs ? (100 * us) / busyUs : 0 }));
  return { file, sampledMs: totalUs / 1000, busyMs: busyUs / 1000, idlePct: pct(idleUs), selfTop, proxyInclusive, categories };
}

/** @param {ReturnType<typeof analyseProfile>} a */
export function formatAnalysis(a, top = 25) {
  const lines = [];
  lines.push(`profile ${a.file}: ${a.sampledMs.toFixed(0)} ms sampled, ${a.busyMs.toFixed(0)} ms busy (${a.idlePct.toFixed(1)}% idle)`);
  lines.push('', `Top self time (% of busy time):`, '', '| self ms | % | function | where |', '| ---: | ---: | --- | --- |');
  for (const f of a.selfTop.slice(0, top)) lines.push(`| ${f.selfMs.toFixed(1)} | ${f.selfPctOfBusy.toFixed(1)} | \`${f.function}\` | ${f.where || '(native)'} |`);
  lines.push('', 'Self time by category:', '', '| self ms | % | category |', '| ---: | ---: | --- |');
  for (const c of a.categories.slice(0, 30)) lines.push(`| ${c.selfMs.toFixed(1)} | ${c.pctOfBusy.toFixed(1)} | ${c.category} |`);
  lines.push('', "Inclusive time of the proxy's own functions:", '', '| total ms | % | self ms | function | where |', '| ---: | ---: | ---: | --- | --- |');
  for (const f of a.proxyInclusive.slice(0, top)) lines.push(`| ${f.totalMs.toFixed(1)} | ${f.totalPctOfBusy.toFixed(1)} | ${f.selfMs.toFixed(1)} | \`${f.function}\` | ${f.where} |`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node scripts/bench/cpuprofile.mjs <file.cpuprofile> [--top=N]\n');
    process.exit(2);
  }
  const topArg = process.argv.find((a) => a.startsWith('--top='));
  const top = topArg ? Number(topArg.slice(6)) : 25;
  process.stdout.write(formatAnalysis(analyseProfile(file, { top }), top) + '\n');
}
