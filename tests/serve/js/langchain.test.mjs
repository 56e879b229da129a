// LangChain's ChatOpenAI (@langchain/openai) against llmforge serve: invoke and stream.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatOpenAI } from "@langchain/openai";
import { HumanMessage, SystemMessage } from "@langchain/core/messages";

const llm = new ChatOpenAI({
  model: process.env.LLMFORGE_MODEL,
  apiKey: process.env.LLMFORGE_API_KEY,
  configuration: { baseURL: process.env.LLMFORGE_URL + "/v1" },
  temperature: 0,
  maxTokens: 16,
  maxRetries: 0,
});
const input = [new SystemMessage("You tell short stories."), new HumanMessage("A story about a dog, please.")];

test("ChatOpenAI.invoke returns an AIMessage", async () => {
  const msg = await llm.invoke(input);
  assert.equal(msg._getType(), "ai");
  assert.equal(typeof msg.content, "string");
  assert.ok(msg.content.length > 0);
  if (msg.usage_metadata) {
    assert.ok(msg.usage_metadata.output_tokens > 0 && msg.usage_metadata.output_tokens <= 16);
    assert.equal(msg.usage_metadata.total_tokens, msg.usage_metadata.input_tokens + msg.usage_metadata.output_tokens);
  }
});

test("ChatOpenAI.stream yields the same text in pieces", async () => {
  const whole = await llm.invoke(input);
  let text = "", chunks = 0;
  for await (const c of await llm.stream(input)) {
    text += c.content;
    chunks++;
  }
  assert.ok(chunks > 1);
  assert.equal(text, whole.content);
});
