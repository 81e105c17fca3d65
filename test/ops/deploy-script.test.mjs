// ./deploy.sh's promises, checked in seconds with stand-ins on PATH for npm, supervisord and
// supervisorctl (the real walk-through is supervisord.test.mjs): a clear message for an old
// Node, .env made once and never overwritten, exact install instructions when supervisord is
// missing, and the next command at the end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, run, show, which } from './helpers.mjs';

/**
 * A checkout with deploy.sh and .env.example, and a bin/ holding only the tools deploy.sh
 * uses: real coreutils, node (real or a stub), and stubs for npm and supervisor.
 */
function sandbox({ node = 'real', supervisor = null } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'oproxy-deploy-'));
  const bin = join(dir, 'bin');
  const app = join(dir, 'app');
  mkdirSync(bin);
  mkdirSync(app);
  copyFileSync(join(ROOT, 'deploy.sh'), join(app, 'deploy.sh'));
  copyFileSync(join(ROOT, '.env.example'), join(app, '.env.example'));
  for (const tool of ['bash', 'env', 'dirname', 'readlink', 'cp', 'chmod', 'mkdir', 'id', 'cat']) {
    const real = which(tool);
    assert.ok(real, `${tool} not found`);
    symlinkSync(real, join(bin, tool));
  }
  const stub = (name, body) => writeFileSync(join(bin, name), `#!${which('bash')}\n${body}\n`, { mode: 0o755 });
  if (node === 'real') symlinkSync(process.execPath, join(bin, 'node'));
  else stub('node', `echo ${node}`);
  stub('npm', `echo "npm $*" >> "${join(dir, 'npm.calls')}"; [ "$1" = --version ] && echo 10.0.0; exit 0`);
  if (supervisor) {
    stub('supervisord', 'echo 4.2.5');
    stub('supervisorctl', `exit ${supervisor === 'running' ? 0 : 4}`);
  }
  const deploy = (...args) => run(join(app, 'deploy.sh'), args, { cwd: app, env: { PATH: bin, HOME: dir }, timeout: 30_000 });
  const npmCalls = () => (existsSync(join(dir, 'npm.calls')) ? readFileSync(join(dir, 'npm.calls'), 'utf8') : '');
  return { app, deploy, npmCalls, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('--help explains it; an unknown argument is refused with exit 2', async () => {
  const s = sandbox();
  try {
    const help = await s.deploy('--help');
    assert.equal(help.code, 0, show(help));
    assert.match(help.stdout, /^Usage: \.\/deploy\.sh \[--install-supervisor\] \[--help\]/);
    const bad = await s.deploy('--frobnicate');
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /unknown argument: --frobnicate/);
    assert.equal(s.npmCalls(), '', 'nothing installed');
  } finally {
    s.cleanup();
  }
});

test('a Node.js older than 20.6 stops it before npm, naming the version needed', async () => {
  for (const version of ['18.19.0', '20.5.1']) {
    const s = sandbox({ node: version, supervisor: 'stopped' });
    try {
      const r = await s.deploy();
      assert.equal(r.code, 1, show(r));
      assert.match(r.stderr, new RegExp(`Node\\.js ${version.replaceAll('.', '\\.')} is too old: openai-proxy needs 20\\.6 or newer`));
      assert.equal(s.npmCalls(), '');
    } finally {
      s.cleanup();
    }
  }
});

test('without supervisord: builds, makes .env, then says exactly how to install supervisor', async () => {
  const s = sandbox();
  try {
    const r = await s.deploy();
    assert.equal(r.code, 1, show(r));
    assert.match(s.npmCalls(), /^npm --version\nnpm ci --no-audit --no-fund\nnpm run build\n$/);
    assert.ok(existsSync(join(s.app, 'logs')));
    assert.equal(readFileSync(join(s.app, '.env'), 'utf8'), readFileSync(join(s.app, '.env.example'), 'utf8'));
    assert.match(r.stderr, /supervisord not found/);
    assert.match(r.stderr, /apt-get install supervisor/);
    assert.match(r.stderr, /pip install supervisor/);
    assert.match(r.stderr, /--install-supervisor/);
  } finally {
    s.cleanup();
  }
});

test('with supervisord: ends with the next commands, and a second run keeps .env', async () => {
  const s = sandbox({ supervisor: 'stopped' });
  try {
    const first = await s.deploy();
    assert.equal(first.code, 0, show(first));
    assert.match(first.stdout, /created \.env from \.env\.example/);
    assert.match(first.stdout, /Done\. Start it with:\n {2}supervisord -c supervisord\.conf\n {2}supervisorctl -c supervisord\.conf status\n$/);
    writeFileSync(join(s.app, '.env'), 'UPSTREAM_URL=http://llm.internal:8000\n');
    const second = await s.deploy();
    assert.equal(second.code, 0, show(second));
    assert.match(second.stdout, /\.env exists: left as it is/);
    assert.equal(readFileSync(join(s.app, '.env'), 'utf8'), 'UPSTREAM_URL=http://llm.internal:8000\n');
  } finally {
    s.cleanup();
  }
});

test('when supervisord already runs for this checkout, it says to restart the program', async () => {
  const s = sandbox({ supervisor: 'running' });
  try {
    const r = await s.deploy();
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /already running[^\n]*\n {2}supervisorctl -c supervisord\.conf restart openai-proxy\n/);
  } finally {
    s.cleanup();
  }
});
