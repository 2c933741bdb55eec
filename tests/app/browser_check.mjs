// Drive the running crmn-viz app in Chromium (playwright-core) and save a screenshot of every page.
//
// Usage: node tests/app/browser_check.mjs <plan.json>
// plan: {"url": "http://127.0.0.1:8501", "out": "artifacts/screenshots", "image": "x.png",
//        "bad_image": "bad.png", "checkpoints": {"crmn": "...", "renet": "...", "rir": "...", "faces": "..."}}
// Prints one JSON line per step; exits non-zero on the first failure (after a screenshot).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(plan.out, { recursive: true });
for (const old of fs.readdirSync(plan.out)) if (old.endsWith(".png")) fs.rmSync(path.join(plan.out, old));
const log = (record) => console.log(JSON.stringify(record));

const browser = await chromium.launch({
  executablePath: plan.chromium || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
const problems = [];
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));

async function settle(timeout = 120000) {
  // Streamlit shows its status widget while a script runs; wait until it is gone for a moment.
  await page.waitForSelector('[data-testid="stApp"]', { timeout });
  const deadline = Date.now() + timeout;
  let quiet = 0;
  while (Date.now() < deadline) {
    const running = await page.locator('[data-testid="stStatusWidget"]').count();
    const skeleton = await page.locator('[data-testid="stSkeleton"]').count();
    quiet = running || skeleton ? 0 : quiet + 1;
    if (quiet >= 4) return;
    await page.waitForTimeout(250);
  }
  throw new Error("the app did not finish running");
}

async function expectNoException(step) {
  const exceptions = await page.locator('[data-testid="stException"]').allInnerTexts();
  if (exceptions.length) throw new Error(`${step}: exception on the page: ${exceptions[0].slice(0, 400)}`);
}

async function waitForFigures(step, minimum) {
  if (!minimum) return 0;
  await page.waitForFunction(
    (n) => document.querySelectorAll(".js-plotly-plot .main-svg").length >= n, minimum, { timeout: 60000 },
  ).catch(() => {});
  const count = await page.locator(".js-plotly-plot").count();
  if (count < minimum) throw new Error(`${step}: expected at least ${minimum} figures, found ${count}`);
  return count;
}

async function shot(name) {
  // Streamlit scrolls inside its main container: grow the window to the content to see it all.
  const height = await page.evaluate(() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const side = document.querySelector('[data-testid="stSidebarContent"]');
    return Math.max(main ? main.scrollHeight : 0, side ? side.scrollHeight : 0, 900);
  });
  await page.setViewportSize({ width: 1400, height: Math.min(height + 40, 7000) });
  await page.waitForTimeout(800);  // plotly relayout after the resize
  const file = path.join(plan.out, `${name}.png`);
  await page.screenshot({ path: file });
  await page.setViewportSize({ width: 1400, height: 1000 });
  return file;
}

async function openPage(title) {
  await page.locator('[data-testid="stSidebarNav"] a').filter({ hasText: title }).first().click();
  await settle();
}

async function chooseCheckpoint(name) {
  const box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first();
  await box.click();
  await page.getByRole("option", { name, exact: true }).click();
  await settle();
}

async function imageSource(label) {
  await page.getByRole("radiogroup", { name: "Image source" }).getByRole("radio", { name: label }).click();
  await settle();
}

async function upload(file) {
  await page.locator('[data-testid="stSidebar"] input[type="file"]').setInputFiles(file);
  await settle();
}

async function step(name, body, minimumFigures = 0) {
  try {
    await body();
    await expectNoException(name);
    const figures = await waitForFigures(name, minimumFigures);
    const file = await shot(name);
    log({ step: name, ok: true, figures, screenshot: file });
  } catch (error) {
    const file = await shot(`${name}_FAILED`).catch(() => null);
    log({ step: name, ok: false, error: String(error.message || error), screenshot: file });
    await browser.close();
    process.exit(1);
  }
}

const cp = plan.checkpoints;
await step("01_overview_gallery", async () => { await page.goto(plan.url); await settle(); await chooseCheckpoint(cp.crmn); }, 2);
await step("01b_figure_downloads", async () => {
  for (const [label, signature] of [[/^Image \(PNG\)$/, /^\x89PNG/], [/^Data \(CSV\)$/, /^[\w .]+,/]]) {
    const [download] = await Promise.all([
      page.waitForEvent("download", { timeout: 90000 }),
      page.getByRole("button", { name: label }).first().click(),
    ]);
    const file = await download.path();
    const head = fs.readFileSync(file).subarray(0, 16).toString("latin1");
    if (!signature.test(head)) throw new Error(`${download.suggestedFilename()} starts with ${JSON.stringify(head)}`);
    log({ step: "download", ok: true, file: download.suggestedFilename(), bytes: fs.statSync(file).size });
  }
});
await step("02_overview_bad_upload", async () => {
  await imageSource("Upload");
  await upload(plan.bad_image);
  await page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"]').first().waitFor();
});
await step("03_overview_upload", async () => {
  await page.getByRole("button", { name: /^Remove / }).first().click();
  await settle();
  await upload(plan.image);
  // On a loaded machine the rerun may start after settle() saw a quiet app: give the error
  // up to two minutes to go away before calling it a failure.
  try {
    await page.locator('[data-testid="stAlertContentError"]').first().waitFor({ state: "detached", timeout: 120000 });
  } catch {
    throw new Error("an error is still shown after a good upload");
  }
  await settle();
}, 2);
await step("04_lstm_memory", async () => { await imageSource("Gallery"); await openPage("LSTM memory"); }, 2);
await step("05_lstm_animation", async () => {
  await page.getByRole("tab", { name: "Animation" }).click();
  await settle();
}, 1);
await step("06_lstm_statistics", async () => {
  await page.getByRole("tab", { name: "Class statistics" }).click();
  await settle();
}, 1);
await step("07_attributions", async () => { await openPage("Attributions"); }, 2);
await step("08_renet_not_applicable", async () => {
  await openPage("ReNet sweeps");
  await page.getByText("does not apply").first().waitFor();
});
await step("09_renet_sweeps", async () => {
  const suggestion = page.getByRole("button", { name: `Use ${cp.renet}` });
  if (await suggestion.count()) { await suggestion.first().click(); await settle(); } else { await chooseCheckpoint(cp.renet); }
}, 3);
if (cp.rir) await step("10_rir_streams", async () => { await chooseCheckpoint(cp.rir); await openPage("RiR streams"); }, 2);
await step("11_face_keypoints", async () => { await chooseCheckpoint(cp.faces); await openPage("Face keypoints"); }, 2);
await step("12_overview_faces", async () => { await openPage("Overview"); }, 2);
await step("13_export", async () => {
  await openPage("Export");
  await page.getByRole("button", { name: "Prepare the files" }).click();
  await settle();
  await page.getByRole("button", { name: /Download crmn-viz|Download .*\.(pdf|png|svg)/ }).first().waitFor();
});

if (problems.length) log({ step: "page_errors", ok: true, errors: problems });
await browser.close();
