// The Prometheus text format 0.0.4 as our registry writes it: exact lines, escaping,
// histogram invariants, and the names it refuses at registration time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../../dist/metrics/registry.js';
import { Counter } from '../../dist/metrics/counter.js';
import { Gauge } from '../../dist/metrics/gauge.js';
import { Histogram } from '../../dist/metrics/histogram.js';
import { escapeHelp, escapeLabelValue, formatValue } from '../../dist/metrics/validation.js';

const lines = (text) => text.split('\n');

test('a counter without labels renders HELP, TYPE and its value, starting at 0', () => {
  const r = new Registry();
  const c = r.counter('jobs_total', 'Jobs done.');
  assert.equal(r.render(), '# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 0\n');
  c.inc();
  c.inc(2.5);
  assert.equal(c.get(), 3.5);
  assert.equal(r.render(), '# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3.5\n');
});

test('a labelled counter renders one line per child, in creation order, labels in declared order', () => {
  const r = new Registry();
  const c = r.counter('http_total', 'Requests.', ['method', 'code']);
  assert.equal(r.render(), '# HELP http_total Requests.\n# TYPE http_total counter\n', 'no children: HELP and TYPE only');
  c.labels('POST', '200').inc();
  c.labels('GET', '404').inc(3);
  c.labels('POST', '200').inc();
  assert.deepEqual(lines(r.render()), [
    '# HELP http_total Requests.',
    '# TYPE http_total counter',
    'http_total{method="POST",code="200"} 2',
    'http_total{method="GET",code="404"} 3',
    '',
  ]);
});

test('a counter refuses to go down', () => {
  const c = new Counter('a_total', 'h', ['x']);
  assert.throws(() => c.labels('v').inc(-1), /a_total\{x="v"\}: increment must be >= 0, got -1/);
  assert.throws(() => new Counter('b_total', 'h').inc(NaN), RangeError);
  assert.equal(c.labels('v').get(), 0);
});

test('a gauge sets, increments and decrements, with and without labels', () => {
  const r = new Registry();
  const g = r.gauge('temp_celsius', 'Temperature.');
  const l = r.gauge('queue_length', 'Queue.', ['queue']);
  g.set(21.5);
  g.inc();
  g.dec(0.25);
  l.labels('a').inc(5);
  l.labels('a').dec();
  l.labels('b').set(-2);
  assert.equal(g.get(), 22.25);
  assert.deepEqual(lines(r.render()), [
    '# HELP queue_length Queue.',
    '# TYPE queue_length gauge',
    'queue_length{queue="a"} 4',
    'queue_length{queue="b"} -2',
    '# HELP temp_celsius Temperature.',
    '# TYPE temp_celsius gauge',
    'temp_celsius 22.25',
    '',
  ]);
});

test('a gauge collect callback and onCollect hooks run before rendering, every time', () => {
  const r = new Registry();
  let reads = 0;
  r.gauge('reads', 'Reads.', [], (g) => g.set(++reads));
  let hooked = 0;
  const remove = r.onCollect(() => hooked++);
  assert.match(r.render(), /^reads 1$/m);
  assert.match(r.render(), /^reads 2$/m);
  assert.equal(hooked, 2);
  remove();
  r.render();
  assert.equal(hooked, 2, 'a removed hook no longer runs');
});

test('a histogram without labels renders cumulative buckets, +Inf, sum and count', () => {
  const r = new Registry();
  const h = r.histogram('wait_seconds', 'Wait.', [], [0.1, 1, 5]);
  for (const v of [0.05, 0.1, 0.5, 3, 7, 7]) h.observe(v);
  assert.deepEqual(lines(r.render()), [
    '# HELP wait_seconds Wait.',
    '# TYPE wait_seconds histogram',
    'wait_seconds_bucket{le="0.1"} 2',
    'wait_seconds_bucket{le="1"} 3',
    'wait_seconds_bucket{le="5"} 4',
    'wait_seconds_bucket{le="+Inf"} 6',
    'wait_seconds_sum 17.65',
    'wait_seconds_count 6',
    '',
  ]);
});

test('a labelled histogram repeats its labels on every line, le last', () => {
  const r = new Registry();
  const h = r.histogram('lat_seconds', 'Latency.', ['route'], [0.5]);
  h.labels('/v1/chat/completions').observe(0.25);
  h.labels('/v1/chat/completions').observe(2);
  assert.deepEqual(lines(r.render()).slice(2), [
    'lat_seconds_bucket{route="/v1/chat/completions",le="0.5"} 1',
    'lat_seconds_bucket{route="/v1/chat/completions",le="+Inf"} 2',
    'lat_seconds_sum{route="/v1/chat/completions"} 2.25',
    'lat_seconds_count{route="/v1/chat/completions"} 2',
    '',
  ]);
});

test('histogram invariants hold for many observations: non-decreasing buckets, +Inf == count, exact sum', () => {
  const h = new Histogram('x_seconds', 'h', ['k'], [0.005, 0.01, 0.1, 1, 10]);
  const child = h.labels('v');
  // Quarters are exact in binary floating point, so the expected sum is exact too.
  let sum = 0;
  for (let i = 0; i < 200; i++) {
    const v = (i % 60) * 0.25 - 1;
    child.observe(v);
    sum += v;
  }
  child.observe(0.005); // on a bound: counts in that bucket (le means <=)
  sum += 0.005;
  const out = [];
  h.render(out);
  const buckets = out.filter((l) => l.startsWith('x_seconds_bucket')).map((l) => Number(l.split(' ')[1]));
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `bucket ${i} decreases`);
  assert.equal(out.at(-1), 'x_seconds_count{k="v"} 201');
  assert.equal(buckets.at(-1), 201);
  assert.equal(out.at(-2), `x_seconds_sum{k="v"} ${sum}`);
  assert.equal(child.sum, sum);
  assert.equal(child.count, 201);
});

test('a histogram refuses NaN observations and bad bucket lists', () => {
  const h = new Histogram('h_seconds', 'h', [], [1]);
  assert.throws(() => h.observe(NaN), /cannot observe NaN/);
  h.observe(Infinity);
  h.observe(-Infinity);
  const out = [];
  h.render(out);
  assert.deepEqual(out.slice(2), ['h_seconds_bucket{le="1"} 1', 'h_seconds_bucket{le="+Inf"} 2', 'h_seconds_sum NaN', 'h_seconds_count 2']);
  assert.throws(() => new Histogram('b', 'h', [], [1, 1]), /strictly increasing, got 1 then 1/);
  assert.throws(() => new Histogram('b', 'h', [], [2, 1]), /strictly increasing/);
  assert.throws(() => new Histogram('b', 'h', [], [1, Infinity]), /finite numbers \(\+Inf is implied\)/);
  assert.throws(() => new Histogram('b', 'h', [], [NaN]), /finite numbers/);
  assert.deepEqual(new Histogram('b', 'h', [], []).buckets, []);
});

test('HELP escapes backslash and newline, and nothing else', () => {
  assert.equal(escapeHelp('a\\b\nc "q"'), 'a\\\\b\\nc "q"');
  const r = new Registry();
  r.counter('esc_total', 'path C:\\tmp\nsecond line "quoted"');
  assert.equal(lines(r.render())[0], '# HELP esc_total path C:\\\\tmp\\nsecond line "quoted"');
});

test('label values escape backslash, double quote and newline; other UTF-8 stays as is', () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const r = new Registry();
  const c = r.counter('tricky_total', 'h', ['v']);
  c.labels('say "hi"\\\nbye ✓').inc();
  assert.equal(lines(r.render())[2], 'tricky_total{v="say \\"hi\\"\\\\\\nbye ✓"} 1');
});

test('numbers: integers as is, floats in shortest form, +Inf, -Inf and NaN spelled for Prometheus', () => {
  assert.equal(formatValue(42), '42');
  assert.equal(formatValue(0.1), '0.1');
  assert.equal(formatValue(1e21), '1e+21');
  assert.equal(formatValue(-0.5), '-0.5');
  assert.equal(formatValue(Infinity), '+Inf');
  assert.equal(formatValue(-Infinity), '-Inf');
  assert.equal(formatValue(NaN), 'NaN');
  const g = new Gauge('g', 'h');
  g.set(-Infinity);
  const out = [];
  g.render(out);
  assert.equal(out[2], 'g -Inf');
});

test('invalid metric names are refused at registration', () => {
  const r = new Registry();
  for (const bad of ['', '1abc', 'a-b', 'a b', 'rule:metric', 'ä']) assert.throws(() => r.counter(bad, 'h'), /invalid metric name/, bad);
  assert.throws(() => r.counter('rule:metric', 'h'), /colons are reserved for recording rules/);
});

test('invalid, reserved and repeated label names are refused at registration', () => {
  const r = new Registry();
  assert.throws(() => r.histogram('h_seconds', 'h', ['le'], [1]), /label name "le" is reserved for this metric type/);
  assert.throws(() => r.counter('c1_total', 'h', ['__x']), /"__x" is reserved: names starting with "__" belong to Prometheus/);
  assert.throws(() => r.counter('c2_total', 'h', ['a-b']), /invalid label name "a-b"/);
  assert.throws(() => r.counter('c3_total', 'h', ['9a']), /invalid label name/);
  assert.throws(() => r.counter('c4_total', 'h', ['a', 'a']), /label name "a" appears twice/);
  assert.throws(() => r.counter('c5_total', 42), /help must be a string/);
  // `le` only means something to histograms; elsewhere it is an ordinary label.
  r.gauge('ok_gauge', 'h', ['le']);
  assert.equal(r.render(), '# HELP ok_gauge h\n# TYPE ok_gauge gauge\n', 'failed registrations leave nothing behind');
});

test('a name can be registered once, including the names a histogram writes', () => {
  const r = new Registry();
  r.counter('dup_total', 'h');
  assert.throws(() => r.gauge('dup_total', 'h'), /metric dup_total: the name dup_total is already registered/);
  r.histogram('lat', 'h', [], [1]);
  assert.throws(() => r.counter('lat_count', 'h'), /the name lat_count is already registered/);
  r.counter('size_sum', 'h');
  assert.throws(() => r.histogram('size', 'h', [], [1]), /metric size: the name size_sum is already registered/);
});

test('labels() caches one child per value list, checks the values, and a labelled family needs them', () => {
  const c = new Counter('c_total', 'h', ['a', 'b']);
  assert.equal(c.labels('1', '2'), c.labels('1', '2'));
  assert.notEqual(c.labels('1', '2'), c.labels('12', ''));
  assert.throws(() => c.labels('x'), /expected 2 label values \(a, b\), got 1/);
  assert.throws(() => c.labels('x', 1), /label values must be strings, got number/);
  assert.throws(() => c.labels('x\u0000y', 'z'), /must not contain NUL/);
  assert.throws(() => c.inc(), /has labels \(a, b\): use \.labels\(\.\.\.\) first/);
});

test('families render sorted by name, each as one group with HELP and TYPE before its samples', () => {
  const r = new Registry();
  r.gauge('zeta', 'z').set(1);
  r.histogram('beta_seconds', 'b', ['k'], [1]).labels('v').observe(0.5);
  r.counter('alpha_total', 'a', ['k']).labels('v').inc();
  r.gauge('mid', 'm');
  const text = r.render();
  assert.ok(text.endsWith('\n') && !text.endsWith('\n\n'), 'ends with exactly one newline');
  const families = [];
  let current = null;
  for (const line of lines(text).slice(0, -1)) {
    const help = /^# HELP (\S+) /.exec(line);
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (help) {
      current = { name: help[1], type: null, samples: 0 };
      families.push(current);
    } else if (type) {
      assert.equal(type[1], current.name, 'TYPE follows its own HELP');
      assert.equal(current.samples, 0);
      current.type = type[2];
    } else {
      assert.ok(current.type !== null, `sample before TYPE: ${line}`);
      assert.ok(line.startsWith(current.name), `sample ${line} outside its group ${current.name}`);
      current.samples++;
    }
  }
  assert.deepEqual(families.map((f) => f.name), ['alpha_total', 'beta_seconds', 'mid', 'zeta']);
  assert.equal(new Registry().render(), '', 'an empty registry renders nothing');
});
