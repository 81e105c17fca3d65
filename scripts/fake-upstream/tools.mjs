/**
 * tools.mjs: chat completions that call a tool, as vLLM answers them when started with
 * `--enable-auto-tool-choice` and a tool parser.
 *
 * A request with `tools` (and a `tool_choice` other than "none") gets one call of the
 * chosen function (the named one, else the first) with arguments built from its JSON
 * Schema `parameters`, so a client that validates them accepts them. Whole, the call is
 * `message.tool_calls` with `content: null` and `finish_reason: "tool_calls"`. Streamed,
 * it is vLLM's sequence: a role chunk, a chunk opening `tool_calls[0]` with id, type,
 * name and empty arguments, the arguments in fragments (one chunk each, paced like
 * tokens), then an empty delta with `finish_reason: "tool_calls"`.
 */

/**
 * @typedef {object} ToolCall
 * @property {string} id
 * @property {string} name
 * @property {string} arguments  JSON text
 */

/**
 * The function this request calls, or null when it calls none.
 * @param {Record<string, any>} body
 * @returns {{name: string, parameters: any}|null}
 */
export function chosenTool(body) {
  const tools = Array.isArray(body.tools) ? body.tools.filter((t) => t?.type === 'function' && typeof t.function?.name === 'string') : [];
  if (tools.length === 0 || body.tool_choice === 'none') return null;
  const wanted = body.tool_choice?.function?.name;
  const tool = tools.find((t) => t.function.name === wanted) ?? tools[0];
  return { name: tool.function.name, parameters: tool.function.parameters };
}

/**
 * A value that fits a JSON Schema: the first enum value or const, else one per type
 * (string "fake", number and integer 1, boolean true, arrays empty, objects filled in).
 * @param {any} schema
 * @param {number} [depth]
 * @returns {unknown}
 */
export function sampleFor(schema, depth = 0) {
  if (!schema || typeof schema !== 'object' || depth > 8) return null;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const alt = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(alt) && alt.length > 0) return sampleFor(alt[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string':
      return 'fake';
    case 'number':
    case 'integer':
      return 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'null':
      return null;
    default: {
      /** @type {Record<string, unknown>} */
      const out = {};
      for (const [key, sub] of Object.entries(schema.properties ?? {})) out[key] = sampleFor(sub, depth + 1);
      return out;
    }
  }
}

/**
 * The call made for a chosen tool.
 * @param {{name: string, parameters: any}} tool
 * @param {number} n  the answer's number, for the id
 * @returns {ToolCall}
 */
export function toolCall(tool, n) {
  return { id: `chatcmpl-tool-${n}`, name: tool.name, arguments: JSON.stringify(sampleFor(tool.parameters ?? { type: 'object' })) };
}

/**
 * `text` in `n` fragments of near-equal length (fewer when it is shorter), at least one.
 * @param {string} text
 * @param {number} n
 */
export function fragments(text, n) {
  const count = Math.max(1, Math.min(n, text.length));
  const size = Math.ceil(text.length / count);
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

/** The choice of a whole answer that calls `call`. @param {ToolCall} call */
export function toolCallChoice(call) {
  return {
    index: 0,
    message: { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
    logprobs: null,
    finish_reason: 'tool_calls',
  };
}

/**
 * The streamed choices of a call, in order: role, the call opened, one per argument
 * fragment, and the finish.
 * @param {ToolCall} call
 * @param {string[]} parts  the arguments in fragments
 */
export function toolCallChunkChoices(call, parts) {
  const choice = (/** @type {object} */ delta, finish = null) => ({ index: 0, delta, logprobs: null, finish_reason: finish });
  return [
    choice({ role: 'assistant', content: '' }),
    choice({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }),
    ...parts.map((p) => choice({ tool_calls: [{ index: 0, function: { arguments: p } }] })),
    choice({}, 'tool_calls'),
  ];
}
