/**
 * Child processes of the benchmark, and what /proc says about them.
 *
 * Every process is spawned in its own process group (detached) and registered here, so
 * that `killAll()` can end each of them, and whatever it forked (nginx's worker), by its
 * own id: at the end of a run, on an error, and on Ctrl-C. Nothing is ever killed by name.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** @type {Set<import('node:child_process').ChildProcess>} */
const live = new Set();

/**
 * Spawn `cmd args` with the soft open-files limit raised to the hard one (10,000 streams need
 * 20,000+ descriptors in a proxy). The `exec` keeps the pid: it is the program's own.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{env?: NodeJS.ProcessEnv, cwd?: string, nofile?: number, stdin?: boolean}} [opts]
 */
export function start(cmd, args, opts = {}) {
  const limit = opts.nofile ? String(opts.nofile) : '$(ulimit -Hn)';
  const child = spawn('bash', ['-c', `ulimit -n ${limit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`, 'bench-child', cmd, ...args], {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  /** @type {string[]} */
  const tail = [];
  const keep = (/** @type {Buffer} */ b) => {
    tail.push(b.toString('utf8'));
    if (tail.length > 40) tail.shift();
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', keep);
  return Object.assign(child, { tail });
}

/**
 * Calls `fn` with each complete line a stream emits (without its LF); returns the unsubscribe.
 * @param {NodeJS.ReadableStream | null} stream
 * @param {(line: string) => void} fn
 */
export function onLines(stream, fn) {
  let buf = '';
  let stopped = false;
  const onData = (/** @type {Buffer} */ b) => {
    buf += b.toString('utf8');
    for (let nl = buf.indexOf('\n'); nl >= 0 && !stopped; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      fn(line);
    }
  };
  stream?.on('data', onData);
  return () => {
    stopped = true;
    stream?.off('data', onData);
  };
}

/**
 * Resolve with the first stdout line `pick` accepts (returns non-undefined for), or reject
 * when the process exits first or `timeoutMs` passes.
 * @template T
 * @param {import('node:child_process').ChildProcess & {tail: string[]}} child
 * @param {(line: string) => T | undefined} pick
 * @param {string} what
 * @returns {Promise<T>}
 */
export function waitForLine(child, pick, what, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const stopLines = onLines(child.stdout, (line) => {
      let got;
      try {
        got = pick(line);
      } catch {
        got = undefined;
      }
      if (got === undefined) return;
      done();
      resolve(got);
    });
    const onExit = (/** @type {number|null} */ code, /** @type {string|null} */ sig) => {
      done();
      reject(new Error(`${what} exited (${code ?? sig}) before it was ready:\n${child.tail.join('').slice(-3000)}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} not ready within ${timeoutMs} ms:\n${child.tail.join('').slice(-3000)}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      stopLines();
      child.off('exit', onExit);
    };
    child.once('exit', onExit);
  });
}

/**
 * Ask a child to stop (SIGTERM to it alone), wait up to `graceMs`, then SIGKILL its group.
 * @param {import('node:child_process').ChildProcess} child
 */
export async function stop(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child);
    return;
  }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    process.kill(/** @type {number} */ (child.pid), 'SIGTERM');
  } catch {
    // already gone
  }
  const timer = setTimeout(() => killGroup(child), graceMs);
  await exited;
  clearTimeout(timer);
  killGroup(child); // whatever it forked and left behind
}

/** @param {import('node:child_process').ChildProcess} child */
function killGroup(child) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is empty
  }
}

/**
 * Register a child spawned elsewhere (detached, in its own group) for killAll().
 * @param {import('node:child_process').ChildProcess} child
 */
export function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** Kill every process this benchmark started (synchronous: usable in an 'exit' handler). */
export function killAll() {
  for (const child of live) {
    killGroup(child);
    try {
      child.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  live.clear();
}

let ticks = 0;
/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
export function clockTicks() {
  if (ticks === 0) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/**
 * utime + stime of a process, in microseconds (0 when it is gone).
 * @param {number} pid
 */
export function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name, which is in parentheses and may hold spaces
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1e6) / clockTicks();
  } catch {
    return 0;
  }
}

/**
 * utime + stime + cutime + cstime of a process (its own CPU and that of its reaped
 * children), in microseconds (0 when it is gone).
 * @param {number} pid
 */
function cpuWithChildrenMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) * 1e6) / clockTicks();
  } catch {
    return 0;
  }
}

/** CPU used so far by this process and every descendant, live or reaped, in µs. */
export function ownTreeCpuMicros() {
  return processTree(process.pid).reduce((a, p) => a + cpuWithChildrenMicros(p), 0);
}

/** CPU time the whole machine spent busy so far (all CPUs, /proc/stat), in µs. */
export function machineBusyMicros() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest is inside user)
    return ((v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] ?? 0)) * 1e6) / clockTicks();
  } catch {
    return 0;
  }
}

/**
 * Measures what the rest of the machine (anything this benchmark did not start) burns.
 * `stop()` returns the average number of cores it used since `backgroundMeter()`.
 */
export function backgroundMeter() {
  const t0 = Date.now();
  const m0 = machineBusyMicros();
  const o0 = ownTreeCpuMicros();
  return {
    stop() {
      const seconds = (Date.now() - t0) / 1000;
      const other = machineBusyMicros() - m0 - (ownTreeCpuMicros() - o0);
      return seconds > 0 ? Math.max(0, other / 1e6 / seconds) : 0;
    },
  };
}

/**
 * A field of /proc/<pid>/status in bytes (VmRSS, VmHWM), 0 when unreadable.
 * @param {number} pid
 * @param {'VmRSS'|'VmHWM'} field
 */
export function statusBytes(pid, field = 'VmRSS') {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** @param {number} pid */
export function openFds(pid) {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/**
 * The process and its descendants (nginx: the master and its worker).
 * @param {number} pid
 * @returns {number[]}
 */
export function processTree(pid) {
  /** @type {Map<number, number[]>} */
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]) ?? []));
  return out;
}

/** @param {number} pid */
export function softNofile(pid) {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : 0;
  } catch {
    return 0;
  }
}

/** Is `cmd` on the PATH? @param {string} cmd */
export function which(cmd) {
  try {
    return execFileSync('bash', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** The environment of every child of the benchmark: nothing inherited that would change what is measured. */
export const baseEnv = () => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' });

/**
 * One run of the load generator (loadgen.mjs, a process of its own, so it never competes
 * with the measuring process): resolves with its result. `onReady` runs between the warm-up
 * and the measured part (read the counters there, then it goes); any other event it prints
 * goes to `onEvent`.
 * @param {any} spec
 * @param {(event: any) => void} [onEvent]
 * @param {() => void} [onReady]
 */
export function runLoadgen(spec, onEvent, onReady) {
  const child = start(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'loadgen.mjs'), JSON.stringify(spec)], { env: baseEnv(), stdin: true });
  return new Promise((resolve, reject) => {
    /** @type {any} */
    let result = null;
    onLines(child.stdout, (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        return;
      }
      if (ev.event === 'result') result = ev;
      else if (ev.event === 'ready') {
        onReady?.(); // the warm-up is over: read the counters, then let it go
        child.stdin?.write('go\n');
      } else onEvent?.(ev);
    });
    child.once('exit', (code) => {
      if (result) resolve(result);
      else reject(new Error(`load generator failed (${code}):\n${child.tail.join('').slice(-3000)}`));
    });
  });
}
