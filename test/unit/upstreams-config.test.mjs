// Which upstreams the config names: UPSTREAMS_FILE (every problem at once, one line each,
// naming the file and the entry) or UPSTREAM_URL's list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../dist/config.js';
import { upstreamSpecs, parseUpstreamsFile, defaultName, UpstreamsConfigError } from '../../dist/upstream/upstreams-config.js';

const FILE = '/etc/llm.json';
const plain = (specs) => specs.map((s) => ({ ...s, url: s.url.href }));

/** The problem lines parseUpstreamsFile throws for `doc` (JSON-encoded unless a string). */
function problems(doc) {
  try {
    parseUpstreamsFile(FILE, typeof doc === 'string' ? doc : JSON.stringify(doc));
  } catch (err) {
    assert.ok(err instanceof UpstreamsConfigError, String(err));
    assert.equal(err.message, err.problems.join('\n'));
    return err.problems;
  }
  assert.fail('should throw');
}

/** upstreamSpecs with UPSTREAMS_FILE read from `files` (a missing path reads like ENOENT). */
function specsFrom(env, files = {}) {
  const read = (path) => {
    if (!(path in files)) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT' });
    return files[path];
  };
  return upstreamSpecs(parseConfig(env), read);
}

test('a default name is host:port with the port always written, IPv6 in brackets', () => {
  assert.equal(defaultName(new URL('http://127.0.0.1:8000/v1')), '127.0.0.1:8000');
  assert.equal(defaultName(new URL('http://llm.internal')), 'llm.internal:80');
  assert.equal(defaultName(new URL('https://LLM.Internal/openai')), 'llm.internal:443');
  assert.equal(defaultName(new URL('https://llm.internal:443')), 'llm.internal:443');
  assert.equal(defaultName(new URL('http://[::1]:8000')), '[::1]:8000');
});

test('only url is required: name, weight, models and max_concurrent take their defaults', () => {
  const specs = parseUpstreamsFile(FILE, JSON.stringify([
    { url: 'http://127.0.0.1:8000' },
    { url: 'https://gpu-b.internal/openai', name: 'gpu-b', weight: 2.5, models: ['llama-3-70b', 'qwen2', 'llama-3-70b'], max_concurrent: 8 },
    { url: 'http://[::1]:8001', max_concurrent: 0 },
  ]));
  assert.deepEqual(plain(specs), [
    { name: '127.0.0.1:8000', url: 'http://127.0.0.1:8000/', weight: 1, models: null, maxConcurrent: 0 },
    { name: 'gpu-b', url: 'https://gpu-b.internal/openai', weight: 2.5, models: ['llama-3-70b', 'qwen2'], maxConcurrent: 8 },
    { name: '[::1]:8001', url: 'http://[::1]:8001/', weight: 1, models: null, maxConcurrent: 0 },
  ]);
});

test('a leading byte-order mark is not an error', () => {
  assert.equal(parseUpstreamsFile(FILE, '\uFEFF[{"url": "http://a:1"}]')[0].name, 'a:1');
});

test('a file that is not a non-empty JSON array is one line naming the file', () => {
  const cases = [
    ['', /^config error: UPSTREAMS_FILE=\/etc\/llm\.json: is not JSON: /],
    ['[{"url": "http://a:1"},]', /^config error: UPSTREAMS_FILE=\/etc\/llm\.json: is not JSON: /],
    [{ url: 'http://a:1' }, /^config error: UPSTREAMS_FILE=\/etc\/llm\.json: must be a JSON array of upstreams such as \[\{"url": "http:\/\/gpu-a\.internal:8000"\}\], got an object$/],
    ['"http://a:1"', /: must be a JSON array of upstreams .*, got a string "http:\/\/a:1"$/],
    ['null', /: must be a JSON array of upstreams .*, got null$/],
    [[], /^config error: UPSTREAMS_FILE=\/etc\/llm\.json: is an empty array; name at least one upstream$/],
  ];
  for (const [doc, line] of cases) {
    const p = problems(doc);
    assert.equal(p.length, 1, JSON.stringify(doc));
    assert.match(p[0], line);
  }
});

test('each kind of bad entry is named with its number, its name when known, and the value', () => {
  const cases = [
    ['http://a:1', 'entry 1: must be an object such as {"url": "http://gpu-a.internal:8000"}, got a string "http://a:1"'],
    [null, 'entry 1: must be an object such as {"url": "http://gpu-a.internal:8000"}, got null'],
    [[{ url: 'http://a:1' }], 'entry 1: must be an object such as {"url": "http://gpu-a.internal:8000"}, got an array'],
    [{ name: 'gpu-a' }, 'entry 1 (gpu-a): url is required'],
    [{ url: 8000 }, 'entry 1: url must be an http:// or https:// URL without credentials, query or fragment, got 8000'],
    [{ url: 'ftp://a:1' }, 'entry 1: url must be an http:// or https:// URL without credentials, query or fragment, got "ftp://a:1"'],
    [{ url: 'http://user:pw@a:1', name: 'a' }, 'entry 1 (a): url must be an http:// or https:// URL without credentials, query or fragment, got "http://user:pw@a:1"'],
    [{ url: 'http://a:1/?x=1' }, 'entry 1: url must be an http:// or https:// URL without credentials, query or fragment, got "http://a:1/?x=1"'],
    [{ url: 'http://a:1/#top' }, 'entry 1: url must be an http:// or https:// URL without credentials, query or fragment, got "http://a:1/#top"'],
    [{ url: 'not a url' }, 'entry 1: url must be an http:// or https:// URL without credentials, query or fragment, got "not a url"'],
    [{ url: 'http://a:1', name: '' }, 'entry 1: name must be 1-64 characters of [A-Za-z0-9_.:@[]-], got ""'],
    [{ url: 'http://a:1', name: 'gpu a' }, 'entry 1: name must be 1-64 characters of [A-Za-z0-9_.:@[]-], got "gpu a"'],
    [{ url: 'http://a:1', name: 'x'.repeat(65) }, `entry 1: name must be 1-64 characters of [A-Za-z0-9_.:@[]-], got "${'x'.repeat(65)}"`],
    [{ url: 'http://a:1', name: 'a"b' }, 'entry 1: name must be 1-64 characters of [A-Za-z0-9_.:@[]-], got "a\\"b"'],
    [{ url: 'http://a:1', name: 7 }, 'entry 1: name must be a string, got 7'],
    [{ url: 'http://a"b:1' }, 'entry 1: its name "a\\"b:1" (host:port of its url) has characters outside [A-Za-z0-9_.:@[]-]; give it a name'],
    [{ url: 'http://a:1', weight: 0 }, 'entry 1 (a:1): weight must be a number > 0, got 0'],
    [{ url: 'http://a:1', weight: -2 }, 'entry 1 (a:1): weight must be a number > 0, got -2'],
    [{ url: 'http://a:1', weight: '2' }, 'entry 1 (a:1): weight must be a number > 0, got "2"'],
    [{ url: 'http://a:1', weight: null }, 'entry 1 (a:1): weight must be a number > 0, got null'],
    ['[{"url": "http://a:1", "weight": 1e999}]', 'entry 1 (a:1): weight must be a number > 0, got Infinity'],
    [{ url: 'http://a:1', models: 'llama' }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got "llama"'],
    [{ url: 'http://a:1', models: [] }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got []'],
    [{ url: 'http://a:1', models: ['llama', ''] }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got ["llama",""]'],
    [{ url: 'http://a:1', models: [' llama'] }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got [" llama"]'],
    [{ url: 'http://a:1', models: ['llama', 3] }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got ["llama",3]'],
    [{ url: 'http://a:1', models: null }, 'entry 1 (a:1): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got null'],
    [{ url: 'http://a:1', max_concurrent: -1 }, 'entry 1 (a:1): max_concurrent must be an integer >= 0 (0 = no cap), got -1'],
    [{ url: 'http://a:1', max_concurrent: 1.5 }, 'entry 1 (a:1): max_concurrent must be an integer >= 0 (0 = no cap), got 1.5'],
    [{ url: 'http://a:1', max_concurrent: '4' }, 'entry 1 (a:1): max_concurrent must be an integer >= 0 (0 = no cap), got "4"'],
    [{ url: 'http://a:1', maxConcurrent: 4 }, 'entry 1 (a:1): unknown key "maxConcurrent" (known: url, name, weight, models, max_concurrent)'],
  ];
  for (const [entry, line] of cases) {
    const doc = typeof entry === 'string' && entry.startsWith('[') ? entry : [entry];
    assert.deepEqual(problems(doc), [`config error: UPSTREAMS_FILE=/etc/llm.json: ${line}`], JSON.stringify(entry));
  }
});

test('duplicate names, given or defaulted to the same host:port, name both entries', () => {
  assert.deepEqual(problems([{ url: 'http://a:1', name: 'gpu' }, { url: 'http://b:1', name: 'gpu' }]), [
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (gpu): name gpu is already the name of entry 1',
  ]);
  assert.deepEqual(problems([{ url: 'http://127.0.0.1:8000/a' }, { url: 'http://127.0.0.1:8000/b' }]), [
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (127.0.0.1:8000): name 127.0.0.1:8000 is already the name of entry 1 (an entry without a name is named host:port of its url); give one of them a name',
  ]);
  // http://a and http://a:80 are the same host:port
  assert.equal(problems([{ url: 'http://a' }, { url: 'http://a:80' }]).length, 1);
  // a given name may collide with another entry's default
  assert.match(problems([{ url: 'http://a:1' }, { url: 'http://b:1', name: 'a:1' }])[0], /entry 2 \(a:1\): name a:1 is already the name of entry 1 \(an entry without a name/);
  // the same host under two names is fine: two servers behind one address, or two paths
  assert.equal(parseUpstreamsFile(FILE, JSON.stringify([{ url: 'http://a:1/x', name: 'x' }, { url: 'http://a:1/y', name: 'y' }])).length, 2);
});

test('every problem of every entry is reported at once, in file order', () => {
  const p = problems([
    { url: 'http://gpu-a:8000', name: 'gpu-a' },
    { url: 'http://gpu-b:8000', name: 'gpu-b', weight: 0, max_concurrent: -1, colour: 'red' },
    42,
    { url: 'http://gpu-a:9000', name: 'gpu-a', models: [] },
    { weight: 2 },
  ]);
  assert.deepEqual(p, [
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (gpu-b): unknown key "colour" (known: url, name, weight, models, max_concurrent)',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (gpu-b): weight must be a number > 0, got 0',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (gpu-b): max_concurrent must be an integer >= 0 (0 = no cap), got -1',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 3: must be an object such as {"url": "http://gpu-a.internal:8000"}, got a number 42',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 4 (gpu-a): models must be a non-empty array of model names (strings, not empty, no surrounding spaces; leave models out to discover them), got []',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 4 (gpu-a): name gpu-a is already the name of entry 1',
    'config error: UPSTREAMS_FILE=/etc/llm.json: entry 5: url is required',
  ]);
});

test('without UPSTREAMS_FILE, UPSTREAM_URL names the upstreams: each weight 1, every model', () => {
  assert.deepEqual(plain(specsFrom({})), [{ name: '127.0.0.1:8001', url: 'http://127.0.0.1:8001/', weight: 1, models: null, maxConcurrent: 0 }]);
  assert.deepEqual(plain(specsFrom({ UPSTREAM_URL: 'http://127.0.0.1:8000, https://gpu-b.internal/openai ,http://[::1]:8001' })), [
    { name: '127.0.0.1:8000', url: 'http://127.0.0.1:8000/', weight: 1, models: null, maxConcurrent: 0 },
    { name: 'gpu-b.internal:443', url: 'https://gpu-b.internal/openai', weight: 1, models: null, maxConcurrent: 0 },
    { name: '[::1]:8001', url: 'http://[::1]:8001/', weight: 1, models: null, maxConcurrent: 0 },
  ]);
  assert.throws(() => upstreamSpecs(parseConfig({ UPSTREAMS_FILE: '/nonexistent/openai-proxy/upstreams.json' })), UpstreamsConfigError, 'the default reader is the real file system');
});

test('a single UPSTREAM_URL, explicit or the default, gives way to UPSTREAMS_FILE', () => {
  const files = { [FILE]: JSON.stringify([{ url: 'http://gpu-a:8000', name: 'gpu-a' }, { url: 'http://gpu-b:8000', weight: 3 }]) };
  for (const env of [{ UPSTREAMS_FILE: FILE }, { UPSTREAMS_FILE: FILE, UPSTREAM_URL: 'http://other:9000' }]) {
    assert.deepEqual(specsFrom(env, files).map((s) => [s.name, s.weight]), [['gpu-a', 1], ['gpu-b:8000', 3]]);
  }
});

test('UPSTREAMS_FILE with a list in UPSTREAM_URL is a problem, reported beside the file\'s own', () => {
  const env = { UPSTREAMS_FILE: FILE, UPSTREAM_URL: 'http://a:1,http://b:2' };
  assert.throws(() => specsFrom(env, { [FILE]: '[{"url": "http://c:3"}]' }), (err) => {
    assert.deepEqual(err.problems, ['config error: UPSTREAMS_FILE=/etc/llm.json is set together with a list of upstreams in UPSTREAM_URL (http://a:1/,http://b:2/); set only one of them']);
    return true;
  });
  assert.throws(() => specsFrom(env, { [FILE]: '[{"url": "http://c:3", "weight": 0}]' }), (err) => {
    assert.equal(err.problems.length, 2);
    assert.match(err.problems[1], /^config error: UPSTREAMS_FILE=\/etc\/llm\.json: entry 1 \(c:3\): weight must be/);
    return true;
  });
});

test('a file that cannot be read is one line naming it and why', () => {
  assert.throws(() => specsFrom({ UPSTREAMS_FILE: '/etc/missing.json' }), (err) => {
    assert.ok(err instanceof UpstreamsConfigError);
    assert.deepEqual(err.problems, ["config error: UPSTREAMS_FILE=/etc/missing.json: cannot be read: ENOENT: no such file or directory, open '/etc/missing.json'"]);
    return true;
  });
});

test('no UPSTREAMS_FILE: nothing is read', () => {
  assert.equal(upstreamSpecs(parseConfig({}), () => assert.fail('read')).length, 1);
});

test('a reload parses the same way: one bad entry refuses the whole file, no partial set', () => {
  // the caller keeps the old set and logs these lines
  assert.deepEqual(problems([{ url: 'http://a:1' }, { url: 'http://b:1', weight: -1 }]), ['config error: UPSTREAMS_FILE=/etc/llm.json: entry 2 (b:1): weight must be a number > 0, got -1']);
});
