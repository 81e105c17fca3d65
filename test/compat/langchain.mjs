// LangChain's OpenAI integration (`@langchain/openai` on `@langchain/core`), driven the way its docs show.
import { WEATHER_TOOL } from './tools-spec.mjs';

/** @param {any} libs the module COMPAT_DIR/clients.mjs */
export function adapter(libs) {
  const { ChatOpenAI, OpenAIEmbeddings, packages } = libs;
  const MODEL = 'fake-model';
  const concat = (chunks) => chunks.reduce((a, b) => a.concat(b));
  const collect = async (iterable) => {
    const out = [];
    for await (const x of iterable) out.push(x);
    return out;
  };
  return {
    name: 'langchain',
    label: `@langchain/openai ${packages['@langchain/openai'].version} + @langchain/core ${packages['@langchain/core'].version}`,
    noRetries: 'new ChatOpenAI({ …, maxRetries: 0 }) / new OpenAIEmbeddings({ …, maxRetries: 0 })',
    make(o) {
      const common = { apiKey: o.apiKey, configuration: { baseURL: o.baseURL, fetch: o.fetch, defaultHeaders: o.headers }, ...(o.maxRetries === undefined ? {} : { maxRetries: o.maxRetries }) };
      return {
        chat: new ChatOpenAI({ model: MODEL, ...common }),
        responses: new ChatOpenAI({ model: MODEL, useResponsesApi: true, ...common }),
        embeddings: new OpenAIEmbeddings({ model: 'fake-embed', ...common }),
      };
    },
    async chat(c, prompt) {
      return { text: (await c.chat.invoke(prompt)).content };
    },
    async stream(c, prompt, sink, { signal, onText, model } = {}) {
      for await (const chunk of await (model ?? c.chat).stream(prompt, { signal })) {
        const t = typeof chunk.content === 'string' ? chunk.content : chunk.content.map((p) => p.text ?? '').join('');
        sink.text += t;
        if (t) onText?.(t);
      }
      return sink;
    },
    async streamUsage(c, prompt) {
      const all = concat(await collect(await c.chat.stream(prompt)));
      return { text: all.content, usage: all.usage_metadata ? { prompt: all.usage_metadata.input_tokens, completion: all.usage_metadata.output_tokens } : null };
    },
    async embed(c, input) {
      return { vector: await c.embeddings.embedQuery(input) };
    },
    async responses(c, prompt) {
      const m = await c.responses.invoke(prompt);
      return { text: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('') };
    },
    async responsesStream(c, prompt, sink) {
      return this.stream(c, prompt, sink, { model: c.responses });
    },
    async tool(c, { stream }) {
      const bound = c.chat.bindTools([WEATHER_TOOL]);
      const prompt = 'What is the weather in Paris?';
      const m = stream ? concat(await collect(await bound.stream(prompt))) : await bound.invoke(prompt);
      const call = m.tool_calls[0];
      return { name: call.name, args: call.args, id: call.id, finish: m.response_metadata?.finish_reason ?? null };
    },
  };
}
