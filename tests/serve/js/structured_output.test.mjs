// Structured output and tool calling through the real clients against llmforge serve (started by
// run.sh with the TinyStories 260K model and the built-in ChatML template): the model knows no
// JSON, so the server's grammar is what makes every answer parse.
//  * openai SDK: chat.completions.parse with zodResponseFormat returns an object the zod schema
//    accepts; tools + tool_choice "required" give a call whose arguments the zod schema accepts,
//    and the streaming helper (chat.completions.stream) assembles the same call from the deltas.
//  * LangChain: a tool-calling agent loop with ChatOpenAI.bindTools: the first turn is forced to
//    call the tool, the test runs the tool and feeds the ToolMessage back, and the next turn
//    (no tools bound: the context of this model is 512 tokens) answers in text.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { zodResponseFormat } from "openai/helpers/zod";
import { z } from "zod";
import { ChatOpenAI } from "@langchain/openai";
import { tool } from "@langchain/core/tools";
import { HumanMessage, isAIMessage } from "@langchain/core/messages";

const client = new OpenAI({ baseURL: process.env.LLMFORGE_URL + "/v1", apiKey: process.env.LLMFORGE_API_KEY, maxRetries: 0 });
const model = process.env.LLMFORGE_MODEL;

const Pet = z.object({
  name: z.string().max(10),
  age: z.number().int().min(0).max(30),
  kind: z.enum(["cat", "dog", "bird"]),
});

test("chat.completions.parse with zodResponseFormat returns a valid parsed object", async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.parse({
      model,
      messages: [{ role: "user", content: "Tell me about a pet." }],
      response_format: zodResponseFormat(Pet, "pet"),
      max_tokens: 150,
      temperature: 1,
      seed,
    });
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, "stop", JSON.stringify(r));
    assert.ok(msg.parsed, `parsed is set: ${msg.content}`);
    assert.deepEqual(Pet.parse(msg.parsed), msg.parsed);
  }
});

const Weather = z.object({ city: z.string().max(12), days: z.number().int().min(1).max(7) });
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Weather for a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", maxLength: 12 }, days: { type: "integer", minimum: 1, maximum: 7 } },
        required: ["city", "days"],
        additionalProperties: false,
      },
    },
  },
];

test("tools with tool_choice required: a valid call, streamed or not", async () => {
  for (const seed of [1, 2, 3]) {
    const req = {
      model,
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools,
      tool_choice: "required",
      parallel_tool_calls: false,  // one call: a tiny model would otherwise call until max_tokens
      max_tokens: 150,
      temperature: 1,
      seed,
    };
    const r = await client.chat.completions.create(req);
    const ch = r.choices[0];
    assert.equal(ch.finish_reason, "tool_calls", JSON.stringify(r));
    assert.equal(ch.message.content, null);
    assert.ok(ch.message.tool_calls.length >= 1);
    const call = ch.message.tool_calls[0];
    assert.match(call.id, /^call_/);
    assert.equal(call.type, "function");
    assert.equal(call.function.name, "get_weather");
    Weather.parse(JSON.parse(call.function.arguments));

    // The SDK's streaming helper assembles the same call from the deltas.
    const stream = client.chat.completions.stream(req);
    let contentDeltas = "";
    stream.on("content", (d) => (contentDeltas += d));
    const fin = await stream.finalChatCompletion();
    const sc = fin.choices[0];
    assert.equal(sc.finish_reason, "tool_calls");
    assert.equal(contentDeltas, "", "no call markup leaks into content");
    assert.equal(sc.message.tool_calls.length, ch.message.tool_calls.length);
    assert.equal(sc.message.tool_calls[0].function.name, "get_weather");
    assert.deepEqual(JSON.parse(sc.message.tool_calls[0].function.arguments), JSON.parse(call.function.arguments));
  }
});

test("bad tool definitions and tool_choice are 400s naming the field", async () => {
  const bad = structuredClone(tools);
  bad[0].function.parameters.properties.city.type = "colour";
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }], tools: bad, max_tokens: 4 }),
    (e) => e.status === 400 && e.param === "tools[0].function.parameters",
  );
  await assert.rejects(
    client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "hi" }],
      tools,
      tool_choice: { type: "function", function: { name: "nope" } },
      max_tokens: 4,
    }),
    (e) => e.status === 400 && e.param === "tool_choice",
  );
});

test("LangChain agent loop: forced tool call, tool result fed back, text answer", async () => {
  const calls = [];
  const getWeather = tool(
    async ({ city, days }) => {
      calls.push({ city, days });
      return `Sunny in ${city} for ${days} days.`;
    },
    { name: "get_weather", description: "Weather for a city", schema: Weather },
  );
  const base = {
    model,
    apiKey: process.env.LLMFORGE_API_KEY,
    configuration: { baseURL: process.env.LLMFORGE_URL + "/v1" },
    temperature: 1,
    maxRetries: 0,
  };
  // Sampled at temperature 1, so seeded: unseeded, a rare draw ran past the token limit before the
  // call was complete and no call was parsed (seen once in a CI run). The limit is what the
  // 512-token context leaves after the 406-token prompt.
  const forced = new ChatOpenAI({ ...base, maxTokens: 106 }).bindTools([getWeather], {
    tool_choice: "get_weather",
    parallel_tool_calls: false,
  });
  // The answering turn: tool_choice "none" would still describe the tool in the prompt, which with
  // the call and its result no longer fits this model's 512-token context; the model without
  // tools bound answers from the conversation (the call and result rendered by the server).
  const answer = new ChatOpenAI({ ...base, maxTokens: 24 });
  const messages = [new HumanMessage("What is the weather in Paris?")];
  let final = null;
  for (let step = 0; step < 3 && final === null; step++) {
    const ai = await (step === 0 ? forced : answer).invoke(messages, { seed: 11 + step });
    assert.ok(isAIMessage(ai));
    messages.push(ai);
    if (!ai.tool_calls || ai.tool_calls.length === 0) {
      final = ai;
      break;
    }
    assert.equal(step, 0, "only the forced turn calls the tool");
    for (const tc of ai.tool_calls) {
      assert.equal(tc.name, "get_weather");
      Weather.parse(tc.args);
      messages.push(await getWeather.invoke(tc));  // a ToolMessage with the call's id
    }
  }
  assert.ok(final, "the loop ended with a text answer");
  assert.equal(typeof final.content, "string");
  assert.equal(calls.length, 1, "the tool ran once");
  assert.equal(messages[2].tool_call_id, messages[1].tool_calls[0].id);
});
