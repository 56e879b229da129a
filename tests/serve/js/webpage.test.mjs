// The chat page at GET / in headless Chromium (Debian's chromium, driven by playwright-core):
// a message is sent, the reply streams in (the text grows in several steps), the temperature
// slider reaches the request, and a screenshot is saved as a test artifact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

test("send a message and watch the reply stream in", async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const bodies = [];
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await page.goto(process.env.LLMFORGE_URL + "/");
    await page.fill("#api-key", process.env.LLMFORGE_API_KEY);
    await page.dispatchEvent("#api-key", "change");
    // Record every length the reply takes while it streams.
    await page.evaluate(() => {
      window.__lengths = [];
      new MutationObserver(() => {
        const m = document.querySelector(".msg.assistant");
        if (m) window.__lengths.push(m.textContent.length);
      }).observe(document.getElementById("transcript"), { subtree: true, childList: true, characterData: true });
    });
    await page.fill("#message", "Tell me a story about a bird.");
    await page.click("#send");
    await page.waitForSelector(".msg.assistant:not(.streaming)", { timeout: 60000 });
    const reply = await page.textContent(".msg.assistant");
    assert.ok(reply.length > 0, "a reply");
    const lengths = await page.evaluate(() => [...new Set(window.__lengths)].filter((n) => n > 0));
    assert.ok(lengths.length >= 2, `the reply grew in steps (${JSON.stringify(lengths)})`);
    assert.match(await page.textContent("#status"), /tokens\/s/);
    assert.equal(bodies[0].stream, true);
    assert.equal(bodies[0].temperature, 0.7);

    // A new temperature reaches the next request; the conversation history goes with it.
    await page.fill("#temperature", "0.25");
    await page.fill("#message", "And then?");
    await page.press("#message", "Enter");
    await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 2 &&
      !document.querySelector(".msg.assistant.streaming"), null, { timeout: 60000 });
    assert.equal(bodies[1].temperature, 0.25);
    assert.equal(bodies[1].messages.length, 3);

    const dir = process.env.LLMFORGE_ARTIFACTS || "build/test-artifacts";
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: dir + "/webchat.png", fullPage: true });
  } finally {
    await browser.close();
  }
});
