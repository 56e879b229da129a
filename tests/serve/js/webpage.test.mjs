// The chat page at GET / in headless Chromium (Debian's chromium, driven by playwright-core):
// errors show in the status line, a message is sent, the reply streams in (the text grows in
// several steps), the temperature slider reaches the next request, a full context drops the
// oldest exchange, Stop ends a reply midway, and a screenshot is saved as a test artifact
// ($LLMFORGE_ARTIFACTS/webchat.png).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.LLMFORGE_URL;
// In the page: whether exactly n replies are finished.
const replies = (n) => document.querySelectorAll(".msg.assistant:not(.streaming)").length === n;

test("the chat page streams replies, sends the settings, stops on request", { timeout: 180000 }, async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const bodies = [];  // every chat request the page sent, as JSON
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await page.goto(url + "/");

    // No key yet: GET /v1/models answers 401 and the status line shows the server's error.
    await page.waitForFunction(() => document.getElementById("status").textContent !== "");
    assert.match(await page.textContent("#status"), /^HTTP 401 authentication_error/);
    await page.fill("#api-key", process.env.LLMFORGE_API_KEY);
    await page.dispatchEvent("#api-key", "change");
    await page.waitForFunction((m) => document.getElementById("status").textContent.includes(m), process.env.LLMFORGE_MODEL);
    assert.equal(await page.evaluate(() => localStorage.getItem("llmforge-api-key")), process.env.LLMFORGE_API_KEY);
    assert.equal(await page.inputValue("#temperature"), "0.7");
    assert.equal(await page.inputValue("#max-tokens"), "200");

    // Record every length the first reply takes while it streams.
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
    assert.deepEqual(bodies[0].stream_options, { include_usage: true });
    assert.equal(bodies[0].temperature, 0.7);
    assert.equal(bodies[0].max_tokens, 200);

    // A new temperature reaches the next request (sent with Enter); the conversation goes with it.
    await page.fill("#temperature", "0.25");
    assert.equal(await page.textContent("#temperature-value"), "0.25");
    await page.fill("#message", "And then?");
    await page.press("#message", "Enter");
    await page.waitForFunction(replies, 2, { timeout: 60000 });
    assert.equal(bodies[1].temperature, 0.25);
    assert.deepEqual(bodies[1].messages.map((m) => m.role), ["user", "assistant", "user"]);
    assert.equal(bodies[1].messages[1].content, reply);

    const dir = process.env.LLMFORGE_ARTIFACTS || "build/test-artifacts";
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "webchat.png"), fullPage: true });

    // A full context: the first try of the next turn gets the server's 400 context_length_exceeded
    // (faked here once, so it does not depend on how long the replies were); the page leaves out
    // the oldest exchange, dims it, and tries again.
    let faked = false;
    await page.route("**/v1/chat/completions", (route) => {
      if (faked) return route.continue();
      faked = true;
      return route.fulfill({ status: 400, contentType: "application/json", body: JSON.stringify({ error: {
        message: "This model's maximum context length is 512 tokens (faked by the test)", type: "invalid_request_error",
        param: "messages", code: "context_length_exceeded" } }) });
    });
    // Stop: with the network throttled the reply trickles in; Stop aborts the fetch, the partial
    // reply stays and the button says Send again.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Network.enable");  // throttling applies only with the Network domain on
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: 2000, uploadThroughput: -1 });
    const before = bodies.length;
    await page.fill("#message", "One more, please.");
    await page.click("#send");
    await page.waitForFunction(() => document.querySelector(".msg.assistant.streaming")?.textContent.length > 0, null, { timeout: 60000 });
    assert.equal(await page.textContent("#send"), "Stop");
    await page.click("#send");
    await page.waitForFunction(() => !document.querySelector(".msg.streaming"), null, { timeout: 10000 });
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    await page.unroute("**/v1/chat/completions");
    assert.equal(await page.textContent("#send"), "Send");
    assert.match(await page.textContent("#status"), /^stopped .*left out to fit/);
    assert.equal(await page.$$eval(".msg.assistant", (m) => m.length), 3);
    const tries = bodies.slice(before);
    assert.ok(tries.length >= 2, "the page tried again after context_length_exceeded");
    assert.equal(tries[0].messages.length, 5);
    assert.deepEqual(tries.at(-1).messages, tries[0].messages.slice(5 - tries.at(-1).messages.length));
    assert.ok(await page.$$eval(".msg.dropped", (m) => m.length) >= 2);

    // New chat empties the transcript and the next request starts a fresh conversation.
    await page.click("#reset");
    assert.equal(await page.$$eval(".msg", (m) => m.length), 0);
    await page.fill("#message", "Hello again.");
    await page.click("#send");
    await page.waitForFunction(replies, 1, { timeout: 60000 });
    assert.equal(bodies.at(-1).messages.length, 1);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
  }
});
