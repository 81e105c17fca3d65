// The official OpenAI SDK for JavaScript (`openai`), driven the way its README shows.
import { WEATHER_TOOL } from './tools-spec.mjs';

/** @param {any} libs the module COMPAT_DIR/clients.mjs */
export function adapter(libs) {
  const { OpenAI, packages } = libs;
  const MODEL = 'fake-model';
  return {
    name: 'openai',
    label: `openai ${packages.openai.version}`,
    noRetries: 'new OpenAI({ maxRetries: 0 })',
    /** @param {{baseURL: string, apiKey: string, headers?: Record<string,string>, maxRetries?: number, fetch: typeof fetch}} o */
    make(o) {
      return new OpenAI({ baseURL: o.baseURL, apiKey: o.apiKey, fetch: o.fetch, defaultHeaders: o.headers, ...(o.maxRetries === undefined ? {} : { maxRetries: o.maxRetries }) });
    },
    async chat(c, prompt) {
      const r = await c.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: prompt }] });
      return { text: r.choices[0].message.content };
    },
    /** Streams into `sink.text`; throws what the client throws. */
    async stream(c, prompt, sink, { signal, onText } = {}) {
      const s = await c.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: prompt }] }, { signal });
      for await (const chunk of s) {
        const t = chunk.choices[0]?.delta?.content ?? '';
        sink.text += t;
        if (t) onText?.(t);
      }
      return sink;
    },
    async streamUsage(c, prompt) {
      const s = await c.chat.completions.create({ model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] });
      let text = '';
      let usage = null;
      for await (const chunk of s) {
        text += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.usage) usage = { prompt: chunk.usage.prompt_tokens, completion: chunk.usage.completion_tokens };
      }
      return { text, usage };
    },
    async embed(c, input) {
      const r = await c.embeddings.create({ model: 'fake-embed', input });
      return { vector: Array.from(r.data[0].embedding) };
    },
    async responses(c, prompt) {
      const r = await c.responses.create({ model: MODEL, input: prompt });
      return { text: r.output_text };
    },
    async responsesStream(c, prompt, sink) {
      const s = await c.responses.create({ model: MODEL, input: prompt, stream: true });
      for await (const ev of s) if (ev.type === 'response.output_text.delta') sink.text += ev.delta;
      return sink;
    },
    async tool(c, { stream }) {
      const req = { model: MODEL, messages: [{ role: 'user', content: 'What is the weather in Paris?' }], tools: [WEATHER_TOOL] };
      if (!stream) {
        const choice = (await c.chat.completions.create(req)).choices[0];
        const call = choice.message.tool_calls[0];
        return { name: call.function.name, args: JSON.parse(call.function.arguments), id: call.id, finish: choice.finish_reason };
      }
      let name = '';
      let args = '';
      let id = '';
      let finish = null;
      for await (const chunk of await c.chat.completions.create({ ...req, stream: true })) {
        const d = chunk.choices[0]?.delta?.tool_calls?.[0];
        if (d?.id) id = d.id;
        if (d?.function?.name) name += d.function.name;
        if (d?.function?.arguments) args += d.function.arguments;
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { name, args: JSON.parse(args), id, finish };
    },
  };
}
