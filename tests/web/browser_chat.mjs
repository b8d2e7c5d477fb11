// Two people chat in their browsers through Heron's own /chat page (Converse.js).
// Usage: node browser_chat.mjs <chat URL> <jid1> <jid2> <password> <artefact dir>
// Exits 0 when each saw the other's message; screenshots of both pages go to the artefacts.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.HERON_WEB_DIR, "package.json"));
const { chromium } = require("playwright-core");

const [url, first, second, password, artefacts] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function person(jid) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`[${jid}] page error: ${err.message}`));
  await page.goto(url);
  await page.locator('input[name="jid"]').fill(jid);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('input[name="password"]').press("Enter");
  // Logged in: the controlbox shows the user's own status.
  await page.locator("converse-user-profile, .xmpp-status, #controlbox .controlbox-pane")
    .first().waitFor({ timeout: 30000 });
  await page.waitForFunction(() => !document.querySelector('input[name="password"]'),
    null, { timeout: 30000 });
  return page;
}

async function openChat(page, jid) {
  await page.evaluate((jid) => { window.location.hash = `converse/chat?jid=${jid}`; }, jid);
  await page.locator("textarea.chat-textarea").first().waitFor({ timeout: 30000 });
}

async function say(page, text) {
  const box = page.locator("textarea.chat-textarea").first();
  await box.fill(text);
  await box.press("Enter");
}

async function sees(page, text) {
  await page.locator(".chat-msg__text", { hasText: text }).first().waitFor({ timeout: 30000 });
}

let status = 1;
let pages = [];
try {
  const a = await person(first);
  const b = await person(second);
  pages = [a, b];
  await openChat(a, second);
  await openChat(b, first);
  await say(a, "Hello from the first browser");
  await sees(b, "Hello from the first browser");
  await say(b, "And hello back from the second");
  await sees(a, "And hello back from the second");
  status = 0;
} catch (err) {
  console.error(String(err && err.stack || err));
} finally {
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: path.join(artefacts, `chat-${i + 1}.png`) }).catch(() => {});
  }
  await browser.close();
}
process.exit(status);
