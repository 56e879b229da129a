// The chat page of `llmforge serve --app shop` in headless Chromium (Debian's chromium, driven by
// playwright-core): GET /v1/app/info switches the page to the shop assistant's window; a customer
// signs in, starts a conversation and asks about one of their orders; the reply streams in, only
// the new message goes with the session id, and the side panel shows the tracked state (the order
// id) and the lookup line of that order; the conversation is in the list. After a reload the
// customer signs in again and opens it from the list: both turns and the state are back. An
// unknown customer gets a readable error line. A screenshot after the reply is saved as a test
// artifact ($LLMFORGE_ARTIFACTS/shop-page.png; on a failure, shop-page-failure.png shows the page
// as it was).
//   env: LLMFORGE_SHOP_URL, LLMFORGE_API_KEY: the shop server and its key
//        LLMFORGE_SHOP_CUSTOMER, LLMFORGE_SHOP_ORDER: a customer with orders and one of its order ids
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.LLMFORGE_SHOP_URL;
const customer = process.env.LLMFORGE_SHOP_CUSTOMER;
const order = process.env.LLMFORGE_SHOP_ORDER;

// Signs in and waits until the conversation list has loaded (or an error shows).
async function signIn(page, id) {
  await page.fill("#customer-id", id);
  await page.click("#signin-button");
  await page.waitForFunction((id) => document.getElementById("signed-in").textContent === "signed in as " + id ||
                                     document.getElementById("status").classList.contains("error"), id, { timeout: 10000 });
}
// The panel's state slot and lookup lines, as the page shows them.
const slot = (page, name) => page.textContent(`#state dd[data-slot="${name}"]`);
const lookupLines = (page) => page.$$eval("#lookup li:not(.empty)", (l) => l.map((x) => x.textContent));

test("the shop page: sign in, a conversation with the side panel, reopened after a reload", { timeout: 180000 }, async (t) => {
  if (!url || !customer || !order) {
    t.skip("LLMFORGE_SHOP_URL, LLMFORGE_SHOP_CUSTOMER and LLMFORGE_SHOP_ORDER are not set (run.sh sets them)");
    return;
  }
  const dir = process.env.LLMFORGE_ARTIFACTS || "build/test-artifacts";
  mkdirSync(dir, { recursive: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  let page = null;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const bodies = [];  // every chat request the page sent, as JSON
    page.on("request", (r) => { if (r.url().endsWith("/v1/chat/completions")) bodies.push(r.postDataJSON()); });
    await page.goto(url + "/");

    // The key (the page's API-key field) lets GET /v1/app/info through: shop mode.
    await page.fill("#api-key", process.env.LLMFORGE_API_KEY);
    await page.dispatchEvent("#api-key", "change");
    await page.waitForFunction(() => document.body.classList.contains("shop"), null, { timeout: 10000 });
    assert.equal(await page.isVisible("#customer-id"), true);
    assert.equal(await page.isVisible("#panel"), true);
    assert.equal(await page.isVisible("#reset"), false);

    // Sign in, start a conversation, ask about an order.
    await signIn(page, customer);
    assert.equal(await page.textContent("#signed-in"), "signed in as " + customer);
    await page.click("#new-session");
    await page.waitForSelector('#session-list button[aria-current="true"]', { timeout: 10000 });
    const sessionId = await page.getAttribute('#session-list button[aria-current="true"]', "data-id");
    assert.match(sessionId, /^s[0-9a-f]+$/);
    const question = `Where is my order #${order}?`;
    await page.fill("#message", question);
    await page.click("#send");
    await page.waitForSelector(".msg.assistant:not(.streaming)", { timeout: 60000 });
    await page.waitForFunction(() => document.getElementById("send").textContent === "Send", null, { timeout: 10000 });
    const reply = await page.textContent(".msg.assistant");
    assert.ok(reply.length > 0, "a reply");
    assert.doesNotMatch(await page.getAttribute("#status", "class") || "", /error/, await page.textContent("#status"));
    assert.equal(bodies.length, 1);
    assert.equal(bodies[0].session_id, sessionId);
    assert.deepEqual(bodies[0].messages, [{ role: "user", content: question }]);
    assert.equal(bodies[0].stream, true);

    // The panel: the order in the tracked state, its lookup line; the session in the list.
    assert.equal(await slot(page, "order_id"), order);
    assert.equal(await slot(page, "new_address"), "\u2014");
    assert.ok((await lookupLines(page)).some((l) => l.startsWith(`order #${order}`)), JSON.stringify(await lookupLines(page)));
    assert.equal(await page.$$eval(`#session-list button[data-id="${sessionId}"]`, (b) => b.length), 1);

    await page.screenshot({ path: join(dir, "shop-page.png") });

    // A reload forgets the page's state (the key stays in localStorage): sign in again, open the
    // conversation from the list; both turns and the state come from the server.
    await page.reload();
    await page.waitForFunction(() => document.body.classList.contains("shop"), null, { timeout: 10000 });
    assert.equal(await page.$$eval(".msg", (m) => m.length), 0);
    await signIn(page, customer);
    await page.click(`#session-list button[data-id="${sessionId}"]`);
    await page.waitForFunction(() => document.querySelectorAll(".msg").length === 2, null, { timeout: 10000 });
    assert.deepEqual(await page.$$eval(".msg", (m) => m.map((x) => x.className)), ["msg user", "msg assistant"]);
    assert.equal(await page.textContent(".msg.user"), question);
    assert.equal(await page.textContent(".msg.assistant"), reply);
    assert.equal(await page.getAttribute(`#session-list button[data-id="${sessionId}"]`, "aria-current"), "true");
    assert.equal(await slot(page, "order_id"), order);
    assert.notEqual(await slot(page, "intent"), "\u2014");
    assert.ok((await lookupLines(page)).some((l) => l.startsWith(`order #${order}`)), JSON.stringify(await lookupLines(page)));

    // An unknown customer: signing in shows the server's error in one line, and no conversations.
    await signIn(page, "U99999");
    assert.equal(await page.$$eval(".msg", (m) => m.length), 0);
    assert.equal(await page.$$eval("#session-list button", (b) => b.length), 0);
    await page.waitForFunction(() => document.getElementById("status").classList.contains("error"), null, { timeout: 10000 });
    const error = await page.textContent("#status");
    assert.match(error, /^HTTP 404 .*unknown customer 'U99999'/);
    assert.doesNotMatch(error, /\n/);
    assert.equal(await page.$$eval("#session-list button", (b) => b.length), 0);
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    if (page) await page.screenshot({ path: join(dir, "shop-page-failure.png") }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
});
