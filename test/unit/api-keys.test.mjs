// Client keys and the limits a key line may carry: what is read back, every problem named
// by its line and id, and never a key in a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiKeys, ApiKeyError, DEFAULT_LIMITS } from '../../dist/security/api-keys.js';
import { KeyRing, KeysFileError } from '../../dist/security/key-ring.js';

const ALICE = 'sk-alice-0123456789';
const ALICE2 = 'sk-alice-new-5555555';
const BOB = 'sk-bob-9876543210';
const CAROL = 'sk-carol-1111111111';

/** The problems of a text that must not parse. */
function problemsOf(text, unit = 'line') {
  try {
    ApiKeys.parse(text, unit);
  } catch (err) {
    assert.ok(err instanceof ApiKeyError);
    assert.equal(err.message, err.problems.join('\n'));
    return err.problems;
  }
  assert.fail('the text parsed');
}

test('key lines without limits read as before: id=key, bare keys as key-<n>, comments, commas', () => {
  const keys = ApiKeys.parse(`# team keys\nalice=${ALICE}\n\n${BOB}  # bob's, unnamed\r\ncarol = ${CAROL}, sk-dave-000000000\n`, 'line');
  assert.equal(keys.size, 4);
  assert.equal(keys.match(ALICE), 'alice');
  assert.equal(keys.match(BOB), 'key-2');
  assert.equal(keys.match(CAROL), 'carol', 'spaces around = are allowed, as they always were');
  assert.equal(keys.match('sk-dave-000000000'), 'key-4', 'entries are counted across commas');
  assert.equal(keys.match('sk-nobody-0000000'), null);
  assert.equal(keys.match(undefined), null);
  assert.deepEqual(keys.ids(), ['alice', 'key-2', 'carol', 'key-4']);
  for (const id of keys.ids()) assert.deepEqual(keys.limits(id), { rpm: null, tpm: null, maxParallel: null, weight: 1 });
});

test('limits are read back; each left out is null (weight 1)', () => {
  const keys = ApiKeys.parse(`alice=${ALICE} rpm=60 tpm=100000 max_parallel=4 weight=2\nbob=${BOB}   tpm=5000\t weight=0.5\ncarol=${CAROL}\n`, 'line');
  assert.deepEqual(keys.limits('alice'), { rpm: 60, tpm: 100000, maxParallel: 4, weight: 2 });
  assert.deepEqual(keys.limits('bob'), { rpm: null, tpm: 5000, maxParallel: null, weight: 0.5 });
  assert.deepEqual(keys.limits('carol'), { rpm: null, tpm: null, maxParallel: null, weight: 1 });
  assert.deepEqual(keys.limits('nobody'), DEFAULT_LIMITS, 'an unknown id gets the defaults');
  assert.ok(Object.isFrozen(keys.limits('alice')));
  assert.ok(Object.isFrozen(DEFAULT_LIMITS));
  assert.equal(keys.match(ALICE), 'alice', 'the key is the word before the limits');
});

test('weights may be fractions, written as plain decimals', () => {
  for (const [w, expected] of [['0.25', 0.25], ['.5', 0.5], ['3.', 3], ['1.75', 1.75], ['007', 7]]) {
    assert.equal(ApiKeys.parse(`alice=${ALICE} weight=${w}`, 'line').limits('alice').weight, expected, w);
  }
  for (const w of ['0', '0.0', '-1', '1e3', 'Infinity', '', '1/2', '0x10']) {
    assert.deepEqual(problemsOf(`alice=${ALICE} weight=${w}`), [`line 1 (alice): weight must be a number > 0, got ${JSON.stringify(w)}`], w);
  }
});

test('every kind of problem is one line naming the line and the id', () => {
  const cases = [
    [`alice=${ALICE} rpm=0`, 'line 1 (alice): rpm must be an integer >= 1, got "0" (leave rpm out for RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW)'],
    [`alice=${ALICE} tpm=0`, 'line 1 (alice): tpm must be an integer >= 1, got "0" (leave tpm out for TOKEN_LIMIT_TPM)'],
    [`alice=${ALICE} max_parallel=00`, 'line 1 (alice): max_parallel must be an integer >= 1, got "00" (leave max_parallel out for no cap)'],
    [`alice=${ALICE} rpm=1.5`, 'line 1 (alice): rpm must be an integer >= 1, got "1.5"'],
    [`alice=${ALICE} tpm=-5`, 'line 1 (alice): tpm must be an integer >= 1, got "-5"'],
    [`alice=${ALICE} rpm=`, 'line 1 (alice): rpm must be an integer >= 1, got ""'],
    [`alice=${ALICE} rpm=99999999999999999999`, 'line 1 (alice): rpm must be an integer >= 1, got "99999999999999999999"'],
    [`alice=${ALICE} max_parallel=many`, 'line 1 (alice): max_parallel must be an integer >= 1, got "many"'],
    [`alice=${ALICE} rpm=60 rpm=60`, 'line 1 (alice): rpm is given twice'],
    [`alice=${ALICE} rps=5`, 'line 1 (alice): word 1 after the key names no known limit; accepted: rpm, tpm, max_parallel, weight (the word is not shown: it could be part of a key)'],
    [`alice=${ALICE} RPM=5`, 'line 1 (alice): word 1 after the key names no known limit; accepted: rpm, tpm, max_parallel, weight (the word is not shown: it could be part of a key)'],
    [`alice=${ALICE} rpm=5 60`, 'line 1 (alice): word 2 after the key is not name=value: limits are rpm, tpm, max_parallel, weight, and a key has no spaces (the word is not shown: it could be part of a key)'],
    [`${ALICE} rpm=60`, 'line 1 (key-1): limits need a named key: write <id>=<key> before them (key-1 counts entries, so it would pass to another key when a line is added above)'],
    ['alice=short', 'line 1: the key must be at least 8 characters (neither it nor the id is shown: a key with a = in it reads as id=key)'],
    ['short', 'line 1 (key-1): the key must be at least 8 characters (not shown)'],
    ['alice=', 'line 1: no key after the = (the id is not shown: a key ending in = reads as id=)'],
    [`bad/id=${ALICE}`, 'line 1: the id must be 1-64 of [A-Za-z0-9_.:@-] (not shown: a key with a = in it reads as id=key)'],
    [`alice=${ALICE} rpm=60\nalice=${ALICE2} rpm=30`, 'line 2 (alice): limits differ from line 1, another key of the same id (the keys of an id share its limits: give each the same)'],
    [`alice=${ALICE} rpm=60\nalice=${ALICE2}`, 'line 2 (alice): limits differ from line 1, another key of the same id (the keys of an id share its limits: give each the same)'],
  ];
  for (const [text, line] of cases) assert.deepEqual(problemsOf(text), [line], text);
  // spaces around a limit's = make three words, each wrong
  assert.deepEqual(problemsOf(`alice=${ALICE} rpm = 5`), [
    'line 1 (alice): word 1 after the key is not name=value: limits are rpm, tpm, max_parallel, weight, and a key has no spaces (the word is not shown: it could be part of a key)',
    'line 1 (alice): word 2 after the key names no known limit; accepted: rpm, tpm, max_parallel, weight (the word is not shown: it could be part of a key)',
    'line 1 (alice): word 3 after the key is not name=value: limits are rpm, tpm, max_parallel, weight, and a key has no spaces (the word is not shown: it could be part of a key)',
  ]);
  // a huge value is quoted cut short
  assert.deepEqual(problemsOf(`alice=${ALICE} rpm=${'9'.repeat(40)}`), [`line 1 (alice): rpm must be an integer >= 1, got "${'9'.repeat(24)}…"`]);
  assert.deepEqual(problemsOf(`alice=${ALICE} rpm=9007199254740992`), ['line 1 (alice): rpm must be an integer >= 1, got "9007199254740992"']);
});

test('every problem of the file at once, in order, several on one line', () => {
  const text = [
    '# keys',
    `alice=${ALICE} rpm=60 weight=2`,
    `bob=${BOB} rpm=0 weight=0 rpm=5 burst=3`,
    '',
    `carol=tiny tpm=100`,
    `sk-anon-000000001 max_parallel=2`,
    `ok=${CAROL} max_parallel=2`,
  ].join('\n');
  assert.deepEqual(problemsOf(text), [
    'line 3 (bob): rpm must be an integer >= 1, got "0" (leave rpm out for RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW)',
    'line 3 (bob): weight must be a number > 0, got "0"',
    'line 3 (bob): rpm is given twice',
    'line 3 (bob): word 4 after the key names no known limit; accepted: rpm, tpm, max_parallel, weight (the word is not shown: it could be part of a key)',
    'line 5: the key must be at least 8 characters (neither it nor the id is shown: a key with a = in it reads as id=key)',
    'line 6 (key-4): limits need a named key: write <id>=<key> before them (key-4 counts entries, so it would pass to another key when a line is added above)',
  ]);
});

test('no message ever holds a key, or a word that may be part of one', () => {
  // keys mistyped with a space or a `=` inside, or base64 with its padding: no piece comes back
  const secrets = ['sk-live-SECRET-aaaa', 'SECRETbbbb', 'SECRETcccc', 'sEcReT', 'SECRET/dd', 'SECRETee', 'U0VDUkVUZmY', 'U0VDUkVUZ2dn', 'U0VDUkVU'];
  const text = [`alice=sk-live-SECRET-aaaa SECRETbbbb`, `bob=sk-bob-000000000 SECRETcccc==`, 'carol=sEcReT rpm=5', 'SECRET/dd=SECRETee', `dave=${ALICE} weight=1 rpm=0`, 'U0VDUkVUZmY=', 'U0VDUkVUZ2dn==', 'U0VDUkVU=x'].join('\n');
  const problems = problemsOf(text);
  assert.equal(problems.length, 8);
  for (const p of problems) for (const s of [...secrets, ALICE]) assert.ok(!p.includes(s), `${p} shows ${s}`);
});

test('two keys of one id (a rotation) with the same limits share them', () => {
  const keys = ApiKeys.parse(`alice=${ALICE} rpm=60 weight=2\nalice=${ALICE2} weight=2 rpm=60`, 'line');
  assert.equal(keys.match(ALICE), 'alice');
  assert.equal(keys.match(ALICE2), 'alice');
  assert.deepEqual(keys.ids(), ['alice']);
  assert.deepEqual(keys.limits('alice'), { rpm: 60, tpm: null, maxParallel: null, weight: 2 });
});

test('PROXY_API_KEYS takes the same syntax; its problems name entries, not lines', () => {
  const keys = ApiKeys.parse(`alice=${ALICE} rpm=10 weight=3, bob=${BOB}`, 'entry');
  assert.deepEqual(keys.limits('alice'), { rpm: 10, tpm: null, maxParallel: null, weight: 3 });
  assert.deepEqual(keys.ids(), ['alice', 'bob']);
  assert.deepEqual(problemsOf(`alice=${ALICE}, bob=${BOB} tpm=0, tiny`, 'entry'), [
    'entry 2 (bob): tpm must be an integer >= 1, got "0" (leave tpm out for TOKEN_LIMIT_TPM)',
    'entry 3 (key-3): the key must be at least 8 characters (not shown)',
  ]);
});

test('merge: both sets of keys; for an id in both, the later set (the file) gives the limits', () => {
  const inline = ApiKeys.parse(`alice=${ALICE} rpm=10, bob=${BOB} weight=4`, 'entry');
  const file = ApiKeys.parse(`alice=${ALICE2} rpm=99\ncarol=${CAROL}`, 'line');
  const all = inline.merge(file);
  assert.equal(all.size, 4);
  assert.equal(all.match(ALICE), 'alice');
  assert.equal(all.match(ALICE2), 'alice');
  assert.equal(all.limits('alice').rpm, 99);
  assert.equal(all.limits('bob').weight, 4);
  assert.deepEqual(all.ids(), ['alice', 'bob', 'carol']);
  // a key named again in the file goes to the file's id
  const moved = inline.merge(ApiKeys.parse(`robert=${BOB} max_parallel=1`, 'line'));
  assert.equal(moved.match(BOB), 'robert');
  assert.deepEqual(moved.ids(), ['alice', 'robert']);
  assert.equal(moved.limits('robert').maxParallel, 1);
});

test('KeyRing: a bad file at start throws KeysFileError, every line naming the file', () => {
  const files = { '/etc/keys': `alice=${ALICE} rpm=0\nbob=${BOB} weight=x\n` };
  assert.throws(
    () => new KeyRing(null, '/etc/keys', (p) => files[p]),
    (err) => {
      assert.ok(err instanceof KeysFileError);
      assert.deepEqual(err.problems, [
        'config error: PROXY_API_KEYS_FILE=/etc/keys: line 1 (alice): rpm must be an integer >= 1, got "0" (leave rpm out for RATE_LIMIT_REQUESTS per RATE_LIMIT_WINDOW)',
        'config error: PROXY_API_KEYS_FILE=/etc/keys: line 2 (bob): weight must be a number > 0, got "x"',
      ]);
      return true;
    },
  );
  assert.throws(
    () =>
      new KeyRing(null, '/nonexistent/keys', () => {
        throw new Error("ENOENT: no such file or directory, open '/nonexistent/keys'");
      }),
    (err) => err instanceof KeysFileError && err.problems.length === 1 && err.problems[0] === "config error: PROXY_API_KEYS_FILE=/nonexistent/keys: cannot be read: ENOENT: no such file or directory, open '/nonexistent/keys'",
  );
});

test('KeyRing: a reload that fails keeps the old keys and limits; one that parses replaces them', () => {
  let text = `alice=${ALICE} rpm=60`;
  const inline = ApiKeys.parse(`bob=${BOB}`, 'entry');
  const ring = new KeyRing(inline, '/etc/keys', () => text);
  assert.equal(ring.current().match(ALICE), 'alice');
  assert.equal(ring.current().match(BOB), 'bob');
  assert.equal(ring.current().limits('alice').rpm, 60);

  text = `carol=${CAROL} max_parallel=0`;
  assert.throws(() => ring.reload(), (err) => err instanceof KeysFileError && /line 1 \(carol\): max_parallel must be/.test(err.problems[0]));
  assert.equal(ring.current().match(ALICE), 'alice', 'the old keys stay');
  assert.equal(ring.current().match(CAROL), null);
  assert.equal(ring.current().limits('alice').rpm, 60);

  text = `carol=${CAROL} max_parallel=2 weight=0.5`;
  assert.equal(ring.reload(), 2);
  assert.equal(ring.current().match(ALICE), null);
  assert.deepEqual(ring.current().limits('carol'), { rpm: null, tpm: null, maxParallel: 2, weight: 0.5 });
  assert.deepEqual(ring.current().ids(), ['bob', 'carol']);
});

test('KeyRing without a file is PROXY_API_KEYS alone, or null (an open proxy)', () => {
  assert.equal(new KeyRing(null, null).current(), null);
  assert.equal(new KeyRing(null, null).reload(), 0);
  const inline = ApiKeys.parse(`bob=${BOB}`, 'entry');
  assert.equal(new KeyRing(inline, null).current(), inline);
});
