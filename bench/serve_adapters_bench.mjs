#!/usr/bin/env node
// Load generator for "Serving LoRA adapters (issue 14)" in docs/PERFORMANCE.md: N concurrent
// non-streamed greedy completions against a running llmforge serve, once all naming the base
// model and once spread round-robin over the given adapters, the same token-id prompts both times,
// alternating, --runs times. Aggregate generated tokens / wall time (from the usage counts); the
// median of each and their ratio. Plain Node.js (18+), no packages.
//
//   node bench/serve_adapters_bench.mjs --url http://127.0.0.1:8080 --base ID --adapters a,b,c,d
//        [--streams 16] [--gen 64] [--prompt 32] [--runs 3] [--vocab 32000] [--eos 2] [--seed 1]
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => {
  if (v.startsWith("--")) a.push([v.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "1"]);
  return a;
}, []));
const url = args.url || "http://127.0.0.1:8080";
const base = args.base;
const adapters = (args.adapters || "").split(",").filter(Boolean);
const streams = Number(args.streams || 16), gen = Number(args.gen || 64), promptLen = Number(args.prompt || 32);
const runs = Number(args.runs || 3), vocab = Number(args.vocab || 32000), eos = Number(args.eos ?? 2);
let seed = Number(args.seed || 1);
if (!base || adapters.length === 0) {
  console.error("usage: serve_adapters_bench.mjs --url URL --base ID --adapters a,b,... [--streams 16] [--gen 64]");
  process.exit(1);
}
function rand() {  // xorshift32: the same prompts every run
  seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const prompts = Array.from({ length: streams }, () =>
  Array.from({ length: promptLen }, () => 100 + Math.floor(rand() * (vocab - 200))));
const now = () => performance.now() / 1000;

async function complete(model, prompt) {
  const res = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model, prompt, max_tokens: gen, temperature: 0, logit_bias: { [eos]: -100 } }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`${model}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return { tokens: body.usage.completion_tokens, text: body.choices[0].text };
}

// All streams at once; aggregate generated tokens per second.
async function round(models) {
  const t0 = now();
  const out = await Promise.all(prompts.map((p, i) => complete(models[i % models.length], p)));
  const dt = now() - t0;
  return { tps: out.reduce((s, r) => s + r.tokens, 0) / dt, texts: out.map((r) => r.text) };
}

const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
await round([base]);  // warm-up
const baseTps = [], loraTps = [];
let firstLora = null, sameOutputs = true;
for (let r = 0; r < runs; ++r) {
  const b = await round([base]);
  const l = await round(adapters);
  baseTps.push(b.tps);
  loraTps.push(l.tps);
  if (firstLora === null) firstLora = l.texts;
  else sameOutputs &&= l.texts.every((t, i) => t === firstLora[i]);
  console.error(`run ${r + 1}: no adapter ${b.tps.toFixed(1)} tok/s, ${adapters.length} adapters ${l.tps.toFixed(1)} tok/s`);
}
const b = median(baseTps), l = median(loraTps);
console.log(JSON.stringify({ streams, gen, prompt: promptLen, adapters: adapters.length, runs,
  base_tok_s: +b.toFixed(1), adapters_tok_s: +l.toFixed(1), ratio: +(l / b).toFixed(3),
  base_runs: baseTps.map((x) => +x.toFixed(1)), adapter_runs: loraTps.map((x) => +x.toFixed(1)),
  adapter_outputs_identical_across_runs: sameOutputs }));
