// The Vercel AI SDK (`ai` with the `@ai-sdk/openai` provider), driven the way its docs show.
import { WEATHER_PARAMETERS } from './tools-spec.mjs';

/** @param {any} libs the module COMPAT_DIR/clients.mjs */
export function adapter(libs) {
  const { ai, createOpenAI, packages } = libs;
  const { generateText, streamText, embed, tool, jsonSchema } = ai;
  const MODEL = 'fake-model';
  /** maxRetries goes on each call (generateText, streamText, embed), not on the provider. */
  const retries = (c) => (c.maxRetries === undefined ? {} : { maxRetries: c.maxRetries });
  const tools = () => ({ get_weather: tool({ description: 'The weather in a city.', inputSchema: jsonSchema(WEATHER_PARAMETERS) }) });
  return {
    name: 'vercel-ai',
    label: `ai ${packages.ai.version} + @ai-sdk/openai ${packages['@ai-sdk/openai'].version}`,
    noRetries: 'generateText({ …, maxRetries: 0 }) / streamText({ …, maxRetries: 0 }) / embed({ …, maxRetries: 0 })',
    make(o) {
      return { provider: createOpenAI({ baseURL: o.baseURL, apiKey: o.apiKey, headers: o.headers, fetch: o.fetch }), maxRetries: o.maxRetries };
    },
    async chat(c, prompt) {
      const r = await generateText({ model: c.provider.chat(MODEL), prompt, ...retries(c) });
      return { text: r.text };
    },
    /**
     * textStream, as most code reads it. Errors reach onError (streamText's default logs
     * them); what the caller sees is what textStream and `await result.text` do.
     */
    async stream(c, prompt, sink, { signal, onText, model } = {}) {
      sink.errors = [];
      const result = streamText({ model: model ?? c.provider.chat(MODEL), prompt, abortSignal: signal, onError: ({ error }) => sink.errors.push(error), ...retries(c) });
      for await (const t of result.textStream) {
        sink.text += t;
        if (t) onText?.(t);
      }
      sink.finishReason = await result.finishReason;
      sink.finalText = await result.text;
      return sink;
    },
    async streamUsage(c, prompt) {
      const result = streamText({ model: c.provider.chat(MODEL), prompt, ...retries(c) });
      let text = '';
      for await (const t of result.textStream) text += t;
      const u = await result.usage;
      return { text, usage: { prompt: u.inputTokens, completion: u.outputTokens } };
    },
    async embed(c, input) {
      const r = await embed({ model: c.provider.embedding('fake-embed'), value: input, ...retries(c) });
      return { vector: Array.from(r.embedding) };
    },
    /** The provider's default model, `openai('…')`, speaks the Responses API. */
    async responses(c, prompt) {
      const r = await generateText({ model: c.provider(MODEL), prompt, ...retries(c) });
      return { text: r.text };
    },
    async responsesStream(c, prompt, sink) {
      return this.stream(c, prompt, sink, { model: c.provider(MODEL) });
    },
    async tool(c, { stream }) {
      const req = { model: c.provider.chat(MODEL), prompt: 'What is the weather in Paris?', tools: tools(), ...retries(c) };
      if (!stream) {
        const r = await generateText(req);
        const call = r.toolCalls[0];
        return { name: call.toolName, args: call.input, id: call.toolCallId, finish: r.finishReason };
      }
      const result = streamText(req);
      for await (const _ of result.fullStream);
      const call = (await result.toolCalls)[0];
      return { name: call.toolName, args: call.input, id: call.toolCallId, finish: await result.finishReason };
    },
  };
}
