// LangChain's ChatOpenAI (@langchain/openai) against llmforge serve (started by run.sh): invoke
// returns an AIMessage, stream yields the same greedy text in pieces, and the token usage LangChain
// reads from the server's `usage` adds up where it exposes it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatOpenAI } from "@langchain/openai";
import { HumanMessage, SystemMessage, isAIMessage } from "@langchain/core/messages";

const llm = new ChatOpenAI({
  model: process.env.LLMFORGE_MODEL,
  apiKey: process.env.LLMFORGE_API_KEY,
  configuration: { baseURL: process.env.LLMFORGE_URL + "/v1" },
  temperature: 0,
  maxTokens: 16,
  maxRetries: 0,
});
const input = [new SystemMessage("You tell short stories."), new HumanMessage("A story about a dog, please.")];

// usage_metadata is optional in LangChain's types: check it only when it is there.
function checkUsage(u) {
  if (!u) return;
  assert.ok(u.input_tokens > 0);
  assert.ok(u.output_tokens > 0 && u.output_tokens <= 16);
  assert.equal(u.total_tokens, u.input_tokens + u.output_tokens);
}

test("ChatOpenAI.invoke returns an AIMessage", async () => {
  const msg = await llm.invoke(input);
  assert.ok(isAIMessage(msg), "an AIMessage");
  assert.equal(typeof msg.content, "string");
  assert.ok(msg.content.length > 0);
  checkUsage(msg.usage_metadata);
  // The single-message form works too.
  const one = await llm.invoke([new HumanMessage("Hello")]);
  assert.equal(typeof one.content, "string");
});

test("ChatOpenAI.stream yields the same text in pieces", async () => {
  const whole = await llm.invoke(input);
  let text = "", chunks = 0, sum = null;
  for await (const c of await llm.stream(input)) {
    text += c.content;
    chunks++;
    sum = sum ? sum.concat(c) : c;  // concat also adds up usage_metadata
  }
  assert.ok(chunks > 1, "more than one chunk");
  assert.equal(text, whole.content);
  checkUsage(sum.usage_metadata);
  if (sum.usage_metadata && whole.usage_metadata) {
    assert.equal(sum.usage_metadata.output_tokens, whole.usage_metadata.output_tokens);
  }
});
