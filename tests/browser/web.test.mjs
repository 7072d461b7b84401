// Drives the web page and the API reference in headless Chromium against a running server.
// Inputs (set by scripts/browser-test.sh): FACELENS_BASE, FACELENS_KEY (may be empty),
// FACELENS_IMAGE (a photo with a clear face), ARTIFACTS (folder for screenshots), CHROMIUM.
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";

const base = process.env.FACELENS_BASE;
const key = process.env.FACELENS_KEY || "";
const image = process.env.FACELENS_IMAGE;
const artifacts = process.env.ARTIFACTS || "artifacts";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !image) {
  console.error("FACELENS_BASE and FACELENS_IMAGE are required");
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // Nothing may be requested from anywhere but the server itself.
  const foreign = [];
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(base) && !u.startsWith("blob:") && !u.startsWith("data:")) foreign.push(u);
  });

  // --- the try-it page ---
  const resp = await page.goto(`${base}/`, { waitUntil: "load" });
  check(resp && resp.status() === 200, "GET / answers 200");
  check(await page.locator("#go").isDisabled(), "the detect button waits for an image");

  // Without a key on a server that needs one: a readable error.
  await page.setInputFiles("#file", image);
  if (key) {
    await page.click("#go");
    await page.waitForSelector('#status[data-state="error"]', { timeout: 60000 });
    const err = await page.locator("#error").innerText();
    check(/10001/.test(err) && /API key/i.test(err), `a missing key is explained: ${JSON.stringify(err)}`);
    await page.fill("#key", key);
  }
  await page.fill("#faces", "5");
  await page.click("#go");
  await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 120000 });
  const state = await page.getAttribute("#status", "data-state");
  const statusText = await page.locator("#status").innerText();
  check(state === "done", `the analysis succeeded (${statusText})`);
  const drawn = Number(await page.getAttribute("#canvas", "data-faces"));
  check(drawn >= 1, `boxes were drawn for ${drawn} face(s)`);
  const rows = page.locator("#attrs tbody tr.face-row");
  const nrows = await rows.count();
  check(nrows === drawn, `the attribute table has one row per face (${nrows})`);
  for (let i = 0; i < nrows; i++) {
    const age = (await rows.nth(i).locator("td.age").innerText()).trim();
    check(/^\d+$/.test(age), `face ${i + 1} has an age (${age})`);
    const gender = (await rows.nth(i).locator("td.gender").innerText()).trim();
    check(/^(male|female)/.test(gender), `face ${i + 1} has a gender (${gender})`);
  }
  const canvasPixels = await page.evaluate(() => {
    const c = document.getElementById("canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4 * 97) if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
    return lit;
  });
  check(canvasPixels > 0, "the canvas shows the image");
  const curl = await page.locator("#curl").innerText();
  check(curl.includes("/faceDetect/index") && curl.includes("face_num=5"), "the curl command names the contract's endpoint");
  const webPng = path.resolve(artifacts, "web.png");
  await page.screenshot({ path: webPng, fullPage: true });
  console.log(`screenshot: ${webPng}`);

  // --- the API reference ---
  const d = await page.goto(`${base}/docs`, { waitUntil: "load" });
  check(d && d.status() === 200, "GET /docs answers 200");
  await page.waitForFunction(() => Number(document.getElementById("doc").dataset.operations) > 0, null, { timeout: 30000 });
  const ops = await page.locator("section.op[data-path]").evaluateAll((s) => s.map((e) => `${e.dataset.method} ${e.dataset.path}`));
  check(ops.includes("post /v1/detect") && ops.includes("post /faceDetect/index"), `operations are listed: ${ops.join(", ")}`);
  // Try it: /healthz from the reference page.
  const health = page.locator('section.op[data-path="/healthz"]');
  await health.locator(".tryit button").click();
  await health.locator(".tryit pre:not([hidden])").waitFor({ timeout: 10000 });
  check((await health.locator(".resp-status").innerText()).includes("200"), "the try-it form calls /healthz");
  await page.evaluate(() => window.scrollTo(0, 0));
  const docsPng = path.resolve(artifacts, "docs.png");
  await page.screenshot({ path: docsPng, fullPage: false });
  console.log(`screenshot: ${docsPng}`);

  check(consoleErrors.length === 0 || (key && consoleErrors.every((e) => /401/.test(e))),
    `no script errors in the console${consoleErrors.length ? `: ${consoleErrors.join(" | ")}` : ""}`);
  check(foreign.length === 0, `nothing requested from elsewhere${foreign.length ? `: ${foreign.join(", ")}` : ""}`);
  await context.close();
} finally {
  await browser.close();
}

if (failures.length) {
  console.error(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log("browser test passed");
