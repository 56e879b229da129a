// Images in chat requests against a vision-language model (run.sh trains a tiny one with
// `llmforge train-vlm` and serves it): the official `openai` package sends an image_url content
// part (a data: URI) streamed and not, and gets the server's one-line 400 for a remote URL; the
// chat page in headless Chromium (Debian's chromium, playwright-core) attaches an image with the
// image button and by a drop, shows it as a thumbnail, sends it as a content part and gets a reply,
// and shows a bad image's error in the status line. A screenshot is saved as a test artifact
// ($LLMFORGE_ARTIFACTS/webchat-image.png).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { chromium } from "playwright-core";

const url = process.env.LLMFORGE_VLM_URL;
const model = process.env.LLMFORGE_VLM_MODEL;
const imagePath = process.env.LLMFORGE_VLM_IMAGE;  // a PNG scene (llmforge gen-vqa)
const client = new OpenAI({ baseURL: url + "/v1", apiKey: process.env.LLMFORGE_API_KEY, maxRetries: 0 });
const dataUri = "data:image/png;base64," + readFileSync(imagePath).toString("base64");
const question = "How many objects are there?";
const imageMessages = (uri) => [{ role: "user", content: [
  { type: "image_url", image_url: { url: uri, detail: "low" } }, { type: "text", text: question }] }];

test("openai: an image content part, streamed and not, gives the same greedy reply", async () => {
  const req = { model, messages: imageMessages(dataUri), max_tokens: 12, temperature: 0 };
  const whole = await client.chat.completions.create(req);
  assert.equal(whole.object, "chat.completion");
  assert.equal(typeof whole.choices[0].message.content, "string");
  assert.ok(whole.choices[0].message.content.length > 0, "a reply");
  // The prompt's positions: the text's tokens and the image's rows (64 for this model's tower).
  assert.ok(whole.usage.prompt_tokens > 64, `prompt_tokens ${whole.usage.prompt_tokens}`);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage = null;
  for await (const c of stream) {
    for (const ch of c.choices) text += ch.delta?.content ?? "";
    if (c.usage) usage = c.usage;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
  // The same image again: its positions come back from the cache.
  assert.ok(usage.prompt_tokens_details.cached_tokens > 0, JSON.stringify(usage));
});

test("openai: a remote image URL is a 400 naming the part", async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: imageMessages("https://example.com/cat.png"), max_tokens: 4 }),
    (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.param, "messages[0].content[0].image_url");
      assert.equal(e.message, "400 messages[0].content[0].image_url: remote image URLs are not fetched (no network); " +
                   "send the image as a data: URI");
      return true;
    });
});

test("the chat page attaches an image, shows it and sends it with the message", { timeout: 180000 }, async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const bodies = [];
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await page.goto(url + "/");
    await page.fill("#api-key", process.env.LLMFORGE_API_KEY);
    await page.dispatchEvent("#api-key", "change");
    await page.waitForFunction((m) => document.getElementById("status").textContent.includes(m), model);
    await page.fill("#max-tokens", "16");  // short replies: the whole conversation fits the context

    // A drop on the chat attaches a thumbnail; its × removes it.
    await page.evaluate(async (uri) => {
      const blob = await (await fetch(uri)).blob();
      const dt = new DataTransfer();
      dt.items.add(new File([blob], "dropped.png", { type: "image/png" }));
      document.getElementById("chat").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, dataUri);
    await page.waitForSelector("#attachments img.thumb");
    await page.click("#attachments button");
    assert.equal(await page.$$eval("#attachments img", (m) => m.length), 0);

    // The image button: the file goes with the next message, before its text.
    await page.setInputFiles("#image-input", imagePath);
    await page.waitForSelector("#attachments img.thumb");
    await page.fill("#message", question);
    await page.click("#send");
    await page.waitForSelector(".msg.assistant:not(.streaming)", { timeout: 60000 });
    assert.ok((await page.textContent(".msg.assistant")).length > 0, "a reply");
    assert.match(await page.textContent("#status"), /tokens\/s/);
    assert.equal(await page.$$eval(".msg.user img.thumb", (m) => m.length), 1);
    assert.equal(await page.$$eval("#attachments img", (m) => m.length), 0, "sent: nothing left attached");
    const content = bodies[0].messages[0].content;
    assert.deepEqual(content.map((p) => p.type), ["image_url", "text"]);
    assert.equal(content[0].image_url.url, dataUri);
    assert.equal(content[1].text, question);

    const dir = process.env.LLMFORGE_ARTIFACTS || "build/test-artifacts";
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "webchat-image.png"), fullPage: true });

    // Bytes that are not an image: the server's one-line 400 in the status line; the turn is
    // marked failed and its text and image come back to send again.
    await page.setInputFiles("#image-input", { name: "fake.png", mimeType: "image/png", buffer: Buffer.from("hello, not a picture") });
    await page.fill("#message", "And this one?");
    await page.click("#send");
    await page.waitForFunction(() => document.getElementById("status").classList.contains("error"), null, { timeout: 60000 });
    assert.match(await page.textContent("#status"),
      /^HTTP 400 invalid_request_error \[param messages\[2\]\.content\[0\]\.image_url\]: .*not a PNG or JPEG image \(starts with 68 65 6c 6c 6f/);
    assert.equal(await page.$$eval(".msg.user.failed", (m) => m.length), 1);
    assert.equal(await page.inputValue("#message"), "And this one?");
    assert.equal(await page.$$eval("#attachments img", (m) => m.length), 1);
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
  }
});
