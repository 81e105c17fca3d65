// Reading JSON in place: key search, string ends, characters of a string without decoding it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countString, find, findEither, keyPair, needle, stringEnd, valueStart } from '../../dist/observe/json-bytes.js';

/** The characters countString finds in a quoted JSON string (its opening quote at 0), checking it stops at the closing one. */
function chars(raw) {
  const out = { chars: -1 };
  assert.equal(countString(raw, 1, raw.length, out), raw.length - 1, 'the closing quote');
  return out.chars;
}

test('countString counts the code points a JSON string decodes to, and finds its end', () => {
  const cases = ['', 'abc', 'café', '日本語', '🙂😀', 'a\nb\t"c"\\d/', 'naïve 🙂 \u0000 \u2028', 'mixed é \ud7ff \ue000 \uffff'];
  for (const text of cases) {
    assert.equal(chars(Buffer.from(JSON.stringify(text))), [...text].length, JSON.stringify(text));
    const ascii = Buffer.from(JSON.stringify(text).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    assert.equal(chars(ascii), [...text].length, `${JSON.stringify(text)} with \\u escapes`);
  }
  assert.equal(chars(Buffer.from('"\\/\\b\\f\\r\\u0041\\uD83D\\uDE00"')), 6, '/ backspace formfeed return A 😀');
  assert.equal(countString(Buffer.from('"abc'), 1, 4, { chars: 0 }), -1, 'no closing quote before `to`');
});

test('stringEnd finds the closing quote past escaped quotes and backslashes, within bounds', () => {
  const buf = Buffer.from('"a\\"b\\\\",x');
  assert.equal(stringEnd(buf, 1, buf.length), 7);
  assert.equal(stringEnd(buf, 1, 6), -1);
  assert.equal(valueStart(Buffer.from('"k" :  "v"'), 3, 10), 7);
  assert.equal(valueStart(Buffer.from('"k" , "v"'), 3, 9), -1);
});

test('findEither finds the first of two quoted keys, wherever and whichever', () => {
  const k = keyPair('"usage"', '"text"');
  const buf = Buffer.from('{"context":1,"texts":2,"text":"a","usage":null,"x":"text"}');
  assert.equal(findEither(buf, k, 0, buf.length), buf.indexOf('"text"'));
  assert.equal(findEither(buf, k, buf.indexOf('"text"') + 1, buf.length), buf.indexOf('"usage"'));
  assert.equal(findEither(buf, k, buf.indexOf('"usage"') + 1, buf.length), buf.indexOf('"text"}'), 'a whole string value "text" is found too: callers look past the colon');
  assert.equal(findEither(buf, k, buf.indexOf('"usage"') + 1, buf.length - 3), -1, 'not past `to`');
  assert.equal(findEither(buf, k, buf.indexOf('"usage"') + 1, buf.indexOf('"usage"') + 6), -1);
  assert.equal(findEither(Buffer.from('"usage"'), k, 1, 7), -1, 'not before `from`');
  assert.equal(find(buf, needle('"usage"'), 0, buf.length), buf.indexOf('"usage"'));
  assert.throws(() => keyPair('usage', '"text"'), /no quoted key/);
});
