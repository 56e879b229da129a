// /v1/embeddings (serve --embeddings models/retriever) through the official openai SDK (which
// asks for base64 and decodes it) and LangChain's OpenAIEmbeddings: vectors of the retriever's
// size, unit length, and a question lands nearest the passage that answers it.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { OpenAIEmbeddings } from "@langchain/openai";

const baseURL = process.env.LLMFORGE_URL + "/v1";
const apiKey = process.env.LLMFORGE_API_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);

test("openai SDK embeddings.create: float and base64 agree", async () => {
  const r = await client.embeddings.create({ model: "shop-retriever", input: ["Returns are free within 30 days.", "hello"] });
  assert.equal(r.object, "list");
  assert.equal(r.data.length, 2);
  assert.equal(r.data[0].embedding.length, 128);
  assert.ok(Math.abs(norm(r.data[0].embedding) - 1) < 1e-4);
  const f = await client.embeddings.create({ model: "shop-retriever", input: "hello", encoding_format: "float" });
  f.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - r.data[1].embedding[i]) < 1e-6));
  assert.ok(r.usage.prompt_tokens > 0);
});

test("LangChain OpenAIEmbeddings: a question is nearest its passage", async () => {
  const emb = new OpenAIEmbeddings({ model: "shop-retriever", apiKey, configuration: { baseURL }, maxRetries: 0 });
  const docs = [
    "How to return an item. Start a return within 30 days of delivery. We email a prepaid return label.",
    "Resetting your password. Use Forgot password on the sign-in page.",
    "International shipping. We deliver to Canada and the United Kingdom in 7 to 12 business days.",
  ];
  const d = await emb.embedDocuments(docs);
  const q = await emb.embedQuery("query: I forgot my password, what do I do?");
  const scores = d.map((v) => dot(v, q));
  assert.equal(scores.indexOf(Math.max(...scores)), 1, `scores ${scores}`);
});

test("unknown embedding model is a 404", async () => {
  await assert.rejects(client.embeddings.create({ model: "text-embedding-3-small", input: "x" }), (e) => e.status === 404);
});
