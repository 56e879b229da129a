#!/usr/bin/env node
// SVG bar chart of bench/serve_ab.sh results (JSON lines from serve_bench.mjs): median aggregate
// tokens/s at each stream count, and median TTFT, per server.   node bench/plot_serve.mjs IN.jsonl OUT.svg
import { readFileSync, writeFileSync } from "node:fs";
const [inFile, outFile] = process.argv.slice(2);
const runs = readFileSync(inFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const labels = [...new Set(runs.map((r) => r.label))];
const streams = Object.keys(runs[0].throughput);
const groups = [...streams.map((n) => ({ name: `${n} stream${n === "1" ? "" : "s"} (t/s)`,
  get: (r) => r.throughput[n].tokens_per_s })), { name: "TTFT p50 (ms, lower is better)", get: (r) => r.ttft.p50_ms }];
const colors = ["#2563eb", "#f59e0b", "#10b981", "#ef4444"];
const W = 760, H = 320, top = 40, base = 260, gw = W / groups.length, bw = 46;
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">` +
  `<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="14">` +
  `Server benchmark (medians of ${runs.length / labels.length} rounds): ${labels.join(" vs ")}</text>`;
groups.forEach((g, gi) => {
  const vals = labels.map((l) => med(runs.filter((r) => r.label === l).map(g.get)));
  const max = Math.max(...vals);
  vals.forEach((v, li) => {
    const h = (base - top) * v / max, x = gi * gw + gw / 2 - (labels.length * bw) / 2 + li * bw;
    svg += `<rect x="${x}" y="${base - h}" width="${bw - 6}" height="${h}" fill="${colors[li % 4]}"/>` +
      `<text x="${x + (bw - 6) / 2}" y="${base - h - 4}" text-anchor="middle">${v}</text>`;
  });
  svg += `<text x="${gi * gw + gw / 2}" y="${base + 18}" text-anchor="middle">${g.name}</text>`;
});
labels.forEach((l, li) => {
  svg += `<rect x="${10 + li * 180}" y="${H - 22}" width="12" height="12" fill="${colors[li % 4]}"/>` +
    `<text x="${28 + li * 180}" y="${H - 12}">${l}</text>`;
});
writeFileSync(outFile, svg + "</svg>\n");
