// `npm run demo` must stay true: the demo script starts the fake LLM and the proxy, prints
// curl examples that work, and stops cleanly on Ctrl-C (SIGINT).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, request, json } from './helpers.mjs';

test('the demo serves the README curl examples and stops on SIGINT', async () => {
  const proc = spawn(process.execPath, [join(ROOT, 'scripts', 'demo.mjs')], {
    env: { ...process.env, PORT: '0', FAKE_PORT: '0', LOG_DIR: mkdtempSync(join(tmpdir(), 'demo-')) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  const base = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /curl (http:\/\/127\.0\.0\.1:\d+)\/health/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.on('exit', () => reject(new Error(`demo exited: ${out}`)));
  });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  try {
    assert.equal((await request(`${base}/health`)).status, 200);
    const chat = await json(`${base}/v1/chat/completions`, { model: 'fake-model', messages: [{ role: 'user', content: 'Hello!' }] });
    assert.equal(chat.status, 200);
    assert.equal(JSON.parse(chat.body).object, 'chat.completion');
  } finally {
    proc.kill('SIGINT');
  }
  assert.equal(await exited, 0);
});
