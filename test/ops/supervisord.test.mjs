// The README's supervisord path, for real, as a new user would walk it: a fresh clone,
// ./deploy.sh, a .env, `supervisord -c supervisord.conf`; then the proxy serves, drains on
// `supervisorctl stop`, starts again, comes back after a kill -9, has its logs rotated by
// deploy/logrotate.conf, and goes away with `supervisorctl shutdown`.
//
// The clone is of committed HEAD (in CI, the submission). Files not committed yet (changed
// or new, not ignored) are copied over it, so the test also runs before a commit; in a clean
// checkout there are none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { startFakeUpstream } from '../../scripts/fake-upstream.mjs';
import { ROOT, alive, freePort, http, run, show, waitFor, which } from './helpers.mjs';

const SUPERVISORD = which('supervisord');
const SUPERVISORCTL = which('supervisorctl');

/** supervisord gets a bare environment: variables in it would win over .env (node --env-file). */
const BARE_ENV = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/', LANG: 'C.UTF-8' };

test('deploy.sh on a fresh clone, then supervisord runs, drains, restarts and stops the proxy', { timeout: 10 * 60_000 }, async (t) => {
  if (!SUPERVISORD || !SUPERVISORCTL) return t.skip('supervisord not installed (Debian package supervisor)');
  const tmp = mkdtempSync(join(tmpdir(), 'oproxy-sv-'));
  const dir = join(tmp, 'openai-proxy');
  const logs = join(dir, 'logs');
  const readLog = (name) => (existsSync(join(logs, name)) ? readFileSync(join(logs, name), 'utf8') : '');
  const ctl = (...args) => run(SUPERVISORCTL, ['-c', 'supervisord.conf', ...args], { cwd: dir, env: BARE_ENV, timeout: 90_000 });
  const childPid = async () => Number((await ctl('pid', 'openai-proxy')).stdout.trim()) || 0;
  const childPids = new Set();
  let fake = null;
  let base = '';
  let failed = null;
  const step = (name, fn) =>
    t.test(name, { skip: failed ? `an earlier step failed (${failed})` : false }, async (st) => {
      try {
        await fn(st);
      } catch (err) {
        failed = name;
        throw err;
      }
    });

  try {
    await step('git clone, then ./deploy.sh builds it, makes logs/ and .env', async (st) => {
      const clone = await run('git', ['clone', '--quiet', ROOT, dir], { timeout: 60_000 });
      assert.equal(clone.code, 0, show(clone));
      const pending = await run('git', ['ls-files', '--modified', '--others', '--exclude-standard', '-z'], { timeout: 30_000 });
      const files = pending.stdout.split('\0').filter((f) => f && existsSync(join(ROOT, f)));
      for (const f of files) {
        mkdirSync(dirname(join(dir, f)), { recursive: true });
        copyFileSync(join(ROOT, f), join(dir, f));
      }
      if (files.length) st.diagnostic(`copied ${files.length} uncommitted files over the clone`);
      chmodSync(join(dir, 'deploy.sh'), 0o755);

      const started = Date.now();
      const deploy = await run('./deploy.sh', [], { cwd: dir, timeout: 5 * 60_000 });
      st.diagnostic(`./deploy.sh took ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(deploy.code, 0, show(deploy));
      assert.match(deploy.stdout, /supervisord -c supervisord\.conf\n\s+supervisorctl -c supervisord\.conf status\n$/);
      assert.ok(existsSync(join(dir, 'dist', 'main.js')), 'dist/main.js built');
      assert.ok(existsSync(logs), 'logs/ made');
      assert.equal(readFileSync(join(dir, '.env'), 'utf8'), readFileSync(join(dir, '.env.example'), 'utf8'), '.env made from .env.example');
    });

    await step('./deploy.sh again keeps the .env it finds', async () => {
      fake = await startFakeUpstream();
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      const env = `# written by the test\nUPSTREAM_URL=${fake.url}\nHOST=127.0.0.1\nPORT=${port}\nSHUTDOWN_TIMEOUT=5\nLOG_LEVEL=INFO\n`;
      writeFileSync(join(dir, '.env'), env);
      const again = await run('./deploy.sh', [], { cwd: dir, timeout: 5 * 60_000 });
      assert.equal(again.code, 0, show(again));
      assert.match(again.stdout, /\.env exists: left as it is/);
      assert.equal(readFileSync(join(dir, '.env'), 'utf8'), env);
    });

    await step('supervisord -c supervisord.conf starts the proxy: /health, /stats, a chat completion', async () => {
      const sv = await run(SUPERVISORD, ['-c', 'supervisord.conf'], { cwd: dir, env: BARE_ENV, timeout: 30_000 });
      assert.equal(sv.code, 0, show(sv));
      await waitFor(async () => (await http(`${base}/health`, { timeout: 2000 })).status === 200, { timeout: 30_000, message: `/health on ${base}\n${readLog('proxy.err.log')}` });
      childPids.add(await childPid());
      const health = await http(`${base}/health`);
      assert.equal(health.json().status, 'ok');
      assert.equal((await http(`${base}/stats`)).status, 200);
      const chat = await http(`${base}/v1/chat/completions`, { method: 'POST', body: { model: 'fake-model', messages: [{ role: 'user', content: 'Hello!' }] } });
      assert.equal(chat.status, 200, chat.text);
      assert.equal(chat.json().object, 'chat.completion');
      assert.equal(fake.stats.completed, 1, 'the request reached the fake upstream');
      await waitFor(async () => /RUNNING/.test((await ctl('status', 'openai-proxy')).stdout), { timeout: 15_000, message: 'status RUNNING (after startsecs)' });
      assert.match(readLog('proxy.log'), /"msg":"listening"/);
      assert.doesNotMatch(readLog('proxy.out.log'), /"msg":"listening"/, 'LOG_STDOUT=false: the application log is not doubled into proxy.out.log');
      assert.match(readLog('requests.log'), /"path":"\/v1\/chat\/completions"/);
    });

    await step('supervisorctl stop drains an in-flight stream, and the proxy exits 0', async () => {
      const stream = http(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'x-fake-chunks': '10', 'x-fake-chunk-delay-ms': '200' },
        body: { model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'Hello!' }] },
        timeout: 30_000,
      });
      await waitFor(() => fake.stats.attempts >= 2, { message: 'the stream to reach the upstream' });
      const started = Date.now();
      const stop = await ctl('stop', 'openai-proxy');
      const took = Date.now() - started;
      assert.equal(stop.code, 0, show(stop));
      const answer = await stream;
      assert.equal(answer.status, 200);
      assert.match(answer.text, /data: \[DONE\]\n\n$/, 'the stream in flight ran to its end');
      assert.ok(took < 10_000, `stop took ${took} ms`);
      assert.match((await ctl('status', 'openai-proxy')).stdout, /STOPPED/);
      assert.match(readLog('supervisord.log'), /stopped: openai-proxy \(exit status 0\)/);
      assert.match(readLog('proxy.log'), /"msg":"draining","signal":"SIGTERM","in_flight":1/);
      assert.match(readLog('proxy.log'), /"msg":"stopped"/);
    });

    await step('supervisorctl start serves again', async () => {
      const start = await ctl('start', 'openai-proxy');
      assert.equal(start.code, 0, show(start));
      assert.match((await ctl('status', 'openai-proxy')).stdout, /RUNNING/);
      childPids.add(await childPid());
      assert.equal((await http(`${base}/health`)).status, 200);
    });

    await step('kill -9 of the proxy: supervisord starts a new one', async () => {
      const before = await childPid();
      assert.ok(before > 0);
      process.kill(before, 'SIGKILL');
      const after = await waitFor(async () => {
        const pid = await childPid();
        return pid > 0 && pid !== before && pid;
      }, { timeout: 20_000, message: 'a new proxy pid' });
      childPids.add(after);
      await waitFor(async () => (await http(`${base}/health`, { timeout: 2000 })).status === 200, { timeout: 20_000, message: '/health after the restart' });
      assert.match(readLog('supervisord.log'), /exited: openai-proxy \(terminated by SIGKILL; not expected\)/);
    });

    await step('deploy/logrotate.conf rotates proxy.log and requests.log; SIGHUP reopens them', async (st) => {
      const logrotate = which('logrotate', `${process.env.PATH}:/usr/sbin:/sbin`);
      if (!logrotate) return st.skip('logrotate not installed (Debian package logrotate)');
      // As the header of deploy/logrotate.conf says: the checkout's path, this user.
      const user = userInfo();
      const group = (await run('id', ['-gn'])).stdout.trim();
      const conf = readFileSync(join(dir, 'deploy', 'logrotate.conf'), 'utf8')
        .replaceAll('/opt/openai-proxy', dir)
        .replace(/^ {2}su .*$/m, user.uid === 0 ? `  su ${user.username} ${group}` : '');
      writeFileSync(join(tmp, 'logrotate.conf'), conf, { mode: 0o644 });
      const r = await run(logrotate, ['-f', '-s', join(tmp, 'logrotate.state'), join(tmp, 'logrotate.conf')], { env: BARE_ENV, timeout: 60_000 });
      assert.equal(r.code, 0, show(r));
      const rotated = readdirSync(logs).filter((f) => /^(proxy|requests)\.log-\d{8}-\d+$/.test(f));
      assert.equal(rotated.length, 2, `rotated files: ${readdirSync(logs)}`);
      await waitFor(() => /"msg":"log files reopened"/.test(readLog('proxy.log')), { timeout: 10_000, message: 'the proxy to reopen proxy.log' });
      assert.doesNotMatch(readLog('proxy.log'), /"msg":"listening"/, 'proxy.log is a new file');
      const chat = await http(`${base}/v1/chat/completions`, { method: 'POST', body: { model: 'fake-model', messages: [{ role: 'user', content: 'again' }] } });
      assert.equal(chat.status, 200);
      await waitFor(() => readLog('requests.log').includes('"status":200'), { timeout: 10_000, message: 'a line in the new requests.log' });
    });

    await step('supervisorctl shutdown stops the proxy and supervisord', async () => {
      const svPid = Number(readFileSync(join(logs, 'supervisord.pid'), 'utf8'));
      const down = await ctl('shutdown');
      assert.equal(down.code, 0, show(down));
      await waitFor(() => !alive(svPid), { timeout: 60_000, message: 'supervisord to exit' });
      for (const pid of childPids) assert.ok(!alive(pid), `proxy pid ${pid} still alive`);
      assert.match(readLog('supervisord.log'), /stopped: openai-proxy \(exit status 0\)[\s\S]*stopped: openai-proxy \(exit status 0\)/);
    });
  } finally {
    // Whatever happened: no supervisord, no proxy, no temp dir left behind.
    const pidFile = join(logs, 'supervisord.pid');
    const svPid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (svPid && alive(svPid)) {
      await ctl('shutdown').catch(() => {});
      await waitFor(() => !alive(svPid), { timeout: 60_000 }).catch(() => process.kill(svPid, 'SIGKILL'));
    }
    for (const pid of childPids) if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    await fake?.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
