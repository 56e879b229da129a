// The official `openai` npm package against llmforge serve (started by run.sh): chat and
// completions, streaming and not, n, stop, logprobs, models, and its error statuses.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.LLMFORGE_URL + "/v1", apiKey: process.env.LLMFORGE_API_KEY, maxRetries: 0 });
const model = process.env.LLMFORGE_MODEL;
const messages = [{ role: "system", content: "You tell short stories." }, { role: "user", content: "Tell me about a cat." }];

function checkUsage(u) {
  assert.equal(typeof u.prompt_tokens, "number");
  assert.equal(typeof u.completion_tokens, "number");
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}
// The token counts of two runs of one request; prompt_tokens_details.cached_tokens may differ
// (the second run finds the prompt in the prefix cache).
const counts = (u) => [u.prompt_tokens, u.completion_tokens, u.total_tokens];

test("models.list names the served model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

test("chat completion, not streamed", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage);
  assert.ok(r.usage.completion_tokens <= 24);
});

test("chat streaming equals the same greedy request not streamed", async () => {
  const req = { model, messages, max_tokens: 32, temperature: 0, seed: 5 };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.match(c.id, /^chatcmpl-/);
    chunks.push(c);
  }
  assert.ok(chunks.length > 2, "a stream of several chunks");
  assert.ok(chunks.every((c) => c.id === chunks[0].id), "one id for the whole stream");
  const text = chunks.flatMap((c) => c.choices).map((ch) => ch.delta?.content ?? "").join("");
  assert.equal(text, whole.choices[0].message.content);
  // finish_reason comes once, on the last chunk that has a choice; before it every one is null.
  const withChoice = chunks.filter((c) => c.choices.length > 0);
  const finishes = withChoice.map((c) => c.choices[0].finish_reason);
  assert.equal(finishes.at(-1), whole.choices[0].finish_reason);
  assert.ok(finishes.slice(0, -1).every((f) => f == null), `finish_reason before the end: ${JSON.stringify(finishes)}`);
  // include_usage: one last chunk with empty choices carries the usage.
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], "the usage chunk has no choices");
  assert.ok(last.usage, "a final usage chunk");
  checkUsage(last.usage);
  assert.deepEqual(counts(last.usage), counts(whole.usage));
  assert.ok(chunks.slice(0, -1).every((c) => !c.usage), "usage only on the last chunk");
});

test("completions, streamed and not", async () => {
  const req = { model, prompt: "Once upon a time", max_tokens: 20, temperature: 0 };
  const r = await client.completions.create(req);
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, "text_completion");
  assert.equal(r.model, model);
  assert.equal(typeof r.choices[0].text, "string");
  assert.ok(r.choices[0].text.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  checkUsage(r.usage);
  let text = "", finish = null, usage = null;
  for await (const c of await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
    assert.equal(c.object, "text_completion");
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      text += ch.text ?? "";
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.equal(text, r.choices[0].text);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.ok(usage, "a final usage chunk");
  assert.deepEqual(counts(usage), counts(r.usage));
});

test("n choices", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 1, seed: 42, n: 3 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  for (const c of r.choices) {
    assert.equal(c.message.role, "assistant");
    assert.equal(typeof c.message.content, "string");
    assert.ok(["stop", "length"].includes(c.finish_reason));
  }
  checkUsage(r.usage);
  // Streamed: every index appears and finishes.
  const finished = new Set();
  for await (const c of await client.chat.completions.create({ model, messages, max_tokens: 8, n: 2, seed: 1, stream: true })) {
    for (const ch of c.choices) if (ch.finish_reason) finished.add(ch.index);
  }
  assert.deepEqual([...finished].sort(), [0, 1]);
});

test("stop strings end the text before them", async () => {
  const free = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
  const words = free.choices[0].text.trim().split(/\s+/);
  const stop = " " + words[Math.min(3, words.length - 1)];
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop: [stop] });
  assert.ok(!r.choices[0].text.includes(stop), `"${r.choices[0].text}" contains the stop string "${stop}"`);
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok(free.choices[0].text.startsWith(r.choices[0].text));
  // Streamed, no piece of the stop string may leak out before the match is known.
  let streamed = "", finish = null;
  for await (const c of await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 40, temperature: 0, stop: [stop], stream: true })) {
    for (const ch of c.choices) { streamed += ch.text ?? ""; if (ch.finish_reason) finish = ch.finish_reason; }
  }
  assert.equal(streamed, r.choices[0].text);
  assert.equal(finish, "stop");
  // Chat takes a single string too.
  const chatFree = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0 });
  const cw = chatFree.choices[0].message.content.trim().split(/\s+/);
  const chatStop = cw[Math.min(2, cw.length - 1)];
  const cr = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0, stop: chatStop });
  assert.ok(!cr.choices[0].message.content.includes(chatStop), `"${cr.choices[0].message.content}" contains "${chatStop}"`);
  assert.equal(cr.choices[0].finish_reason, "stop");
});

test("max_tokens ends with finish_reason length", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 5, temperature: 0 });
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 5);
});

test("chat logprobs with top_logprobs", async () => {
  const r = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(typeof t.token, "string");
    assert.ok(t.logprob <= 0);
    assert.ok(Array.isArray(t.bytes) && t.bytes.every((b) => Number.isInteger(b) && b >= 0 && b <= 255));
    assert.equal(t.top_logprobs.length, 3);
    for (let i = 1; i < 3; i++) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob);
    // Greedy: the chosen token is the most likely one.
    assert.equal(t.top_logprobs[0].token, t.token);
  }
});

test("completions logprobs", async () => {
  const r = await client.completions.create({ model, prompt: "Once upon a time", max_tokens: 6, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  const n = lp.tokens.length;
  assert.equal(n, 6);
  assert.equal(lp.token_logprobs.length, n);
  assert.equal(lp.top_logprobs.length, n);
  assert.equal(lp.text_offset.length, n);
  assert.equal(lp.tokens.join(""), r.choices[0].text);
});

test("errors come back as the SDK's APIError with the right status", async () => {
  await assert.rejects(client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 4 }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found" && /does not exist/.test(e.message));
  await assert.rejects(client.completions.create({ model, prompt: "a", max_tokens: 100000 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "max_tokens" && e.type === "invalid_request_error");
  const noKey = new OpenAI({ baseURL: process.env.LLMFORGE_URL + "/v1", apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(noKey.completions.create({ model, prompt: "a", max_tokens: 2 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});
