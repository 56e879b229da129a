// A real Prometheus (Debian's package) scrapes llmforge serve's /metrics: the target is up with
// no scrape error, and a query returns the server's request counter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("Prometheus scrapes /metrics", { timeout: 90000 }, async () => {
  const target = new URL(process.env.LLMFORGE_URL).host;
  // A request first, so the counter has a sample.
  const r = await fetch(process.env.LLMFORGE_URL + "/v1/models", { headers: { Authorization: "Bearer " + process.env.LLMFORGE_API_KEY } });
  assert.equal(r.status, 200);
  const dir = mkdtempSync(join(tmpdir(), "llmforge-prom-"));
  writeFileSync(join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: llmforge\n    static_configs:\n      - targets: ["${target}"]\n`);
  const port = await freePort();
  const prom = spawn(process.env.PROMETHEUS || "/usr/bin/prometheus", [
    "--config.file=" + join(dir, "prometheus.yml"), "--storage.tsdb.path=" + join(dir, "data"),
    "--web.listen-address=127.0.0.1:" + port], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  prom.stderr.on("data", (d) => { log += d; });
  const api = (q) => fetch(`http://127.0.0.1:${port}/api/v1/${q}`).then((x) => x.json());
  try {
    let up = null, value = null;
    const until = Date.now() + 60000;
    while (Date.now() < until && (up === null || value === null)) {
      await sleep(500);
      try {
        const t = await api("targets");
        const a = t.data.activeTargets.find((x) => x.labels.job === "llmforge");
        if (a && a.health === "up") { assert.equal(a.lastError, ""); up = a; }
        if (up) {
          const q = await api("query?query=" + encodeURIComponent('llmforge_requests_total{endpoint="/v1/models",status="200"}'));
          if (q.status === "success" && q.data.result.length > 0) value = Number(q.data.result[0].value[1]);
        }
      } catch (e) { /* Prometheus still starting */ }
    }
    assert.ok(up, "Prometheus never saw the target up; its log:\n" + log.slice(-2000));
    assert.ok(value >= 1, "the request counter was not queryable");
  } finally {
    prom.kill("SIGTERM");
    await new Promise((res) => { prom.on("exit", res); setTimeout(res, 5000); });
    rmSync(dir, { recursive: true, force: true });
  }
});
