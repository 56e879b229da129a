#!/usr/bin/env node
// Load generator for OpenAI-compatible servers (llmforge serve, llama.cpp's llama-server): the
// figures of docs/PERFORMANCE.md "Server". Plain Node.js (18+), no packages.
//
//   node bench/serve_bench.mjs --url http://127.0.0.1:8080 [--key K] [--label NAME]
//        [--streams 1,4,16] [--gen 128] [--ttft-prompt 100] [--ttft-rounds 5]
//        [--prefix 500] [--prefix-requests 6] [--vocab 32000] [--seed 1]
//
// Prompts are token-id arrays (both servers accept them in /v1/completions), so both see exactly
// the same tokens. Prints one JSON object with every figure.
//  - throughput: N concurrent non-streamed requests (16-token prompts, --gen tokens each,
//    ignore_eos); aggregate generated tokens / wall time, from the servers' usage counts.
//  - ttft: 4 concurrent clients, each --ttft-rounds streamed requests with a fresh
//    --ttft-prompt-token prompt; time to the first streamed token; p50 / p99.
//  - prefix: sequential streamed requests whose prompts start with the same --prefix tokens
//    (then 16 of their own) vs. ones with a fresh prefix each; median time to first token.
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
  if (v.startsWith("--")) a.push([v.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "1"]);
  return a;
}, []));
const url = args.url || "http://127.0.0.1:8080";
const key = args.key || "";
const streams = (args.streams || "1,4,16").split(",").map(Number);
const gen = Number(args.gen || 128);
const ttftPrompt = Number(args["ttft-prompt"] || 100);
const ttftRounds = Number(args["ttft-rounds"] || 5);
const prefixLen = Number(args.prefix || 500);
const prefixRequests = Number(args["prefix-requests"] || 6);
const vocab = Number(args.vocab || 32000);
let seed = Number(args.seed || 1);

function rand() {  // xorshift32: the same prompts for every server
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const tokens = (n) => Array.from({ length: n }, () => 100 + Math.floor(rand() * (vocab - 200)));
const headers = { "Content-Type": "application/json", ...(key ? { Authorization: "Bearer " + key } : {}) };
const now = () => performance.now() / 1000;

async function complete(prompt, maxTokens) {
  const r = await fetch(url + "/v1/completions", {
    method: "POST", headers,
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  return (await r.json()).usage.completion_tokens;
}

// Seconds to the first streamed token.
async function firstToken(prompt, maxTokens) {
  const t0 = now();
  const r = await fetch(url + "/v1/completions", {
    method: "POST", headers,
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "", ttft = null;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (ttft === null && j.choices && j.choices.length && (j.choices[0].text || "").length > 0) ttft = now() - t0;
    }
  }
  return ttft ?? now() - t0;
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const median = (xs) => pct(xs, 0.5);

const out = { label: args.label || url, gen, throughput: {}, ttft: {}, prefix: {} };
for (let i = 0; ; i++) {  // warm-up; a server may still be loading (503)
  try { await complete(tokens(16), 8); break; } catch (e) {
    if (i > 600) throw e;
    await new Promise((r) => setTimeout(r, 100));
  }
}
for (const n of streams) {
  const t0 = now();
  const counts = await Promise.all(Array.from({ length: n }, () => complete(tokens(16), gen)));
  const dt = now() - t0;
  const total = counts.reduce((a, b) => a + b, 0);
  out.throughput[n] = { tokens: total, seconds: +dt.toFixed(3), tokens_per_s: +(total / dt).toFixed(1) };
  process.stderr.write(`${out.label}: ${n} streams: ${(total / dt).toFixed(1)} t/s\n`);
}
{
  const samples = [];
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let i = 0; i < ttftRounds; i++) samples.push(await firstToken(tokens(ttftPrompt), 16));
  }));
  out.ttft = { streams: 4, prompt_tokens: ttftPrompt, n: samples.length,
               p50_ms: +(median(samples) * 1000).toFixed(1), p99_ms: +(pct(samples, 0.99) * 1000).toFixed(1) };
  process.stderr.write(`${out.label}: TTFT p50 ${out.ttft.p50_ms} ms, p99 ${out.ttft.p99_ms} ms\n`);
}
{
  const cold = [], warm = [];
  for (let i = 0; i < prefixRequests; i++) cold.push(await firstToken([...tokens(prefixLen), ...tokens(16)], 1));
  const shared = tokens(prefixLen);
  await firstToken([...shared, ...tokens(16)], 1);  // the first one fills the cache
  for (let i = 0; i < prefixRequests; i++) warm.push(await firstToken([...shared, ...tokens(16)], 1));
  out.prefix = { prefix_tokens: prefixLen, cold_ms: +(median(cold) * 1000).toFixed(1), warm_ms: +(median(warm) * 1000).toFixed(1),
                 speedup: +(median(cold) / median(warm)).toFixed(2) };
  process.stderr.write(`${out.label}: prefix ${prefixLen}: cold ${out.prefix.cold_ms} ms, shared ${out.prefix.warm_ms} ms\n`);
}
console.log(JSON.stringify(out));
