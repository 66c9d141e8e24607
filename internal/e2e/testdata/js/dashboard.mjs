// Drives the dashboard in Debian's Chromium with playwright-core, step by
// step with the Go test: it prints "STEP <name>" when a step holds and
// waits for a line on stdin before the next; any failure exits non-zero.
//   node dashboard.mjs URL FUNCTION INVOCATIONS QUEUE DEPTH MARKER SHOTS
import { chromium } from "playwright-core";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";

const [url, fn, invocations, queue, depth, marker, shots] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = async (name) => {
  console.log("STEP " + name);
  const next = await lines.next();
  if (next.done) process.exit(0);
};

const ctx = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), "stratus-chromium-")), {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  viewport: { width: 1280, height: 900 },
});
const errors = [];
const page = ctx.pages()[0] || (await ctx.newPage());
page.on("console", (m) => { if (m.type() === "error") errors.push("console: " + m.text() + " " + (m.location().url || "")); });
page.on("pageerror", (e) => errors.push("page error: " + e.message));
page.on("response", (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
const fail = async (msg) => {
  await page.screenshot({ path: path.join(shots, "failure.png"), fullPage: true }).catch(() => {});
  console.error(msg + (errors.length ? "\n" + errors.join("\n") : ""));
  await ctx.close();
  process.exit(1);
};
const cell = (col) => `#functions tr[data-function="${fn}"] td[data-col="${col}"]`;
const waitText = async (selector, want, what) => {
  try {
    await page.waitForFunction(([s, w]) => document.querySelector(s)?.textContent.trim() === w, [selector, want], { timeout: 20000 });
  } catch {
    const got = await page.locator(selector).first().textContent().catch(() => "(nothing)");
    await fail(`${what}: want ${want}, the page shows ${got}`);
  }
};

try {
  await page.goto(url);
  // Signed in from the fragment, which leaves the address at once.
  if (page.url().includes("secret=")) await fail("the key stayed in the address");
  await waitText(cell("invocations"), invocations, "invocations of " + fn);
  await waitText(cell("errors"), "0", "errors of " + fn);
  // More functions than a page holds: paging, and search finds ours.
  if (!(await page.locator(".pager").textContent()).includes("of 2")) await fail("no second page of functions");
  await page.fill("#search", fn);
  await page.waitForFunction((f) => document.querySelectorAll("#functions tbody tr").length === 1 && document.querySelector(`tr[data-function="${f}"]`), fn, { timeout: 10000 })
    .catch(() => fail("search did not narrow the list to " + fn));
  await page.fill("#search", "");
  await page.screenshot({ path: path.join(shots, "functions.png"), fullPage: true });
  await step("overview");

  // Live: the test invoked twice more; the count moves without a reload.
  await waitText(cell("invocations"), String(Number(invocations) + 2), "invocations after two more");
  await step("live");

  await page.click(`#functions tr[data-function="${fn}"] a`);
  await page.waitForFunction(() => document.querySelector("#triggers")?.textContent.includes("Function URL"), null, { timeout: 20000 })
    .catch(() => fail("the function page does not show its URL among its triggers"));
  await page.waitForSelector("#invocations tbody tr", { timeout: 20000 }).catch(() => fail("no recent invocations"));
  await step("function");
  // The test invoked with a marker the function logs: the log follows.
  await page.waitForFunction((m) => document.querySelector("#log")?.textContent.includes(m), marker, { timeout: 20000 })
    .catch(() => fail("the log did not follow the marker " + marker));
  await page.screenshot({ path: path.join(shots, "function.png"), fullPage: true });
  await step("log");

  await page.goto(url.split("#")[0] + "#/queues");
  await waitText(`#queues tr[data-queue="${queue}"] td[data-col="visible"]`, depth, "depth of queue " + queue);
  await page.screenshot({ path: path.join(shots, "queues.png"), fullPage: true });

  // The node view lists the nodes of its cluster: this one alone here.
  await page.goto(url.split("#")[0] + "#/node");
  await page.waitForFunction(() => document.querySelector("#nodes tbody")?.textContent.includes("(this one)"), null, { timeout: 20000 })
    .catch(() => fail("the node view lists no nodes"));

  // A phone's width: nothing wider than the window.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(url.split("#")[0] + "#/");
  await page.waitForSelector("#functions tbody tr", { timeout: 20000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: path.join(shots, "narrow.png"), fullPage: true });
  if (overflow > 1) await fail(`at 390 px the page is ${overflow} px too wide`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await step("narrow");
  // Idle, open on the overview, while the test measures the server's CPU.
  await step("idle");
  // A function failing every time is an alert, shown on the page.
  await page.waitForFunction(() => document.querySelector("#alerts")?.textContent.includes("StratusFunctionErrors dash-bad"), null, { timeout: 40000 })
    .catch(() => fail("the dashboard shows no alert for dash-bad"));
  await page.screenshot({ path: path.join(shots, "alerts.png"), fullPage: false });
  if (errors.length) await fail("errors in the page");
  console.log("STEP done");
} catch (e) {
  await fail(String(e && e.stack ? e.stack : e));
}
await ctx.close();
process.exit(0); // stdin, still open, would keep the process alive
