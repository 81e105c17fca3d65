// The `endpoint` label: every path maps to a template from a fixed table, or to one of two
// catch-alls, so no client can grow the label set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RouteMatcher, routeTemplate, UNKNOWN_V1, OTHER } from '../../dist/http/route-template.js';
import { ROUTE_TEMPLATES } from '../../dist/http/route-table.js';

test('the table holds the spec paths with /v1, realtime and the vLLM/SGLang extras, no query parts, no duplicates', () => {
  assert.equal(ROUTE_TEMPLATES.length, 182);
  assert.equal(new Set(ROUTE_TEMPLATES).size, ROUTE_TEMPLATES.length);
  for (const t of ROUTE_TEMPLATES) {
    assert.match(t, /^\/v1\//);
    assert.ok(!t.includes('?'), t);
  }
  for (const t of ['/v1/chat/completions', '/v1/responses', '/v1/responses/input_tokens', '/v1/realtime', '/v1/score', '/v1/rerank', '/v1/tokenize', '/v1/detokenize']) {
    assert.ok(ROUTE_TEMPLATES.includes(t), t);
  }
  assert.ok(Object.isFrozen(ROUTE_TEMPLATES));
});

test('known routes map to their templates', () => {
  const cases = {
    '/v1/chat/completions': '/v1/chat/completions',
    '/v1/completions': '/v1/completions',
    '/v1/embeddings': '/v1/embeddings',
    '/v1/files/file-abc123/content': '/v1/files/{file_id}/content',
    '/v1/chat/completions/chatcmpl-9/messages': '/v1/chat/completions/{completion_id}/messages',
    '/v1/models': '/v1/models',
    '/v1/models/gpt-4o-mini': '/v1/models/{model}',
    '/v1/models/ft:gpt-4o:my-org:custom:abc123': '/v1/models/{model}',
    '/v1/responses/resp_1/input_items': '/v1/responses/{response_id}/input_items',
    '/v1/realtime': '/v1/realtime',
    '/v1/rerank': '/v1/rerank',
    '/v1/organization/projects/proj_1/api_keys/key_2': '/v1/organization/projects/{project_id}/api_keys/{api_key_id}',
  };
  for (const [path, label] of Object.entries(cases)) assert.equal(routeTemplate(path), label, path);
});

test('a literal segment wins over a param at the same place', () => {
  assert.equal(routeTemplate('/v1/responses/input_tokens'), '/v1/responses/input_tokens');
  assert.equal(routeTemplate('/v1/responses/compact'), '/v1/responses/compact');
  assert.equal(routeTemplate('/v1/responses/resp_123'), '/v1/responses/{response_id}');
});

test('when the literal branch dead-ends, the param branch is still tried', () => {
  // A response whose id happens to be `input_tokens` can still be cancelled.
  assert.equal(routeTemplate('/v1/responses/input_tokens/cancel'), '/v1/responses/{response_id}/cancel');
  const m = new RouteMatcher(['/a/b', '/a/{x}/c']);
  assert.equal(m.match('/a/b/c'), '/a/{x}/c');
  assert.equal(m.match('/a/b'), '/a/b');
});

test('the query string is ignored and one trailing slash tolerated', () => {
  assert.equal(routeTemplate('/v1/responses?beta=true'), '/v1/responses');
  assert.equal(routeTemplate('/v1/responses/resp_1?stream=true&starting_after=4'), '/v1/responses/{response_id}');
  assert.equal(routeTemplate('/v1/chat/completions/'), '/v1/chat/completions');
  assert.equal(routeTemplate('/v1/chat/completions/?x=1'), '/v1/chat/completions');
  assert.equal(routeTemplate('/v1/realtime?model=gpt-realtime'), '/v1/realtime');
});

test('HF-style model ids: encoded or not, /v1/models/<org>/<name> is /v1/models/{model}', () => {
  assert.equal(routeTemplate('/v1/models/meta-llama%2FLlama-3-8B'), '/v1/models/{model}');
  assert.equal(routeTemplate('/v1/models/meta-llama/Llama-3-8B'), '/v1/models/{model}');
  assert.equal(routeTemplate('/v1/models/a/b/c/d'), '/v1/models/{model}');
  assert.equal(routeTemplate('/v1/models//x'), UNKNOWN_V1);
});

test('unknown paths under /v1 are /v1/{unknown}; anything else is other', () => {
  assert.equal(UNKNOWN_V1, '/v1/{unknown}');
  assert.equal(OTHER, 'other');
  for (const p of ['/v1/nope', '/v1', '/v1/', '/v1?x=1', '/v1/chat', '/v1/chat/completions/x/y/z', '/v1/chat//completions', '/v1/files/f/content/extra']) {
    assert.equal(routeTemplate(p), UNKNOWN_V1, p);
  }
  for (const p of ['/', '', '/health', '/metrics', '/v2/chat/completions', '/v1x/chat', 'v1/chat/completions', '/chat/completions', '//']) {
    assert.equal(routeTemplate(p), OTHER, p);
  }
});

test('a custom table: {name+} takes the rest, the first template to claim a place keeps it', () => {
  const m = new RouteMatcher(['/v1/blobs/{key+}', '/v1/x/{a}', '/v1/x/{b}']);
  assert.equal(m.match('/v1/blobs/a'), '/v1/blobs/{key}');
  assert.equal(m.match('/v1/blobs/a/b/c'), '/v1/blobs/{key}');
  assert.equal(m.match('/v1/blobs'), UNKNOWN_V1);
  assert.equal(m.match('/v1/x/1'), '/v1/x/{a}');
  assert.throws(() => new RouteMatcher(['v1/no-slash']), /must start with "\/"/);
  assert.throws(() => new RouteMatcher(['/v1/{rest+}/more']), /must be the last segment/);
});

test('property: 10,000 random paths give at most table size + 2 distinct labels', () => {
  let seed = 42;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const words = ['v1', 'chat', 'completions', 'files', 'models', 'responses', 'input_tokens', 'x', '', '{id}', 'content', 'a%2Fb', 'organization', 'projects', 'users', '..', 'v2'];
  const labels = new Set();
  for (let i = 0; i < 10_000; i++) {
    const segs = [];
    const n = 1 + rand(7);
    for (let j = 0; j < n; j++) segs.push(rand(4) === 0 ? `id_${rand(1e6)}` : words[rand(words.length)]);
    const table = ROUTE_TEMPLATES[rand(ROUTE_TEMPLATES.length)].replace(/\{[^}]+\}/g, () => `p${rand(1e6)}`);
    const path = rand(3) === 0 ? table : (rand(2) ? '/v1/' : '/') + segs.join('/') + (rand(5) === 0 ? '?q=' + rand(100) : '');
    const label = routeTemplate(path);
    assert.ok(label === UNKNOWN_V1 || label === OTHER || ROUTE_TEMPLATES.includes(label) || label === '/v1/models/{model}', label);
    labels.add(label);
  }
  assert.ok(labels.size <= ROUTE_TEMPLATES.length + 2, `${labels.size} labels`);
  assert.ok(labels.size > 50, 'the generator reached many real routes');
});

test('every template in the table matches itself with its params filled in', () => {
  for (const t of ROUTE_TEMPLATES) {
    const path = t.replace(/\{[^}]+\}/g, 'some_id-1');
    assert.equal(routeTemplate(path), t.replace('+}', '}'), t);
  }
});
